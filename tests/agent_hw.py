"""Helpers for the hardware collector tests: write sysfs-like trees, run two rounds, look metrics up.

Tests run as root here, where a mode-0 file is still readable; :func:`deny_unreadable` makes the
collectors' file reads fail with PermissionError for files without read bits, as for the
unprivileged agent on a real node.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cc.agent.collectors import Context, make_collector
from cc.agent.collectors._base import Collector
from cc.agent.message import Message

T0, T1, T2 = 1000.0, 1010.0, 1020.0


def write(root: Path, files: dict[str, str | int]) -> None:
    """Create ``files`` ({relative path: content}) below ``root``."""
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f"{content}\n" if isinstance(content, int) else content)


def fake_command(tmp: Path, name: str, body: str) -> Path:
    """An executable ``tmp/bin/<name>`` running the shell script ``body`` (prints recorded output)."""
    p = tmp / "bin" / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)
    return p


def deny_unreadable(monkeypatch: pytest.MonkeyPatch) -> None:
    real = Collector.read_text

    def read_text(self: Collector, rel: str | Path) -> str:
        p = rel if isinstance(rel, Path) else self.path(rel)
        if os.path.exists(p) and os.stat(p).st_mode & 0o444 == 0:
            raise PermissionError(13, "Permission denied", str(p))
        return real(self, rel)

    monkeypatch.setattr(Collector, "read_text", read_text)


def start(root: Path, name: str, cfg: dict | None = None, *, standard: bool = True,
          active: frozenset[str] | None = None) -> Collector:
    c = make_collector(name, cfg, Context(root, standard, active or frozenset({name})))
    c.init(T0)
    return c


def table(msgs: list[Message]) -> dict[tuple, float]:
    """{(name, ((tag, value), ...)): value}; fails on duplicates."""
    out: dict[tuple, float] = {}
    for m in msgs:
        key = (m.name, tuple(sorted(m.tags.items())))
        assert key not in out, f"duplicate {key}"
        out[key] = m.value
    return out


def key(name: str, **tags: str) -> tuple:
    tags = {k.replace("type_id", "type-id"): v for k, v in tags.items()}
    return (name, tuple(sorted(tags.items())))
