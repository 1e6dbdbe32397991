"""Packet ordering and gap detection: where one uniform segment ends and the next begins."""

from __future__ import annotations

import numpy as np


def increasing_mask(time: np.ndarray, last_time: float | None) -> np.ndarray:
    """True for packets later than every packet before them (and ``last_time``).

    Duplicates and packets that arrive out of order are dropped rather than
    reordered: the gateway cannot wait for stragglers.
    """
    t = np.asarray(time, dtype=np.float64)
    if t.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    start = -np.inf if last_time is None else last_time
    prev_max = np.maximum.accumulate(np.concatenate([[start], t[:-1]]))
    return t > prev_max


def segment_starts(time: np.ndarray, last_time: float | None, max_gap_s: float) -> np.ndarray:
    """Indices into increasing ``time`` where a new segment begins.

    Index 0 is a start when there is no previous packet or the gap from
    ``last_time`` exceeds ``max_gap_s``.
    """
    t = np.asarray(time, dtype=np.float64)
    if t.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    prev = np.concatenate([[np.nan if last_time is None else last_time], t[:-1]])
    with np.errstate(invalid="ignore"):
        gap = ~(t - prev <= max_gap_s)  # NaN (no previous packet) counts as a gap
    return np.flatnonzero(gap)
