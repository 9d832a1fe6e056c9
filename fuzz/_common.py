"""Shared set-up of the atheris harnesses: one process per target, libFuzzer flags from argv.

Each harness defines ``one_input(data: bytes)`` that raises only when it found a bug (an
exception the code under test does not document, or a broken invariant); atheris reports
it and libFuzzer writes the input to ``crash-*`` (see the Makefile's ``fuzz`` target).
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def scratch_dir() -> Path:
    """A directory for the files a harness writes per input (tmpfs when there is one: fast)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") else None
    return Path(tempfile.mkdtemp(prefix="cc-fuzz-", dir=base))


def main(one_input: Callable[[bytes], None]) -> None:
    import atheris

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
