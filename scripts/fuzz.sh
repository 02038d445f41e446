#!/usr/bin/env bash
# Runs every Fuzz target in the repository, one at a time, each for FUZZTIME
# (default 3m), and fails when any of them fails. A failing input is written
# under the package's testdata/fuzz/<Name>/; `go test ./pkg` replays it.
# GO overrides the go command, as in the Makefile.
#
# Go 1.26's fuzz coordinator can end a clean run with a bare "context deadline
# exceeded" at the -fuzztime boundary (go.dev/issue/75804). Such a run wrote no
# failing input and no other test failed; it is reported and not counted.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-3m}
GO=${GO:-go}
export CGO_CFLAGS=${CGO_CFLAGS:--Wno-deprecated-declarations}

# "path/file_test.go:LINE:func FuzzName(f *testing.F) {" -> "./path FuzzName"
mapfile -t targets < <(
  grep -rn '^func Fuzz' --include='*_test.go' . |
    sed -E 's#^(.*)/[^/]+_test\.go:[0-9]+:func (Fuzz[A-Za-z0-9_]*).*#\1 \2#' |
    sort -u
)
if [ "${#targets[@]}" -eq 0 ]; then
  echo "fuzz: no Fuzz targets found" >&2
  exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# corpus lists the inputs saved for a target, one path a line.
corpus() {
  if [ -d "$1/testdata/fuzz/$2" ]; then
    find "$1/testdata/fuzz/$2" -type f | sort
  fi
}

failed=()
flaked=()
for t in "${targets[@]}"; do
  pkg=${t% *}
  name=${t#* }
  echo "== fuzz $name in $pkg for $FUZZTIME"
  before=$(corpus "$pkg" "$name")
  if "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1 | tee "$log"; then
    continue
  fi
  after=$(corpus "$pkg" "$name")
  if [ "$before" = "$after" ] &&
    grep -q '^    context deadline exceeded$' "$log" &&
    [ "$(grep -c -- '--- FAIL:' "$log")" -eq 1 ]; then
    echo "fuzz: $name ended with the coordinator's deadline error and no failing input; not counted" >&2
    flaked+=("$name ($pkg)")
    continue
  fi
  failed+=("$name ($pkg)")
done

if [ "${#flaked[@]}" -gt 0 ]; then
  echo "fuzz: ${#flaked[@]} targets hit go.dev/issue/75804 at the deadline:" >&2
  printf '  %s\n' "${flaked[@]}" >&2
fi
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: ${#failed[@]} of ${#targets[@]} targets failed:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  exit 1
fi
echo "fuzz: all ${#targets[@]} targets passed"
