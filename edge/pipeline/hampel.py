"""Hampel filter over time (packets), per feature, fed in chunks.

Value ``x[i]`` is replaced by the median ``m`` of ``x[i-k .. i+k]`` when
``|x[i] - m| > n_sigma * 1.4826 * MAD`` (MAD = median of ``|x[j] - m|`` over
the same window). Near the start and end of a segment the window is cut to the
packets that exist. Streaming: an output needs its ``k`` successors, so a
chunk yields the values it completes and ``flush()`` the last ``k``; the
numbers do not depend on how the input was chunked.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: MAD -> standard deviation for Gaussian data.
MAD_TO_SIGMA = 1.4826


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
            view = sliding_window_view(x, 2 * k + 1, axis=0)  # view[j] covers rows j .. j+2k
            windows = view[full_lo - k - b0: full_hi - k - b0]
            y[full_lo - start: full_hi - start] = _replace_outliers(x[full_lo - b0: full_hi - b0], windows,
                                                                    self.n_sigma)
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
