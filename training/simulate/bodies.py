"""A person as a moving cluster of point scatterers, plus what they may carry.

Body points (torso ring, head, hands, knees, feet) sit in a body frame that follows
the :class:`~edgecsi.training.simulate.tracks.Track`: forward = heading, left, up.
Micro-motion that a standing person still has: breathing (the torso surface moves a
few millimetres along its outward normal), slow postural sway, and now and then a
gesture (a hand, the head or the upper body moves a few centimetres and back over a
second or two). Walking adds arm and leg swing locked to the distance walked, and a
vertical bob at the step rate.

Carried objects (concealed under a jacket at the chest, in a backpack, or in a
shoulder bag at the hip):
``metal`` is a flat plate (a laptop, a tray): physical-optics RCS ``4 pi A^2 / lambda^2``
in a specular lobe ``lambda / L`` wide around the plate normal, a weaker edge-diffraction
floor elsewhere, and it blocks a little more; ``liquid`` (a water bottle) reflects
weakly with a phase flip and absorbs strongly, so it mostly deepens the body's shadow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgecsi.training.simulate.tracks import Track

CARRY_KINDS = ("none", "metal", "liquid")

# Body frame points for a 1.75 m person: (forward, left, up), |sqrt RCS| (m), part name.
_TORSO_ANGLES = np.deg2rad([0, 90, 180, 270])
_TORSO_HEIGHTS = (1.08, 1.35)
_TORSO_RADII = (0.12, 0.18)  # forward, lateral half-axes of the torso ellipse
_BREATH_MM = {0: 5.0, 90: 2.0, 180: 1.0, 270: 2.0}

PLATE_AREA_M2 = 0.05  # 25 x 20 cm
PLATE_SIZE_M = 0.25
PLATE_FLOOR = 0.15  # off-specular (edge) return relative to the specular peak
BOTTLE_GAIN = 0.35  # sqrt RCS of a 0.5 l water bottle (dielectric cylinder, broadside)
# Where an object is carried: body-frame (forward, left, up) position and the outward
# normal (forward, left) of its flat face. Chest: concealed under a jacket; back: in a
# backpack; hip: in a shoulder bag at the side. On a doorway link (radios on the jambs)
# a side-facing plate only ever shows its edge, so by default objects go chest or back.
CARRY_PLACES = {
    "chest": (0.17, 0.0, 1.15, 1.0, 0.0),
    "back": (-0.24, 0.0, 1.20, -1.0, 0.0),
    "hip": (0.0, -0.30, 0.90, 0.0, -1.0),
}
DEFAULT_CARRY_PLACES = ("chest", "back")

STRIDE_M = 1.4  # one full arm/leg cycle per stride (two steps)
# A person's body on a link: amplitude transmission through the torso, and the
# (Gaussian) half-width of the shadow around the body centre, Fresnel zone included.
BODY_TRANSMISSION = 0.25
SHADOW_WIDTH_M = 0.28
# Extra transmission factor when the carried object is in the link's way.
CARRY_TRANSMISSION = {"none": 1.0, "metal": 0.6, "liquid": 0.35}


def _base_points() -> tuple[np.ndarray, np.ndarray, list[str]]:
    pts, gains, parts = [], [], []
    for z in _TORSO_HEIGHTS:
        for a in _TORSO_ANGLES:
            pts.append((_TORSO_RADII[0] * np.cos(a), _TORSO_RADII[1] * np.sin(a), z))
            gains.append(0.30)
            parts.append(f"torso{int(round(np.rad2deg(a)))}")
    for p, g, name in (((0.0, 0.0, 1.65), 0.20, "head"),
                       ((0.0, 0.25, 0.85), 0.12, "hand_l"), ((0.0, -0.25, 0.85), 0.12, "hand_r"),
                       ((0.0, 0.10, 0.50), 0.15, "knee_l"), ((0.0, -0.10, 0.50), 0.15, "knee_r"),
                       ((0.0, 0.10, 0.10), 0.10, "foot_l"), ((0.0, -0.10, 0.10), 0.10, "foot_r")):
        pts.append(p)
        gains.append(g)
        parts.append(name)
    return np.array(pts), np.array(gains), parts


BODY_POINTS, BODY_GAINS, BODY_PARTS = _base_points()
# Point indices that move together in a gesture: each hand, the head, the upper body.
_GESTURE_GROUPS = [
    np.array([BODY_PARTS.index("hand_l")]),
    np.array([BODY_PARTS.index("hand_r")]),
    np.array([BODY_PARTS.index("head")]),
    np.array([i for i, p in enumerate(BODY_PARTS) if p.startswith("torso") or p == "head"]),
]
_GESTURE_REACH_M = (0.20, 0.20, 0.04, 0.03)  # how far each group typically moves


def random_gestures(rng: np.random.Generator, seconds: float, rate_hz: float) -> np.ndarray:
    """float[gesture, 6] (start, duration, group, dx, dy, dz): a Poisson stream of small movements."""
    n = int(rng.poisson(rate_hz * seconds))
    start = rng.uniform(-1.0, seconds, n)
    duration = rng.uniform(0.8, 2.5, n)
    group = rng.integers(0, len(_GESTURE_GROUPS), n)
    move = rng.normal(0.0, 1.0, (n, 3))
    move /= np.maximum(np.linalg.norm(move, axis=1, keepdims=True), 1e-9)
    move *= (np.asarray(_GESTURE_REACH_M)[group] * rng.uniform(0.3, 1.0, n))[:, None]
    return np.column_stack([start, duration, group, move])


@dataclass(frozen=True)
class Person:
    """One person in the scene.

    track       where the body centre is
    height_m    scales the vertical body coordinates
    phases      complex[point] unit-magnitude reflection phase of each body point
                (random surface detail; fixed per person)
    gain_scale  float[point] per-point reflectivity spread around the nominal
    breath_hz   breathing rate; sway (2 sinusoids per axis) is ``sway_amp`` metres
    gestures    float[gesture, 6]: start time, duration, body-part group, dx, dy, dz
                (body frame, metres; the group moves there and back with a Hann profile)
    carry       "none", "metal" or "liquid"; ``carry_at`` a key of CARRY_PLACES
    window      (t_on, t_off, fade_s): present between these times, fading in and out
                (a walker coming round a corner); None = present all the time
    """

    track: Track
    height_m: float
    phases: np.ndarray
    gain_scale: np.ndarray
    breath_hz: float
    breath_phase: float
    sway_hz: np.ndarray
    sway_phase: np.ndarray
    sway_amp: float
    gestures: np.ndarray
    carry: str = "none"
    carry_at: str = "chest"
    carry_phase: float = 0.0
    window: tuple[float, float, float] | None = None

    def presence(self, t: np.ndarray) -> np.ndarray:
        """float[time] in [0, 1]: how much of the person is in the scene."""
        if self.window is None:
            return np.ones(len(t))
        on, off, fade = self.window
        up = np.clip((t - on) / fade, 0.0, 1.0) if fade > 0 else (t >= on).astype(float)
        down = np.clip((off - t) / fade, 0.0, 1.0) if fade > 0 else (t <= off).astype(float)
        return np.minimum(up, down)

    def centre(self, t: np.ndarray) -> np.ndarray:
        """float[time, 2]: track position plus postural sway."""
        xy = self.track.position(t)
        sway = np.stack([
            np.sum(np.sin(2 * np.pi * self.sway_hz[axis][None, :] * t[:, None] + self.sway_phase[axis][None, :]),
                   axis=1)
            for axis in range(2)], axis=-1)
        return xy + self.sway_amp * sway

    def scatterers(self, t: np.ndarray, tx: np.ndarray, rx: np.ndarray,
                   wavelength: float) -> tuple[np.ndarray, np.ndarray]:
        """Positions float[time, point, 3] and complex gains complex[time, point].

        ``tx``/``rx`` (one antenna each) and ``wavelength`` shape the specular lobe of a metal plate.
        """
        n = len(t)
        centre = self.centre(t)
        heading = self.track.heading(t)
        speed = np.linalg.norm(self.track.velocity(t), axis=1)
        gait = np.clip(speed / 1.2, 0.0, 1.0)
        phase = 2 * np.pi * self.track.distance(t) / STRIDE_M
        zs = self.height_m / 1.75

        local = np.broadcast_to(BODY_POINTS, (n, *BODY_POINTS.shape)).copy()
        local[:, :, 2] *= zs
        # Breathing: torso points move along their outward normal (front most).
        breath = np.sin(2 * np.pi * self.breath_hz * t + self.breath_phase)
        for i, part in enumerate(BODY_PARTS):
            if part.startswith("torso"):
                angle = int(part[5:])
                normal = np.array([np.cos(np.deg2rad(angle)), np.sin(np.deg2rad(angle))])
                local[:, i, :2] += (_BREATH_MM[angle] * 1e-3 * breath)[:, None] * normal
        # Walking: limbs swing along the forward axis, opposite arm and leg together.
        swing = {"hand_l": -0.20, "hand_r": 0.20, "knee_l": 0.25, "knee_r": -0.25,
                 "foot_l": 0.35, "foot_r": -0.35}
        for i, part in enumerate(BODY_PARTS):
            if part in swing:
                local[:, i, 0] += swing[part] * gait * np.sin(phase)
            elif part.startswith("torso") or part == "head":
                local[:, i, 2] += 0.025 * gait * np.cos(2 * phase)
        for start, duration, group, *move in self.gestures:
            u = (t - start) / duration
            bump = np.where((u > 0) & (u < 1), 0.5 * (1 - np.cos(2 * np.pi * np.clip(u, 0, 1))), 0.0)
            local[:, _GESTURE_GROUPS[int(group)], :] += bump[:, None, None] * np.asarray(move)
        gains = (BODY_GAINS * self.gain_scale * self.phases)[None, :].repeat(n, axis=0)

        if self.carry != "none":
            obj, gain = self._carried(t, heading, centre, tx, rx, wavelength, gait, phase, zs)
            local = np.concatenate([local, obj[:, None, :]], axis=1)
            gains = np.concatenate([gains, gain[:, None]], axis=1)

        world = _to_world(local, centre, heading)
        return world, gains * self.presence(t)[:, None]

    def _carried(self, t, heading, centre, tx, rx, wavelength, gait, phase, zs):
        x, y, z, nx, ny = CARRY_PLACES[self.carry_at]
        pos = np.broadcast_to(np.array([x, y, z * zs]), (len(t), 3)).copy()
        normal_local = np.array([nx, ny])
        if self.carry_at != "chest":  # a bag swings a little with the gait
            pos[:, 0] += 0.05 * gait * np.sin(phase)
        if self.carry == "liquid":
            # Water: weak reflection with a phase flip; its effect is mainly absorption.
            gain = np.full(len(t), -BOTTLE_GAIN * np.exp(1j * self.carry_phase), dtype=np.complex128)
            return pos, gain
        # Metal plate: specular lobe around the bistatic bisector.
        world = _to_world(pos[:, None, :], centre, heading)[:, 0, :]
        to_tx = tx[None, :] - world
        to_rx = rx[None, :] - world
        bis = to_tx / np.linalg.norm(to_tx, axis=1, keepdims=True) + to_rx / np.linalg.norm(to_rx, axis=1, keepdims=True)
        bis /= np.maximum(np.linalg.norm(bis, axis=1, keepdims=True), 1e-9)
        c, s = np.cos(heading), np.sin(heading)
        normal = np.stack([c * normal_local[0] - s * normal_local[1], s * normal_local[0] + c * normal_local[1],
                           np.zeros_like(c)], axis=-1)
        # Only the outward face reflects specularly; the body hides the inner one.
        angle = np.arccos(np.clip(np.sum(bis * normal, axis=1), -1.0, 1.0))
        peak = np.sqrt(4 * np.pi) * PLATE_AREA_M2 / wavelength
        width = wavelength / PLATE_SIZE_M
        lobe = PLATE_FLOOR + (1 - PLATE_FLOOR) * np.exp(-(angle / width) ** 2)
        return pos, peak * lobe * np.exp(1j * self.carry_phase)

    def shadow_transmission(self) -> float:
        """Amplitude transmission through this person (and what they carry) on a blocked path."""
        return BODY_TRANSMISSION * CARRY_TRANSMISSION[self.carry]


def _to_world(local: np.ndarray, centre: np.ndarray, heading: np.ndarray) -> np.ndarray:
    """Body frame float[time, point, 3] -> room frame, rotating by heading about z."""
    c, s = np.cos(heading)[:, None], np.sin(heading)[:, None]
    out = np.empty_like(local)
    out[:, :, 0] = centre[:, None, 0] + c * local[:, :, 0] - s * local[:, :, 1]
    out[:, :, 1] = centre[:, None, 1] + s * local[:, :, 0] + c * local[:, :, 1]
    out[:, :, 2] = local[:, :, 2]
    return out


def random_person(rng: np.random.Generator, track: Track, *, carry: str = "none", carry_at: str | None = None,
                  window: tuple[float, float, float] | None = None, gesture_rate_hz: float = 0.25) -> Person:
    """A person with random build, breathing, sway and gestures drawn from ``rng``.

    Gestures are drawn over the track's time span (at least 60 s) at ``gesture_rate_hz``.
    """
    if carry not in CARRY_KINDS:
        raise ValueError(f"carry must be one of {CARRY_KINDS}, got {carry!r}")
    if carry_at is not None and carry_at not in CARRY_PLACES:
        raise ValueError(f"carry_at must be one of {tuple(CARRY_PLACES)}, got {carry_at!r}")
    k = len(BODY_POINTS)
    return Person(
        track=track,
        height_m=float(rng.uniform(1.55, 1.95)),
        phases=np.exp(1j * rng.uniform(0, 2 * np.pi, k)),
        gain_scale=rng.uniform(0.7, 1.3, k),
        breath_hz=float(rng.uniform(0.18, 0.33)),
        breath_phase=float(rng.uniform(0, 2 * np.pi)),
        sway_hz=rng.uniform(0.05, 0.5, (2, 2)),
        sway_phase=rng.uniform(0, 2 * np.pi, (2, 2)),
        sway_amp=float(rng.uniform(0.004, 0.012)),
        gestures=random_gestures(rng, max(float(track.times[-1]), 60.0), gesture_rate_hz),
        carry=carry,
        carry_at=carry_at or str(rng.choice(DEFAULT_CARRY_PLACES)),
        carry_phase=float(rng.uniform(0, 2 * np.pi)),
        window=window,
    )
