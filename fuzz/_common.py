"""Shared set-up of the atheris harnesses: one process per target, libFuzzer flags from argv.

Each harness defines ``one_input(data: bytes)`` that raises only when it found a bug (an
exception the code under test does not document, or a broken invariant); atheris reports
it and libFuzzer writes the input to ``crash-*`` (see the Makefile's ``fuzz`` target).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def scratch_dir() -> Path:
    """The directory for the files a harness writes per input: one per target, reused by every
    run (libFuzzer ends the process with exit(), so Python's atexit cleanup never runs), on a
    tmpfs when there is one (fast)."""
    base = Path("/dev/shm") if os.path.isdir("/dev/shm") else Path(tempfile.gettempdir())
    d = base / f"cc-fuzz-{Path(sys.argv[0]).stem}"
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir()
    return d


def scratch_store(frequencies=(10, 60)):
    """A small shared-memory store for harnesses that install or replay.  Its segments are
    unlinked at once (the mappings stay valid), so nothing is left behind however the run ends."""
    from cc.shm import Layout, Store, unlink_all

    inst = "f" + uuid.uuid4().hex[:10]
    store, _ = Store.create(inst, Layout.compute(3600, list(frequencies), 0.05))
    unlink_all(inst)
    return store


def main(one_input: Callable[[bytes], None]) -> None:
    import atheris

    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
