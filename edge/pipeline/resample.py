"""Irregular packet arrivals -> samples at a fixed rate, with an anti-aliasing low-pass.

Two steps per segment (a run of packets without a long gap):

1. Linear interpolation onto an intermediate grid ``t0 + k / (rate * L)``
   (``t0`` = the segment's first packet, ``L`` = ``upsample``). Choose
   ``rate * L`` at or above the packet rate so this step does not alias.
2. Polyphase FIR decimation by ``L``: ``y[j] = sum_i h[i] * mid[m_j - i]`` at
   ``m_j = (ntaps - 1) + j * L``; only the kept outputs are computed. ``h`` is
   an odd-length linear-phase low-pass with unity DC gain, designed offline
   (``edgecsi.training.filter_design``). Only outputs whose whole FIR support
   lies inside the segment are produced (no edge transients), and each is
   stamped with the time of its centre tap, ``t0 + (m_j - (ntaps-1)/2) / (rate * L)``,
   so the FIR group delay does not shift events.

Every output depends on the same packets whatever the chunking, so feeding
packets one at a time or all at once gives the same numbers.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided


class UniformResampler:
    """Streaming resampler for one segment of rows ``x[packet, feature]`` at strictly increasing times.

    ``push(t, x) -> (t_out[n], y[n, feature])``; ``reset()`` starts a new
    segment (call it at every gap). The caller guarantees increasing times.
    """

    def __init__(self, rate_hz: float, upsample: int, taps: np.ndarray) -> None:
        taps = np.asarray(taps, dtype=np.float64)
        if taps.ndim != 1 or taps.shape[0] % 2 == 0:
            raise ValueError("resampler taps must be a 1-D array of odd length")
        self.rate_hz = float(rate_hz)
        self.upsample = int(upsample)
        self.mid_rate = self.rate_hz * self.upsample
        self.taps_rev = np.ascontiguousarray(taps[::-1])
        self.ntaps = taps.shape[0]
        self.delay = (self.ntaps - 1) // 2
        self.reset()

    def reset(self) -> None:
        self._t0: float | None = None
        self._prev_t: np.ndarray | None = None  # last packet time, shape [1]
        self._prev_x: np.ndarray | None = None  # last packet row, shape [1, f]
        self._k_next = 0  # next intermediate-grid index to interpolate
        self._hist: np.ndarray | None = None  # last ntaps-1 intermediate rows
        self._next_out = self.ntaps - 1  # intermediate index of the next output

    @property
    def latency_s(self) -> float:
        """Delay from a packet to the output stamped with its time (FIR half length)."""
        return self.delay / self.mid_rate

    def push(self, t: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = np.asarray(t, dtype=np.float64)
        x = np.asarray(x, dtype=np.float64)
        f = x.shape[1]
        if t.shape[0] == 0:
            return np.zeros(0), np.zeros((0, f))
        if self._t0 is None:
            self._t0 = float(t[0])
            self._hist = np.zeros((0, f))
        mid = self._interpolate(t, x)
        self._prev_t, self._prev_x = t[-1:], x[-1:]
        return self._decimate(mid)

    def _interpolate(self, t: np.ndarray, x: np.ndarray) -> np.ndarray:
        if self._prev_t is not None:
            t = np.concatenate([self._prev_t, t])
            x = np.concatenate([self._prev_x, x])
        rel = (t - self._t0) * self.mid_rate  # packet times in intermediate samples
        k_last = math.floor(rel[-1])
        if k_last < self._k_next:
            return np.zeros((0, x.shape[1]))
        ks = np.arange(self._k_next, k_last + 1, dtype=np.float64)
        self._k_next = k_last + 1
        if t.shape[0] == 1:  # the segment's first packet sits exactly on grid index 0
            return np.repeat(x, ks.shape[0], axis=0)
        j = np.clip(np.searchsorted(rel, ks, side="right") - 1, 0, t.shape[0] - 2)
        w = (ks - rel[j]) / (rel[j + 1] - rel[j])
        return x[j] + w[:, None] * (x[j + 1] - x[j])

    def _decimate(self, mid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        hist = self._hist
        f = mid.shape[1]
        buf = np.concatenate([hist, mid]) if len(hist) else mid
        buf = np.ascontiguousarray(buf)
        # Global intermediate index of buf[0]: everything generated so far minus buf length.
        g0 = self._k_next - buf.shape[0]
        last = self._k_next - 1
        n_out = 0 if last < self._next_out else (last - self._next_out) // self.upsample + 1
        if n_out:
            first_row = self._next_out - self.ntaps + 1 - g0
            item = buf.itemsize
            view = as_strided(buf[first_row:], shape=(n_out, self.ntaps, f),
                              strides=(self.upsample * f * item, f * item, item), writeable=False)
            y = self.taps_rev @ view  # [n_out, f]; one small dot per output, chunk-size independent
            m = self._next_out + self.upsample * np.arange(n_out)
            t_out = self._t0 + (m - self.delay) / self.mid_rate
            self._next_out += n_out * self.upsample
        else:
            y, t_out = np.zeros((0, f)), np.zeros(0)
        keep = self.ntaps - 1
        self._hist = buf[-keep:].copy() if keep else buf[:0].copy()
        return t_out, y
