# wan22-guard. `make demo` builds and runs the guard around the bundled fake
# generator; `make test` runs every test. Neither needs a GPU.
export CGO_CFLAGS ?= -Wno-deprecated-declarations
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
GO ?= go
BIN := bin/wan22-guard
# urfave_cli_no_docs leaves out cli's man/markdown generators and the
# markdown library they pull in, whose package init cost start-up time.
TAGS ?= urfave_cli_no_docs

.PHONY: build test check fmt vet lint deps golden bench fuzz demo clean

build:
	$(GO) build -tags $(TAGS) -ldflags "-X main.version=$(VERSION)" -o $(BIN) .

test:
	$(GO) test -race -count=1 ./...

fmt:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

lint:
	$(GO) tool staticcheck ./...

deps:
	@if $(GO) list -deps ./classify/... ./strategies/... ./wan/... | grep -E '^(os/exec|os/signal|github.com/sirupsen/logrus|github.com/NVIDIA/go-nvml)'; then echo "pure packages import process, logging or NVML code"; exit 1; fi
	@echo "import direction ok"

golden:
	$(GO) test ./classify -run Golden -update

check: fmt vet lint deps test

bench: build
	./bench/run.sh

fuzz:
	./scripts/fuzz.sh

demo: build
	./scripts/demo.sh

clean:
	rm -rf bin .wan22-guard
