"""Snapshots (binary and JSON): loading any bytes raises SnapshotError or installs; salvaging
never raises.  Half the binary inputs get valid frame CRCs first, to reach the chunk decoding."""

from __future__ import annotations

import atheris

with atheris.instrument_imports():

    import zstandard
    from _common import main, scratch_dir, scratch_store

    from cc.shm import _snapshot as snap

DIR = scratch_dir()
STORE = scratch_store()
ZSTD = zstandard.ZstdCompressor(level=1)
TAGS = (b"HEAD", b"CHNK", b"FOOT")


def framed(data: bytes) -> bytes:
    """MAGIC + frames built from ``data``: [tag, compress, len lo, len hi, payload...]*."""
    out, pos = [snap.MAGIC], 0
    while pos + 4 <= len(data):
        tag, comp = TAGS[data[pos] % 3], data[pos + 1] & 1
        n = int.from_bytes(data[pos + 2:pos + 4], "little") % 2048
        out.append(snap._frame(tag, data[pos + 4:pos + 4 + n], ZSTD if comp else None))
        pos += 4 + n
    return b"".join(out)


def one_input(data: bytes) -> None:
    if not data:
        return
    mode = data[0] % 3
    if mode == 2:
        path = DIR / "snapshot-000000000001.json"
        path.write_bytes(data[1:])
    else:
        path = DIR / "snapshot-000000000001.bin"
        path.write_bytes(framed(data[1:]) if mode == 1 else data[1:])
    try:
        snap.load_snapshot(STORE, path)
    except snap.SnapshotError as e:
        assert str(path) in str(e), e
    damage: list[str] = []
    for ch in snap.salvage_binary(path, damage):
        assert len(ch.keys) == len(ch.first) == len(ch.last) == len(ch.ring)
    snap.snapshot_info(path)


if __name__ == "__main__":
    main(one_input)
