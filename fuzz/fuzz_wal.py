"""WAL files: reading any bytes never raises and accounts for every byte; replaying them into a
store never raises.  Half the inputs are turned into records with valid CRCs first, so the
fuzzer gets past the checksum into the record decoding."""

from __future__ import annotations

import atheris

with atheris.instrument_imports():
    import struct
    import zlib

    import zstandard
    from _common import main, scratch_dir, scratch_store

    from cc.config import MetricStoreConfig
    from cc.storeproc._checkpoint import Checkpointer, RestoreReport
    from cc.wal import MAGIC, REC, WalReader

DIR = scratch_dir()
PATH = DIR / "000000000000-w0-1-1.wal"
STORE = scratch_store()
CHECKPOINTER = Checkpointer(STORE, MetricStoreConfig(checkpoint_dir=DIR))
ZSTD = zstandard.ZstdCompressor(level=1)


def framed(data: bytes) -> bytes:
    """MAGIC + records built from ``data``: [type, flags, raw-length mode, len lo, len hi, payload...]*."""
    out, pos = [MAGIC], 0
    while pos + 5 <= len(data):
        rtype, flags, mode = data[pos], data[pos + 1], data[pos + 2]
        n = int.from_bytes(data[pos + 3:pos + 5], "little") % 512
        payload = data[pos + 5:pos + 5 + n]
        pos += 5 + n
        raw_len = len(payload)
        if flags & 1:
            payload = ZSTD.compress(payload)
        if mode & 1:
            raw_len = (raw_len + mode) % 2**32
        tail = REC.pack(0, len(payload), rtype % 5, flags % 4, 0, raw_len)[4:]
        out.append(struct.pack("<I", zlib.crc32(payload, zlib.crc32(tail))) + tail + payload)
    return b"".join(out)


def one_input(data: bytes) -> None:
    if not data:
        return
    blob = framed(data[1:]) if data[0] & 1 else data[1:]
    PATH.write_bytes(blob)
    r = WalReader(PATH)
    n = sum(1 for _ in r)
    st = r.stats
    assert st.bad_bytes <= len(blob) and isinstance(st.header, dict)
    assert (st.bad_records == 0) == (st.error is None or st.error.startswith("cannot read")), st
    assert all(isinstance(k, int) and k >= 0 for k in r.key_of)
    rep = RestoreReport()
    CHECKPOINTER.replay([PATH], rep)
    assert rep.wal_records == n


if __name__ == "__main__":
    main(one_input)
