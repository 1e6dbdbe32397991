"""Irregular packet arrivals -> samples at a fixed rate, with an anti-aliasing low-pass.

Let ``x(t)`` be the packets joined by straight lines (linear interpolation at
their true arrival times). Output ``j`` of a segment is the low-pass filtered
``x`` sampled at ``t_j = t0 + j / rate`` (``t0`` = the segment's first
packet)::

    y_j = integral h(t_j - s) x(s) ds

``h`` is the Kaiser-window low-pass prototype given as ``taps`` at the table
rate ``rate * phases`` (a polyphase table with ``phases`` phases per output
sample, held constant within each table step; designed offline by
``edgecsi.training.filter_design``, unity DC gain, odd length, symmetric). The
integral is exact for that kernel: with ``H1``/``H2`` the first and second
antiderivatives of ``h`` (tabulated once) and ``lo``/``hi`` the packets
around the kernel support ``[t_j - T, t_j + T]``::

    y_j = x_lo + sum_{p=lo}^{hi-1} D_p(t_j) (x_{p+1} - x_p),
    D_p(t) = (H2(t - t_p) - H2(t - t_{p+1})) / (t_{p+1} - t_p)

(``D_p`` is the average of the kernel's step response over packet interval
``p``). So the filter sees packets where they really arrived, there is no
intermediate grid that could alias, and the stopband of ``h`` (from the output
Nyquist on) applies to everything above the output band. What remains is the
error of joining packets by straight lines, which grows with timing jitter and
with signal content near the packet rate's Nyquist.

Choose ``rate * phases`` well above the packet rate (at least twice): images
of the table near multiples of the table rate are only ``sinc^2`` attenuated.

Only outputs whose whole support lies inside the segment are produced (no edge
transients); output ``j`` carries time ``t_j`` (the kernel is symmetric, so no
group delay to correct). Latency: ``T`` seconds after ``t_j`` the output is
known. Each output uses the same packets whatever the chunking, so feeding
packets one at a time or all at once gives the same numbers.
"""

from __future__ import annotations

import math

import numpy as np

# Largest dense weight block (outputs x packet intervals) built at once: 8 MB of float64.
MAX_WEIGHTS = 1 << 20


class KernelTable:
    """Antiderivatives of the prototype ``h`` (linear between taps) for exact integrals against line segments.

    Tap ``k`` of ``n`` sits at ``u_k = (k - (n-1)/2) * step``; ``h`` is the
    straight-line join of ``taps / step`` with a zero node added at each end,
    so ``h`` integrates to ``sum(taps) = 1`` over its support ``[-T, T]``,
    ``T = (n+1) * step / 2``. The first-order hold keeps the table's images
    (at multiples of the table rate) ``sinc^2`` small.
    """

    def __init__(self, taps: np.ndarray, table_rate: float) -> None:
        taps = np.asarray(taps, dtype=np.float64)
        if taps.ndim != 1 or taps.shape[0] % 2 == 0:
            raise ValueError("resampler taps must be a 1-D array of odd length")
        total = taps.sum()
        if not abs(total - 1.0) < 1e-6:
            raise ValueError(f"resampler taps must have unity DC gain (sum 1), got {total:.6g}")
        if not np.allclose(taps, taps[::-1], rtol=0, atol=1e-12):
            raise ValueError("resampler taps must be symmetric (linear phase)")
        step = self.step = 1.0 / float(table_rate)
        g = np.concatenate([[0.0], taps / total / step, [0.0]])  # node values, n + 2 nodes
        self.n_cells = g.shape[0] - 1
        self.half_width = self.n_cells * step / 2.0  # T: h(u) = 0 outside [-T, T]
        self.g = g[:-1]  # value at each cell's left node
        self.slope6 = np.diff(g) / (6.0 * step)  # cubic coefficient of H2 within a cell
        h1 = np.concatenate([[0.0], np.cumsum(step * (g[:-1] + g[1:]) / 2.0)])
        cell_h2 = h1[:-1] * step + g[:-1] * step**2 / 2.0 + np.diff(g) * step**2 / 6.0
        h2 = np.concatenate([[0.0], np.cumsum(cell_h2)])
        self.h1, self.h2 = h1, h2
        self._h1_cells, self._h2_cells = h1[:-1], h2[:-1]

    def h2_at(self, u: np.ndarray) -> np.ndarray:
        """Second antiderivative ``H2(u)``: 0 before the support, ``H2(T) + (u - T)`` after it."""
        pos = (u + self.half_width) / self.step
        i = np.clip(np.floor(pos), 0, self.n_cells - 1).astype(np.intp)
        r = np.clip(u + self.half_width - i * self.step, 0.0, self.step)
        inside = self._h2_cells[i] + r * (self._h1_cells[i] + r * (self.g[i] / 2.0 + r * self.slope6[i]))
        after = self.h2[-1] + (u - self.half_width)
        return np.where(u <= -self.half_width, 0.0, np.where(u >= self.half_width, after, inside))

    def interval_weights(self, t_out: np.ndarray, t_pkt: np.ndarray) -> np.ndarray:
        """``D[out, interval]``: mean step response of ``h`` over each packet interval (1 left, 0 right of the support)."""
        u = t_out[:, None] - t_pkt[None, :]
        h2 = self.h2_at(u)
        d = (h2[:, :-1] - h2[:, 1:]) / np.diff(t_pkt)[None, :]
        # Exactly 1 / 0 away from the support, so sums telescope without rounding drift.
        d = np.where(u[:, 1:] >= self.half_width, 1.0, d)
        return np.where(u[:, :-1] <= -self.half_width, 0.0, d)


