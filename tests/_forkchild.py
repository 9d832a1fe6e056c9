"""A child for tests/test_forkserver.py: reports what it was given on the descriptor in argv[1]."""

import os
import sys
from pathlib import Path

import orjson

fd = int(sys.argv[1])


def is_open(n: int) -> bool:
    try:
        os.fstat(n)
    except OSError:
        return False
    return True


report = {
    "name": __name__,
    "argv": sys.argv[1:],
    "ppid": os.getppid(),
    "cwd": os.getcwd(),
    "env": os.environ.get("FORKTEST"),
    "fds": sorted(n for n in map(int, os.listdir("/proc/self/fd")) if is_open(n)),  # not the listing's own
    "cmdline": Path("/proc/self/cmdline").read_bytes().replace(b"\0", b" ").decode().strip(),
}
os.write(fd, orjson.dumps(report))
os.close(fd)
print("to stdout")
print("to stderr", file=sys.stderr)
if sys.argv[2] == "wait":
    sys.stdin.read()  # /dev/null: returns at once
    import time

    time.sleep(60)
sys.exit(int(sys.argv[2]))
