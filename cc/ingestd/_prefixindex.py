"""A compact map from raw line-protocol prefixes to kids, for the parser's fast path.

Why not a dict: an ingest worker sees every series of its clusters, and a ``dict[bytes, int]``
costs ~200 B per series in every worker (the bytes object, the slot, the int), which was most
of the memory the installation spends beyond the rings.  This index keeps a 64-bit hash and a
32-bit kid per prefix in sorted numpy arrays, plus a directory of where each range of hashes
starts (by their top bits, ~1.5 entries per range): 14-16 B per prefix, and a whole request
is looked up at once in a few vectorised steps.  Prefixes added while parsing a body wait in a
small dict until :meth:`PrefixIndex.flush` merges them in.

The hash is Python's ``hash()`` of the prefix bytes: SipHash with a key drawn at random when
the interpreter starts (unless PYTHONHASHSEED pins it; the ingest workers forked by the
supervisor's fork server share its key), computed in C.  The index does not keep the prefix
itself, so two different prefixes with the same 64-bit hash would share a kid.  For n distinct
prefixes that happens with probability about n^2 / 2^65: 1e-9 for 200,000, 3e-8 at the
parser's limit of 1,000,000 prefixes (the index is cleared there).  The key being secret, a
client cannot aim for a collision, and only clients allowed to write every series reach the
parser anyway.
"""

from __future__ import annotations

import numpy as np

MISS = -2  # lookup result for a hash that is not in the index (-1 is a stored "unknown metric")


def prefix_hashes(prefixes: list[bytes]) -> np.ndarray:
    """The index's hashes of ``prefixes``."""
    return np.fromiter(map(hash, prefixes), dtype=np.int64, count=len(prefixes))


def prefix_hash(prefix: bytes) -> int:
    return hash(prefix)


class PrefixIndex:
    """hash -> kid; see the module docstring."""

    __slots__ = ("_hashes", "_kids", "_starts", "_shift", "_added")

    def __init__(self) -> None:
        self._hashes = np.zeros(0, dtype=np.int64)  # sorted
        self._kids = np.zeros(0, dtype=np.int32)  # in the order of _hashes
        self._added: dict[int, int] = {}  # not merged yet
        self._index_ranges()

    @property
    def size(self) -> int:
        return len(self._hashes) + len(self._added)

    @property
    def nbytes(self) -> int:
        return self._hashes.nbytes + self._kids.nbytes + self._starts.nbytes

    def _index_ranges(self) -> None:
        # 2**bits ranges of hashes, by their top bits; range r spans _hashes[_starts[r]:_starts[r+1]]
        bits = max(1, len(self._hashes).bit_length() - 1)
        self._shift = 64 - bits
        ranges = (self._hashes >> self._shift) + (1 << (bits - 1))  # signed order -> 0..2**bits-1
        counts = np.bincount(ranges, minlength=1 << bits)
        self._starts = np.zeros((1 << bits) + 1, dtype=np.int32)
        np.cumsum(counts, out=self._starts[1:])

    def lookup(self, hashes: np.ndarray) -> np.ndarray:
        """Kids (int64) of an array of hashes, MISS where a hash is not in the index."""
        out = np.full(len(hashes), MISS, dtype=np.int64)
        if len(self._hashes) and len(hashes):
            r = (hashes >> self._shift) + (len(self._starts) >> 1)
            pos, end = self._starts[r], self._starts[r + 1]
            todo = np.flatnonzero(pos < end)
            want, pos, end = hashes[todo], pos[todo], end[todo]
            while len(todo):  # a range holds 1.5 hashes on average: a few rounds
                seen = self._hashes[pos]
                hit = seen == want
                out[todo[hit]] = self._kids[pos[hit]]
                go_on = (seen < want) & (pos + 1 < end)
                todo, want, pos, end = todo[go_on], want[go_on], pos[go_on] + 1, end[go_on]
        if self._added:
            for j in np.flatnonzero(out == MISS).tolist():
                out[j] = self._added.get(int(hashes[j]), MISS)
        return out

    def get(self, h: int) -> int | None:
        kid = self._added.get(h)
        if kid is not None:
            return kid
        i = int(np.searchsorted(self._hashes, h))
        if i < len(self._hashes) and int(self._hashes[i]) == h:
            return int(self._kids[i])
        return None

    def add(self, h: int, kid: int) -> None:
        """Insert a hash that is not in the index yet (visible at once, merged by flush())."""
        self._added[h] = kid

    def flush(self) -> None:
        """Merge what add() collected into the sorted arrays."""
        if not self._added:
            return
        new = np.fromiter(self._added, dtype=np.int64, count=len(self._added))
        kids = np.fromiter(self._added.values(), dtype=np.int32, count=len(self._added))
        order = np.argsort(new)
        new, kids = new[order], kids[order]
        at = np.searchsorted(self._hashes, new)
        self._hashes = np.insert(self._hashes, at, new)
        self._kids = np.insert(self._kids, at, kids)
        self._added = {}
        self._index_ranges()

    def clear(self) -> None:
        self.__init__()