class UniformResampler:
    """Streaming resampler for one segment of rows ``x[packet, feature]`` at strictly increasing times.

    ``push(t, x) -> (t_out[n], y[n, feature])``; ``reset()`` starts a new
    segment (call it at every gap). The caller guarantees increasing times.
    """

    def __init__(self, rate_hz: float, phases: int, taps: np.ndarray) -> None:
        self.rate_hz = float(rate_hz)
        self.phases = int(phases)
        self.kernel = KernelTable(taps, self.rate_hz * self.phases)
        # First output whose support [t_j - T, t_j + T] starts at or after t0.
        self._j_first = math.ceil(self.kernel.half_width * self.rate_hz - 1e-9)
        # Outputs per dense weight block: about one kernel support, so most weights are in the band.
        self.block = max(16, math.ceil(2 * self.kernel.half_width * self.rate_hz))
        self.reset()

    def reset(self) -> None:
        self._t0: float | None = None
        self._rel = np.zeros(0)  # packet times relative to t0 (precision with epoch timestamps)
        self._x: np.ndarray | None = None
        self._j_next = self._j_first

    @property
    def latency_s(self) -> float:
        """How long after ``t_j`` output ``j`` can be computed (the kernel half width)."""
        return self.kernel.half_width

    def push(self, t: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t = np.asarray(t, dtype=np.float64)
        x = np.asarray(x, dtype=np.float64)
        f = x.shape[1]
        if t.shape[0] == 0:
            return np.zeros(0), np.zeros((0, f))
        if self._t0 is None:
            self._t0 = float(t[0])
            self._x = np.zeros((0, f))
        rel = t - self._t0
        self._rel = np.concatenate([self._rel, rel]) if len(self._rel) else rel
        self._x = np.concatenate([self._x, x]) if len(self._x) else x
        T = self.kernel.half_width
        j_last = math.floor((self._rel[-1] - T) * self.rate_hz + 1e-9)
        if j_last < self._j_next:
            return np.zeros(0), np.zeros((0, f))
        j = np.arange(self._j_next, j_last + 1)
        tj = j / self.rate_hz
        y = np.empty((j.shape[0], f))
        for b in range(0, j.shape[0], self.block):
            y[b: b + self.block] = self._outputs(tj[b: b + self.block])
        self._j_next = j_last + 1
        # Keep packets from the last one at or before the next output's support start.
        keep_from = max(0, int(np.searchsorted(self._rel, self._j_next / self.rate_hz - T, side="right")) - 1)
        if keep_from:
            self._rel, self._x = self._rel[keep_from:], self._x[keep_from:]
        return self._t0 + tj, y

    def _outputs(self, tj: np.ndarray) -> np.ndarray:
        T = self.kernel.half_width
        rel = self._rel
        lo = max(0, int(np.searchsorted(rel, tj[0] - T, side="right")) - 1)
        hi = min(rel.shape[0] - 1, int(np.searchsorted(rel, tj[-1] + T, side="left")))
        if tj.shape[0] > 1 and tj.shape[0] * (hi - lo) > MAX_WEIGHTS:
            # A packet burst: fewer outputs per dense weight block, so the temporaries stay bounded
            # (at 20,000 packets/s one block of ~100 outputs would weigh 30+ MB).
            half = tj.shape[0] // 2
            return np.concatenate([self._outputs(tj[:half]), self._outputs(tj[half:])])
        w = self.kernel.interval_weights(tj, rel[lo: hi + 1])  # [out, interval]
        return self._x[lo] + w @ np.diff(self._x[lo: hi + 1], axis=0)
