"""Who is in the scene and what they do, and the per-packet labels that follow from it.

Scenarios:
- ``empty``: nobody.
- ``presence``: one person, mostly standing somewhere (breathing, swaying), now and
  then walking to another spot.
- ``walk``: one person walking between random waypoints; labels carry the position
  and a zone (3 x 3 grid over the walkable area).
- ``crowd``: ``people`` persons wandering with pauses; labels carry the count.
- ``doorway``: a series of passes through the TX-RX link of a doorway scene, each by a
  new walker carrying nothing, metal or liquid; labels carry the pass and the object.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgecsi.training.simulate import tracks
from edgecsi.training.simulate.bodies import CARRY_KINDS, Person, random_person
from edgecsi.training.simulate.scene import Scene

SCENARIOS = ("empty", "presence", "walk", "crowd", "doorway")
SCENE_KIND = {"empty": "room", "presence": "room", "walk": "room", "crowd": "room", "doorway": "doorway"}
ACTIVITIES = ("empty", "standing", "walking")
ZONE_GRID = (3, 3)
WALKING_SPEED = 0.2  # m/s above which a person counts as walking
PASS_FADE_S = 0.6
PASS_REACH_M = 2.2  # walkers start and end this far from the link line


@dataclass
class Cast:
    """The people of one simulation and, for doorways, the passes (one person each)."""

    persons: list[Person]
    passes: list[dict] = field(default_factory=list)


def build_cast(scenario: str, scene: Scene, seconds: float, rng: np.random.Generator, *, people: int = 3,
               carry: str = "random") -> Cast:
    if scenario == "empty":
        return Cast([])
    if scenario == "presence":
        track = tracks.stand_and_move(rng, scene.walk_area, seconds)
        return Cast([random_person(rng, track)])
    if scenario == "walk":
        track = tracks.wander(rng, scene.walk_area, seconds, pause=(0.0, 0.8))
        return Cast([random_person(rng, track)])
    if scenario == "crowd":
        if people < 0:
            raise ValueError("people must be >= 0")
        return Cast([random_person(rng, tracks.wander(rng, scene.walk_area, seconds, pause=(0.0, 4.0)))
                     for _ in range(people)])
    if scenario == "doorway":
        return _doorway_passes(scene, seconds, rng, carry)
    raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")


def _doorway_passes(scene: Scene, seconds: float, rng: np.random.Generator, carry: str) -> Cast:
    if carry != "random" and carry not in CARRY_KINDS:
        raise ValueError(f"carry must be 'random' or one of {CARRY_KINDS}, got {carry!r}")
    axis = scene.link_axis
    across = 1 - axis
    line = float(np.mean(np.concatenate([scene.tx, scene.rx])[:, axis]))
    door_centre = float(np.mean(np.concatenate([scene.tx, scene.rx])[:, across]))
    persons, passes = [], []
    t = float(rng.uniform(0.2, 1.5))
    while t < seconds:
        kind = str(rng.choice(CARRY_KINDS)) if carry == "random" else carry
        speed = float(rng.uniform(0.8, 1.5))
        direction = float(rng.choice([-1.0, 1.0]))
        offset = float(rng.uniform(-0.15, 0.15))
        start, end = np.zeros(2), np.zeros(2)
        start[axis], end[axis] = line - direction * PASS_REACH_M, line + direction * PASS_REACH_M
        start[across] = end[across] = door_centre + offset
        track = tracks.crossing(start, end, t, speed)
        t_off = float(track.times[-1])
        persons.append(random_person(rng, track, carry=kind, window=(t, t_off, PASS_FADE_S)))
        passes.append({"pass": len(passes), "t_start": round(t, 4), "t_end": round(t_off, 4),
                       "t_cross": round(t + PASS_REACH_M / speed, 4), "carry": kind,
                       "carry_at": persons[-1].carry_at, "speed_m_s": round(speed, 3),
                       "direction": int(direction), "offset_m": round(offset, 3)})
        t = t_off + float(rng.uniform(0.5, 2.5))
    return Cast(persons, passes)


def _zone(xy: np.ndarray, area: tuple[float, float, float, float]) -> np.ndarray:
    x0, y0, x1, y1 = area
    nx, ny = ZONE_GRID
    ix = np.clip(((xy[:, 0] - x0) / (x1 - x0) * nx).astype(int), 0, nx - 1)
    iy = np.clip(((xy[:, 1] - y0) / (y1 - y0) * ny).astype(int), 0, ny - 1)
    return iy * nx + ix


def labels_for(cast: Cast, scene: Scene, t: np.ndarray) -> dict[str, np.ndarray]:
    """Per-packet labels at times ``t``.

    presence int8 (anyone there), count int16, activity int8 (index into ACTIVITIES:
    anyone walking beats anyone standing), x/y float32 (metres, the one person's
    position; NaN unless exactly one person is there), zone int16 (3 x 3 grid cell of
    x/y, -1 without a position), pass int16 (doorway pass while its walker is there:
    past the middle of the fade-in, before the middle of the fade-out; else -1),
    carry int8 (index into CARRY_KINDS for the walker of that pass; else -1).
    """
    n = len(t)
    here = np.zeros((n, len(cast.persons)), dtype=bool)
    walking = np.zeros(n, dtype=bool)
    xy = np.full((n, 2), np.nan)
    for i, person in enumerate(cast.persons):
        here[:, i] = person.presence(t) >= 0.5
        speed = np.linalg.norm(person.track.velocity(t), axis=1)
        walking |= here[:, i] & (speed > WALKING_SPEED)
    count = here.sum(axis=1)
    single = count == 1
    if single.any():
        who = np.argmax(here, axis=1)
        for i, person in enumerate(cast.persons):
            rows = single & (who == i)
            if rows.any():
                xy[rows] = person.centre(t[rows])
    zone = np.full(n, -1, dtype=np.int16)
    zone[single] = _zone(xy[single], scene.walk_area)
    activity = np.where(walking, 2, np.where(count > 0, 1, 0)).astype(np.int8)
    pass_id = np.full(n, -1, dtype=np.int16)
    carry = np.full(n, -1, dtype=np.int8)
    for i, p in enumerate(cast.passes):  # a doorway's persons are its passes, in order
        rows = here[:, i]
        pass_id[rows] = p["pass"]
        carry[rows] = CARRY_KINDS.index(p["carry"])
    return {
        "presence": (count > 0).astype(np.int8),
        "count": count.astype(np.int16),
        "activity": activity,
        "x": xy[:, 0].astype(np.float32),
        "y": xy[:, 1].astype(np.float32),
        "zone": zone,
        "pass": pass_id,
        "carry": carry,
    }
