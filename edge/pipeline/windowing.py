"""Cut a segment's uniform samples into windows ``x[window, time, feature]``.

Windows start at samples ``0, hop, 2*hop, ...`` of each segment and hold
``length`` samples; a segment's tail shorter than a window is dropped and no
window spans two segments. A window is reported with the time of its last
sample.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


class Windower:
    """Streaming windower for one segment: ``push(t, y) -> (end_time[w], windows[w, length, feature])``."""

    def __init__(self, length: int, hop: int, dtype: type = np.float32) -> None:
        self.length = int(length)
        self.hop = int(hop)
        self.dtype = dtype
        self.reset()

    def reset(self) -> None:
        self._y: np.ndarray | None = None  # samples from segment index _b0 on
        self._t = np.zeros(0)
        self._b0 = 0
        self._n = 0
        self._next_start = 0

    def push(self, t: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        f = y.shape[1]
        if self._y is None:
            self._y = np.zeros((0, f), dtype=self.dtype)
        if len(t):
            y = y.astype(self.dtype, copy=False)
            self._y = np.concatenate([self._y, y]) if len(self._y) else y
            self._t = np.concatenate([self._t, t]) if len(self._t) else np.asarray(t, dtype=np.float64)
            self._n += len(t)
        if self._next_start + self.length > self._n:
            windows = np.zeros((0, self.length, f), dtype=self.dtype)
            ends = np.zeros(0)
        else:
            n_win = (self._n - self.length - self._next_start) // self.hop + 1
            first = self._next_start - self._b0
            view = sliding_window_view(self._y, self.length, axis=0)  # [start, f, length]
            windows = view[first: first + (n_win - 1) * self.hop + 1: self.hop].transpose(0, 2, 1).copy()
            ends = self._t[first + self.length - 1: first + (n_win - 1) * self.hop + self.length: self.hop]
            self._next_start += n_win * self.hop
        # Keep from the next window start (samples before it are never needed again).
        drop = min(self._next_start, self._n) - self._b0
        if drop > 0:
            self._y = self._y[drop:]
            self._t = self._t[drop:]
            self._b0 += drop
        return ends, windows
