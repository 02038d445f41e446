#!/bin/sh
# launches.sh COUNTER BODY1 [BODY2 ...]
#
# Counts its launches in the file COUNTER and runs BODYn (sh code, through
# eval) on the nth launch; past the last body it runs the last one again.
# The fault tests use it to give each attempt of one command line its own
# behaviour, so that a restarted guard sees the same command.
c=$1
shift
n=$(($(cat "$c" 2>/dev/null || echo 0) + 1))
echo "$n" >"$c"
i=1
for body in "$@"; do
	if [ "$i" -eq "$n" ]; then
		break
	fi
	i=$((i + 1))
done
eval "$body"
