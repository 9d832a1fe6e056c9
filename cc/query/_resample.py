"""Downsampling (cc-lib's ``resampler``), vectorised over the rows of a 2-D array.

:func:`lttb` follows cc-lib's ``LargestTriangleThreeBucket`` step by step (bucket
bounds, next-bucket average, "a NaN area wins") but handles every row of the
array at once: the loop runs over buckets, numpy runs over rows.
"""

from __future__ import annotations

import math

import numpy as np

METHODS = ("lttb", "average")


def plan(n: int, frequency: int, resolution: int, minimum_points: int) -> tuple[int, int] | None:
    """cc-lib's ``validateFrequency``: ``(step, n_out)`` if ``n`` points should be downsampled, else None.

    Raises ValueError when ``resolution`` is above ``frequency`` but not a multiple of it.
    """
    if frequency <= 0 or resolution <= 0 or resolution <= frequency:
        return None
    if resolution % frequency:
        raise ValueError(f"resolution {resolution} s is not a multiple of the frequency ({frequency} s)")
    step = resolution // frequency
    n_out = n // step
    if n_out == 0 or n < minimum_points or n_out >= n:
        return None
    return step, n_out


def resample(values: np.ndarray, frequency: int, resolution: int, minimum_points: int,
             method: str = "lttb") -> tuple[np.ndarray, int]:
    """Downsample ``values`` (1-D, or 2-D with one series per row) to ``resolution`` seconds.

    Returns the data and the effective step: ``(values, frequency)`` unchanged when no
    downsampling applies (resolution 0 or <= frequency, fewer than ``minimum_points``
    points, or no reduction), as cc-lib does.
    """
    if method not in METHODS:
        raise ValueError(f"unknown resampling method {method!r} (use one of {', '.join(METHODS)})")
    values = np.asarray(values, dtype=np.float64)
    p = plan(values.shape[-1], frequency, resolution, minimum_points)
    if p is None:
        return values, frequency
    step, n_out = p
    if method == "average":
        return average(values, step, n_out), resolution
    return lttb(values, n_out), resolution


def average(values: np.ndarray, step: int, n_out: int) -> np.ndarray:
    """Mean of the non-NaN values of each run of ``step`` points (NaN if all are NaN); the tail is dropped."""
    v = np.asarray(values, dtype=np.float64)
    blocks = v[..., :n_out * step].reshape(*v.shape[:-1], n_out, step)
    valid = ~np.isnan(blocks)
    counts = valid.sum(axis=-1)
    sums = np.where(valid, blocks, 0.0).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts


