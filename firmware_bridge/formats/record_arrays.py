"""numpy arrays over fixed-layout parts of the records of a byte stream (the ``.dat`` readers' bulk step).

A reader walks the stream once to find where its records start; everything it
then needs from each record (a header, the CSI bytes) sits at a fixed offset
from that start and is read here for all records at once.
"""

from __future__ import annotations

import numpy as np


def at_offsets(data: bytes, starts: np.ndarray, offset: int, dtype: np.dtype) -> np.ndarray:
    """``dtype`` read at ``start + offset`` for each start: array[record] (read-only).

    A strided view of ``data`` when the starts are evenly spaced (captures of
    one record size), else a copy. A subarray dtype such as ``(uint8, k)``
    gives uint8[record, k]. The caller guarantees every read lies inside ``data``.
    """
    dtype = np.dtype(dtype)
    n = len(starts)
    if n == 0:
        return np.empty(0, dtype=dtype)
    step = int(starts[1] - starts[0]) if n > 1 else dtype.itemsize
    if step > 0 and (n < 3 or (np.diff(starts) == step).all()):
        return np.ndarray((n,), dtype=dtype, buffer=data, offset=int(starts[0]) + offset, strides=(step,))
    chunks = b"".join([data[s:s + dtype.itemsize] for s in (np.asarray(starts) + offset).tolist()])
    return np.frombuffer(chunks, dtype=dtype)
