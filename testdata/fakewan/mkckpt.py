#!/usr/bin/env python3
"""Create a fake Wan2.2 checkpoint folder (empty placeholder files) that generate.py accepts.

Usage: python3 mkckpt.py DIR TASK
  TASK: t2v-A14B, i2v-A14B, ti2v-5B, animate-14B, s2v-14B
The layout per task is CKPT_LAYOUT in generate.py (the same table its checkpoint check reads).
"""
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import generate  # noqa: E402


def main(argv):
    if len(argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    return generate.make_ckpt(argv[0], argv[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
