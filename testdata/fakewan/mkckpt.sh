#!/bin/sh
# Create a fake Wan2.2 checkpoint folder (empty placeholder files) for one task.
# Usage: mkckpt.sh DIR TASK   (TASK: t2v-A14B, i2v-A14B, ti2v-5B, animate-14B, s2v-14B)
# No environment variables; PYTHON picks the interpreter (default python3).
if [ "$#" -ne 2 ]; then
	echo "usage: $0 DIR TASK" >&2
	exit 2
fi
exec "${PYTHON:-python3}" "$(dirname "$0")/mkckpt.py" "$1" "$2"