def lttb(values: np.ndarray, n_out: int) -> np.ndarray:
    """Largest-Triangle-Three-Buckets down to ``n_out`` points, all rows of a 2-D array together.

    The output has ``min(n, n_out)`` columns; the first and last points are always kept
    (``n_out`` 1 keeps only the first).  A 1-D input gives a 1-D output.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim not in (1, 2):
        raise ValueError("lttb() needs a 1-D or 2-D array")
    if n_out < 0:
        raise ValueError("lttb() needs n_out >= 0")
    one_d = v.ndim == 1
    if one_d:
        v = v[None, :]
    n = v.shape[1]
    if n_out >= n:
        out = v.copy()
    else:
        out = time_major([lttb_time_major(time_major([v]), n_out)])
    return out[0] if one_d else out


def time_major(blocks: list[np.ndarray]) -> np.ndarray:
    """The rows of several 2-D blocks (equal width) as the columns of one C-contiguous array.

    Copied in bands of rows, which is about twice as fast as numpy's plain transposing copy.
    """
    width = blocks[0].shape[1]
    out = np.empty((width, sum(b.shape[0] for b in blocks)), dtype=np.float64)
    col = 0
    for b in blocks:
        for r in range(0, b.shape[0], 64):
            band = b[r:r + 64]
            out[:, col:col + band.shape[0]] = band.T
            col += band.shape[0]
    return out


def lttb_time_major(vt: np.ndarray, n_out: int) -> np.ndarray:
    """:func:`lttb` on time-major data (one column per series); the result is time-major too.

    In this layout every step of the bucket loop works on contiguous runs of one value per series.
    """
    vt = np.ascontiguousarray(vt, dtype=np.float64)
    n, rows = vt.shape
    if n_out >= n:
        return vt.copy()
    if n_out <= 2:
        return vt[[0, n - 1][:n_out]]
    nb = n_out - 2  # buckets between the first and the last point
    size = (n - 2) / nb
    # Bucket bounds exactly as cc-lib computes them (float64 products, floor, clip).
    high = np.minimum(np.floor(np.arange(2, nb + 2) * size).astype(np.int64) + 1, n - 2)
    mid = np.empty(nb, dtype=np.int64)
    mid[0] = int(math.floor(size)) + 1
    mid[1:] = high[:-1]
    low = np.empty(nb, dtype=np.int64)
    low[0] = 1
    low[1:] = mid[:-1]
    # Average point (b) of each "next" bucket data[mid : high + 1]; empty -> NaN (0/0 in Go).
    # Summed point by point in order, as cc-lib does, so the areas match it bit for bit.
    length = high + 1 - mid
    sums = np.zeros((nb, rows), dtype=np.float64)
    for j in range(int(length.max())):
        part = vt[np.minimum(mid + j, n - 1)]
        part[length <= j] = 0.0
        sums += part
    with np.errstate(invalid="ignore", divide="ignore"):
        avg_x = (length * mid + length * (length - 1) // 2) / length
        avg_y = sums / length[:, None]
    if (length == 0).any():
        avg_y[length == 0] = np.nan

    out = np.empty((n_out, rows), dtype=np.float64)
    out[0] = vt[0]
    out[-1] = vt[-1]
    flat = vt.reshape(-1)
    ridx = np.arange(rows, dtype=np.int64)
    xs = np.arange(n, dtype=np.float64)
    ax = np.zeros(rows, dtype=np.float64)  # previously selected point (a)
    ay = vt[0].copy()
    lows, mids, bxs = low.tolist(), mid.tolist(), avg_x.tolist()
    for i in range(nb):
        lo, hi = lows[i], mids[i]
        if hi <= lo:  # empty bucket: cc-lib appends data[0] (its zero-initialised index)
            idx = np.zeros(rows, dtype=np.int64)
        else:
            # cc-lib: area = |(ax - cx) * (by - ay) - (ax - bx) * (cy - ay)| / 2.  With
            # u = (cx - ax) * (by - ay) = -(first product) exactly, |u + second| is the same number.
            u = np.subtract.outer(xs[lo:hi], ax)
            u *= avg_y[i] - ay
            t = vt[lo:hi] - ay
            t *= ax - bxs[i]
            u += t
            np.abs(u, out=u)
            idx = _pick(u, ridx) + lo
        ay = flat[idx * rows + ridx]
        ax = idx.astype(np.float64)
        out[i + 1] = ay
    return out


def _pick(u: np.ndarray, ridx: np.ndarray) -> np.ndarray:
    """Per column of ``u`` (areas, one row per candidate): cc-lib's choice.

    cc-lib scans the bucket keeping a candidate when ``area > best or isNaN(area)``: the
    first maximum wins, unless there is a NaN area, then the last NaN wins.
    """
    w = u.shape[0]
    if w == 1:
        return np.zeros(u.shape[1], dtype=np.int64)
    if w <= 3:  # a few vector comparisons beat argmax along the short axis
        best = u[0]
        k = np.zeros(u.shape[1], dtype=np.int64)
        for j in range(1, w):
            take = u[j] > best
            take |= np.isnan(u[j])
            k[take] = j
            if j + 1 < w:
                best = np.where(take, u[j], best)
        return k
    k = u.argmax(axis=0)  # first maximum, or the first NaN of the column
    nan_cols = np.isnan(u[k, ridx])
    if nan_cols.any():
        k[nan_cols] = w - 1 - np.isnan(u[::-1, nan_cols]).argmax(axis=0)
    return k
