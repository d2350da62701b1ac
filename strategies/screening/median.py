"""The coordinate-wise median of a round's updates: the robust centre relative checks use."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["MEDIAN_BLOCK", "coordinate_median"]

SORTING_NETWORK_MAX_ROWS = 24
MEDIAN_BLOCK = 1 << 16  # columns per block, at most ...
MEDIAN_BLOCK_FLOATS = 1 << 22  # ... and rows x columns per block at most 4M floats (16 MB)


def coordinate_median(matrix: np.ndarray, index: Sequence[int] | None = None) -> np.ndarray:
    """Coordinate-wise median of some rows of ``matrix`` (all rows when ``index`` is None).

    ``np.median(rows, axis=0)`` partitions each of the (many) columns separately, which for 10
    updates of 225k parameters costs more than the rest of screening together. For up to
    ``SORTING_NETWORK_MAX_ROWS`` rows an odd-even transposition network sorts every column at
    once with whole-row minimum/maximum operations instead (n^2/2 vector ops). Either way the
    work goes block of columns by block, so the temporaries stay small however many rows and
    parameters there are (the rows are never copied as a whole: the layer's memory stays the
    one delta matrix).
    """
    rows = np.arange(matrix.shape[0]) if index is None else np.asarray(index, dtype=np.intp)
    if len(rows) == 0:
        return np.full(matrix.shape[1], np.nan, np.float32)
    out = np.empty(matrix.shape[1], np.float32)
    width = max(1024, min(MEDIAN_BLOCK, MEDIAN_BLOCK_FLOATS // len(rows)))
    for start in range(0, matrix.shape[1], width):
        block = matrix[rows, start : start + width]  # a copy of this block only
        out[start : start + block.shape[1]] = _block_median(block)
    return out


def _block_median(block: np.ndarray) -> np.ndarray:
    n = block.shape[0]
    if n > SORTING_NETWORK_MAX_ROWS:
        return np.asarray(np.median(block, axis=0))
    r = [block[i] for i in range(n)]
    for step in range(n):
        for j in range(step % 2, n - 1, 2):
            low = np.minimum(r[j], r[j + 1])
            np.maximum(r[j], r[j + 1], out=r[j + 1])
            r[j] = low
    mid = n // 2
    return r[mid] if n % 2 else np.asarray((r[mid - 1] + r[mid]) * np.float32(0.5))
