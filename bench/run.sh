#!/usr/bin/env bash
# Benchmarks wan22-guard against a direct run, tini, dumb-init and a minimal C
# pipe copier. Prints a Markdown table and writes it to bench/results.md.
#
# Environment: GUARD (default bin/wan22-guard), CC (default cc), GO (default
# go), BENCH_FLAGS (extra guardbench flags, e.g. "-reps-pass 3"),
# BENCH_NO_INSTALL=1 to skip installing tini and dumb-init.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
guard=${GUARD:-$root/bin/wan22-guard}
cc=${CC:-cc}
go=${GO:-go}

if [ ! -x "$guard" ]; then
	echo "bench: $guard is missing; run make build first" >&2
	exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/wan22-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT

# tini and dumb-init from Debian, when they are missing and we may install.
install_pkg() {
	local pkg=$1 sudo=()
	if [ "$(id -u)" != 0 ]; then
		if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
			sudo=(sudo -n)
		else
			return 1
		fi
	fi
	command -v apt-get >/dev/null 2>&1 || return 1
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get install -y -q "$pkg" >>"$work/apt.log" 2>&1 && return 0
	if [ -z "${apt_updated:-}" ]; then
		apt_updated=1
		"${sudo[@]}" apt-get update -q >>"$work/apt.log" 2>&1 || true
	fi
	"${sudo[@]}" apt-get install -y -q "$pkg" >>"$work/apt.log" 2>&1
}
if [ -z "${BENCH_NO_INSTALL:-}" ]; then
	for pkg in tini dumb-init; do
		if ! command -v "$pkg" >/dev/null 2>&1; then
			echo "bench: installing $pkg" >&2
			if ! install_pkg "$pkg"; then
				echo "bench: could not install $pkg; its column reads n/a" >&2
				if [ -f "$work/apt.log" ]; then tail -n 3 "$work/apt.log" >&2; fi
			fi
		fi
	done
fi
tini=$(command -v tini || true)
dumb_init=$(command -v dumb-init || true)

# The children and the reference copier are C; the harness is Go.
if ! command -v "$cc" >/dev/null 2>&1; then
	echo "bench: no C compiler ($cc); install gcc or set CC" >&2
	exit 1
fi
"$cc" -O2 -pthread -static -o "$work/benchchild" bench/cmd/benchchild/benchchild.c 2>/dev/null ||
	"$cc" -O2 -pthread -o "$work/benchchild" bench/cmd/benchchild/benchchild.c
"$cc" -O2 -o "$work/pipecopy" bench/cmd/pipecopy/pipecopy.c
"$go" build -o "$work/guardbench" ./bench/cmd/guardbench

# shellcheck disable=SC2086
"$work/guardbench" \
	-guard "$guard" \
	-tini "$tini" \
	-dumb-init "$dumb_init" \
	-pipecopy "$work/pipecopy" \
	-child "$work/benchchild" \
	-work "$work" \
	-out bench/results.md \
	${BENCH_FLAGS:-}
