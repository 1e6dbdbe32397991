"""Packet ordering and gap detection: where one uniform segment ends and the next begins."""

from __future__ import annotations

import numpy as np


def first_clock_reset(time: np.ndarray, last_time: float | None, max_gap_s: float) -> int | None:
    """Index of the first packet more than ``max_gap_s`` EARLIER than every packet before it, or None.

    Such a jump is a clock reset (a device rebooted, a replay restarted), not a
    straggler: the stream starts over from there instead of dropping every
    packet until the clock catches up.
    """
    t = np.asarray(time, dtype=np.float64)
    if t.shape[0] == 0:
        return None
    start = -np.inf if last_time is None else last_time
    prev_max = np.maximum.accumulate(np.concatenate([[start], t[:-1]]))
    back = np.flatnonzero(t < prev_max - max_gap_s)
    return int(back[0]) if back.size else None


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
