#!/usr/bin/env python3
"""flood.py MAX_BYTES SECONDS

Writes a counted pattern to stdout as fast as it can until it has written
MAX_BYTES or SECONDS have passed, whichever comes first, then prints
"flood: bytes=N sha256=HEX" on stderr: exactly what it wrote, for a test
to compare with what came out of the guard.
"""
import hashlib
import os
import struct
import sys
import time

limit = int(sys.argv[1])
end = time.monotonic() + float(sys.argv[2])
base = bytes(range(256)) * 256  # 64 KiB, every byte value, \n and \r included
h = hashlib.sha256()
written = 0
block = 0
while written < limit and time.monotonic() < end:
    # Each block starts with its number, so a lost, doubled or reordered
    # block changes the checksum.
    buf = memoryview(struct.pack("<Q", block) + base[8:])[: limit - written]
    while len(buf):
        n = os.write(1, buf)
        h.update(buf[:n])
        written += n
        buf = buf[n:]
    block += 1
os.close(1)
print(f"flood: bytes={written} sha256={h.hexdigest()}", file=sys.stderr, flush=True)
