"""When packets are sent and which arrive: jittered send times, bursty losses, 802.11 sequence numbers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Schedule:
    """Packets that reached the receiver.

    time  float64[packet] seconds since the start of the simulation, whole microseconds, increasing
    seq   int64[packet] 802.11 sequence number (12 bits, wraps; gaps where packets were lost)
    sent  how many packets the transmitter sent
    """

    time: np.ndarray
    seq: np.ndarray
    sent: int


def schedule(seconds: float, rate_hz: float, rng: np.random.Generator, *, jitter: float = 0.05,
             loss: float = 0.02, burst_len: float = 4.0, late_prob: float = 0.01) -> Schedule:
    """Send at ``rate_hz`` for ``seconds`` with timing jitter and Gilbert-Elliott losses.

    ``jitter`` is the send-time standard deviation as a fraction of the period; with
    probability ``late_prob`` a packet is held back by channel contention (exponential
    delay, mean 3 periods). ``loss`` is the long-run loss rate, lost in bursts of
    ``burst_len`` packets on average.
    """
    if seconds <= 0 or rate_hz <= 0:
        raise ValueError("seconds and rate_hz must be positive")
    if not 0.0 <= loss < 1.0:
        raise ValueError("loss must be in [0, 1)")
    period = 1.0 / rate_hz
    n = max(1, int(round(seconds * rate_hz)))
    t = np.arange(n) * period + np.abs(rng.normal(0.0, jitter * period, n))
    late = rng.random(n) < late_prob
    t[late] += rng.exponential(3 * period, int(late.sum()))
    # Whole microseconds (what capture files keep), strictly increasing as any receive clock
    # is: a held-back packet also holds back the queue behind it.
    us = np.round(t * 1e6).astype(np.int64) - np.arange(n)
    t = (np.maximum.accumulate(us) + np.arange(n)) * 1e-6
    lost = _gilbert_elliott(n, loss, burst_len, rng)
    seq0 = int(rng.integers(0, 4096))
    seq = (seq0 + np.arange(n, dtype=np.int64)) % 4096
    keep = ~lost
    return Schedule(time=t[keep], seq=seq[keep], sent=n)


def _gilbert_elliott(n: int, loss: float, burst_len: float, rng: np.random.Generator) -> np.ndarray:
    """bool[packet]: lost packets, two-state Markov chain (good: none lost, bad: all lost)."""
    if loss == 0.0:
        return np.zeros(n, dtype=bool)
    p_recover = 1.0 / max(burst_len, 1.0)
    p_fail = loss * p_recover / (1.0 - loss)  # stationary P(bad) = loss
    u = rng.random(n)
    lost = np.empty(n, dtype=bool)
    bad = rng.random() < loss
    for i in range(n):
        lost[i] = bad
        bad = (u[i] >= p_recover) if bad else (u[i] < p_fail)
    return lost
