"""Conjugate multiplication between receive antennas.

All chains of one NIC share the oscillator, so ``H_a * conj(H_b)`` cancels
the per-packet carrier phase, sampling time offset and (mostly) AGC phase that
make raw phase useless, and keeps the path-difference phase that motion
changes. Pairs are adjacent antennas ``(0, 1), (1, 2), ...``; with two
antennas that is the one pair.
"""

from __future__ import annotations

import numpy as np


def antenna_pairs(n_rx: int) -> list[tuple[int, int]]:
    """Adjacent receive-antenna pairs used for conjugate multiplication."""
    return [(r, r + 1) for r in range(n_rx - 1)]


def conjugate_products(csi: np.ndarray) -> np.ndarray:
    """``prod[packet, pair, tx, subcarrier]`` complex: ``csi[:, a] * conj(csi[:, b])`` per adjacent pair.

    Input ``csi[packet, rx, tx, subcarrier]`` with ``rx >= 2``.
    """
    if csi.shape[1] < 2:
        raise ValueError("conjugate multiplication needs at least two receive antennas")
    return csi[:, :-1] * np.conj(csi[:, 1:])
