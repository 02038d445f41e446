#!/bin/sh
# validate.sh MARKER FIFO
#
# A --state-validate command: the state arrives on stdin and counts as valid
# (exit 0) when it starts with "{". The first time it sees a state that
# does not, it creates MARKER, writes "pid=PID" to the named pipe FIFO and
# hangs, so that a test can kill the guard while it decides to restore;
# after that an invalid state exits 1.
IFS= read -r line
case $line in
'{'*) exit 0 ;;
esac
if [ -e "$1" ]; then
	exit 1
fi
: >"$1"
echo "pid=$$" >"$2"
exec sleep 600
