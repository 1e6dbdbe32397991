"""Hampel filter over time (packets), per feature, fed in chunks.

Value ``x[i]`` is replaced by the median ``m`` of ``x[i-k .. i+k]`` when
``|x[i] - m| > n_sigma * 1.4826 * MAD`` (MAD = median of ``|x[j] - m|`` over
the same window). Near the start and end of a segment the window is cut to the
packets that exist. Streaming: an output needs its ``k`` successors, so a
chunk yields the values it completes and ``flush()`` the last ``k``; the
numbers do not depend on how the input was chunked.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

#: MAD -> standard deviation for Gaussian data.
MAD_TO_SIGMA = 1.4826

#: Rows per block in the vectorised filter (keeps the working set in cache).
_BLOCK_ROWS = 512


@lru_cache(maxsize=None)
def median_network(n: int) -> tuple[tuple[int, int], ...]:
    """Compare-exchange pairs that put the median of ``n`` (odd) values on wire ``n // 2``.

    Batcher's odd-even merge sort for the next power of two, restricted to the
    first ``n`` wires (the missing ones act as +inf and never move), then pruned
    to the comparators the middle wire depends on (32 for n = 11). Elementwise
    min/max over whole arrays is far faster in numpy than a per-row partition.
    """
    size = 1
    while size < n:
        size *= 2
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p) and i + j + k < n:
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    needed, kept = {n // 2}, []
    for a, b in reversed(pairs):
        if a in needed or b in needed:
            kept.append((a, b))
            needed |= {a, b}
    return tuple(reversed(kept))


def _median_of(wires: list[np.ndarray]) -> np.ndarray:
    """Elementwise median of an odd number of equally shaped arrays (exactly the middle value)."""
    w = list(wires)
    for a, b in median_network(len(w)):
        w[a], w[b] = np.minimum(w[a], w[b]), np.maximum(w[a], w[b])
    return w[len(w) // 2]


def _hampel_rows(x: np.ndarray, lo: int, hi: int, k: int, n_sigma: float) -> np.ndarray:
    """Hampel outputs for rows ``lo .. hi-1`` of ``x`` whose full windows ``[i-k, i+k]`` lie inside ``x``."""
    if hi - lo < 8:  # a few rows (live traffic): numpy's median has less per-call overhead
        windows = np.stack([x[lo - k + j: hi - k + j] for j in range(2 * k + 1)], axis=-1)
        return _replace_outliers(x[lo:hi], windows, n_sigma)
    out = np.empty((hi - lo, x.shape[1]))
    for b in range(lo, hi, _BLOCK_ROWS):
        e = min(hi, b + _BLOCK_ROWS)
        wires = [x[b - k + j: e - k + j] for j in range(2 * k + 1)]
        med = _median_of(wires)
        mad = _median_of([np.abs(w - med) for w in wires])
        centre = wires[k]
        out[b - lo: e - lo] = np.where(np.abs(centre - med) > n_sigma * MAD_TO_SIGMA * mad, med, centre)
    return out


def _replace_outliers(centre: np.ndarray, windows: np.ndarray, n_sigma: float) -> np.ndarray:
    """Hampel decision for ``centre[n, f]`` given ``windows[n, f, w]`` (the window axis last)."""
    med = np.median(windows, axis=-1)
    mad = np.median(np.abs(windows - med[..., None]), axis=-1)
    outlier = np.abs(centre - med) > n_sigma * MAD_TO_SIGMA * mad
    return np.where(outlier, med, centre)


class HampelFilter:
    """Streaming Hampel filter over rows ``x[packet, feature]`` of one segment.

    ``push(t, x)`` returns ``(t_out, y_out)`` for the packets whose window is
    complete (``t`` rides along unchanged); ``flush()`` returns the rest and
    starts a new segment.
    """

    def __init__(self, half_window: int, n_sigma: float) -> None:
        if half_window < 1:
            raise ValueError("half_window must be >= 1")
        self.k = int(half_window)
        self.n_sigma = float(n_sigma)
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None  # rows from segment index _b0 .. _n_in-1
        self._t = np.zeros(0)
        self._b0 = 0
        self._n_in = 0
        self._n_out = 0

    def push(self, t: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._x is None:
            self._x = np.zeros((0, x.shape[1]))
        if len(t):
            self._x = np.concatenate([self._x, x]) if len(self._x) else np.asarray(x, dtype=np.float64)
            self._t = np.concatenate([self._t, t]) if len(self._t) else np.asarray(t, dtype=np.float64)
            self._n_in += len(t)
        return self._emit(self._n_in - self.k)

    def flush(self) -> tuple[np.ndarray, np.ndarray]:
        """Values still waiting for successors (windows cut at the segment end); then reset."""
        if self._x is None:
            return np.zeros(0), np.zeros((0, 0))
        out = self._emit(self._n_in)
        self.reset()
        return out

    def _emit(self, stop: int) -> tuple[np.ndarray, np.ndarray]:
        """Outputs for segment indices ``_n_out .. stop-1``."""
        k, b0, n_in, x = self.k, self._b0, self._n_in, self._x
        start = self._n_out
        if stop <= start:
            return np.zeros(0), np.zeros((0, x.shape[1]))
        y = np.empty((stop - start, x.shape[1]))
        # Full windows: i - k >= 0 and i + k <= n_in - 1.
        full_lo, full_hi = max(start, k), min(stop, n_in - k)
        if full_hi > full_lo:
            y[full_lo - start: full_hi - start] = _hampel_rows(x, full_lo - b0, full_hi - b0, k, self.n_sigma)
        # Cut windows at the segment start or end: few per segment, one at a time.
        for i in range(start, stop):
            if full_lo <= i < full_hi:
                continue
            lo, hi = max(0, i - k), min(n_in, i + k + 1)
            win = x[lo - b0: hi - b0].T[None]  # [1, f, w]
            y[i - start] = _replace_outliers(x[i - b0][None], win, self.n_sigma)[0]
        t_out = self._t[start - b0: stop - b0]
        self._n_out = stop
        # Keep k rows of left context before the next output.
        new_b0 = max(0, stop - k)
        if new_b0 > b0:
            self._x = x[new_b0 - b0:]
            self._t = self._t[new_b0 - b0:]
            self._b0 = new_b0
        return t_out, y


def hampel(x: np.ndarray, half_window: int, n_sigma: float) -> np.ndarray:
    """Batch Hampel filter of ``x[time, feature]`` (or ``x[time]``) as one segment."""
    x = np.asarray(x, dtype=np.float64)
    flat = x.reshape(x.shape[0], -1)
    f = HampelFilter(half_window, n_sigma)
    _, a = f.push(np.arange(flat.shape[0], dtype=np.float64), flat)
    _, b = f.flush()
    return np.concatenate([a, b]).reshape(x.shape)
