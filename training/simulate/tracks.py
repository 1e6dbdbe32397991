"""Where a person's body centre is over time: piecewise-linear walks with pauses.

A :class:`Track` is a list of keyframes (time, x, y); between keyframes the person
moves in a straight line at constant speed, or stands still when two keyframes share
a position. Everything is a function of time only, so any packet times (with jitter
and losses) sample the same motion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Track:
    """Keyframes ``times[key]`` (ascending, seconds) and ``xy[key, 2]`` (metres)."""

    times: np.ndarray
    xy: np.ndarray

    def __post_init__(self) -> None:
        if self.times.ndim != 1 or self.xy.shape != (len(self.times), 2) or len(self.times) < 1:
            raise ValueError("a track needs times[key] and xy[key, 2] with at least one key")
        if np.any(np.diff(self.times) <= 0):
            raise ValueError("track keyframe times must increase")

    def position(self, t: np.ndarray) -> np.ndarray:
        """float[time, 2]; before the first / after the last key the person stays put."""
        return np.stack([np.interp(t, self.times, self.xy[:, i]) for i in range(2)], axis=-1)

    def distance(self, t: np.ndarray) -> np.ndarray:
        """float[time]: path length walked so far (drives the gait phase)."""
        seg = np.linalg.norm(np.diff(self.xy, axis=0), axis=1)
        cum = np.concatenate([[0.0], np.cumsum(seg)])
        return np.interp(t, self.times, cum)

    def velocity(self, t: np.ndarray) -> np.ndarray:
        """float[time, 2] of the segment each time falls in (zero outside and in pauses)."""
        if len(self.times) == 1:
            return np.zeros((len(t), 2))
        v_seg = np.diff(self.xy, axis=0) / np.diff(self.times)[:, None]
        idx = np.searchsorted(self.times, t, side="right") - 1
        inside = (idx >= 0) & (idx < len(v_seg))
        out = np.zeros((len(t), 2))
        out[inside] = v_seg[idx[inside]]
        return out

    def heading(self, t: np.ndarray) -> np.ndarray:
        """float[time] facing angle (rad): direction of the last movement, kept while standing."""
        if len(self.times) == 1:
            return np.zeros(len(t))
        d = np.diff(self.xy, axis=0)
        moving = np.linalg.norm(d, axis=1) > 1e-9
        seg_angle = np.arctan2(d[:, 1], d[:, 0])
        # Carry the last movement direction forward through pauses (and back before the first move).
        last = np.where(moving, np.arange(len(d)), -1)
        last = np.maximum.accumulate(last)
        first_move = int(np.argmax(moving)) if moving.any() else 0
        last = np.where(last < 0, first_move, last)
        seg_heading = seg_angle[last]
        idx = np.clip(np.searchsorted(self.times, t, side="right") - 1, 0, len(d) - 1)
        return seg_heading[idx]


def stand(at: tuple[float, float] | np.ndarray) -> Track:
    return Track(times=np.array([0.0]), xy=np.asarray(at, dtype=np.float64).reshape(1, 2))


def random_point(rng: np.random.Generator, area: tuple[float, float, float, float]) -> np.ndarray:
    x0, y0, x1, y1 = area
    return np.array([rng.uniform(x0, x1), rng.uniform(y0, y1)])


def wander(rng: np.random.Generator, area: tuple[float, float, float, float], seconds: float, *,
           speed: tuple[float, float] = (0.6, 1.3), pause: tuple[float, float] = (0.0, 2.0),
           start: np.ndarray | None = None) -> Track:
    """Random waypoints inside ``area``: walk to one at a random speed, pause, repeat."""
    here = random_point(rng, area) if start is None else np.asarray(start, dtype=np.float64)
    times, xy = [0.0], [here]
    t = 0.0
    while t < seconds:
        rest = rng.uniform(*pause)
        if rest > 0:
            t += rest
            times.append(t)
            xy.append(here)
        target = random_point(rng, area)
        t += max(np.linalg.norm(target - here), 1e-3) / rng.uniform(*speed)
        here = target
        times.append(t)
        xy.append(here)
    return Track(times=np.array(times), xy=np.array(xy))


def stand_and_move(rng: np.random.Generator, area: tuple[float, float, float, float], seconds: float, *,
                   stand_s: tuple[float, float] = (2.0, 6.0), speed: tuple[float, float] = (0.4, 1.0)) -> Track:
    """A person mostly standing in one spot, now and then walking to another spot."""
    return wander(rng, area, seconds, speed=speed, pause=stand_s)


def crossing(start: np.ndarray, end: np.ndarray, t_start: float, speed: float) -> Track:
    """A straight walk from ``start`` to ``end`` beginning at ``t_start``."""
    start = np.asarray(start, dtype=np.float64)
    end = np.asarray(end, dtype=np.float64)
    duration = np.linalg.norm(end - start) / speed
    return Track(times=np.array([t_start, t_start + duration]), xy=np.stack([start, end]))
