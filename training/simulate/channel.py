"""Multipath channel: H(f) = sum_k a_k exp(-j 2 pi f tau_k) over the paths of a scene.

Paths:
- line of sight and wall reflections up to order 2 by the image-source method (exact
  for a box: every image of order <= 2 is a valid specular path);
- static furniture and moving body points as bistatic point scatterers, with
  amplitude ``g * lambda / ((4 pi)^1.5 * d1 * d2)`` (radar equation, ``g`` = sqrt RCS);
- people shadow the line of sight and the first-order reflections they stand in:
  each blocked leg is scaled towards the body's transmission by a Gaussian of the
  body centre's horizontal distance from the leg.

Amplitudes are in free-space units (a line of sight at distance d has lambda/(4 pi d)).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgecsi.training.simulate.bodies import SHADOW_WIDTH_M, Person
from edgecsi.training.simulate.scene import Scene

C = 299_792_458.0
MIN_DISTANCE_M = 0.15  # keeps a scatterer touching an antenna from blowing up
_CHUNK_ELEMENTS = 1 << 21  # time x path x subcarrier elements per exp() call


@dataclass(frozen=True)
class StaticPaths:
    """Paths that do not move, for one (rx, tx) antenna pair.

    delay       float[path] seconds
    gain        complex[path] free-space amplitude incl. reflection coefficients
    legs        float[path, 2 legs, 2 ends, 2 xy]: horizontal polyline of the path for
                shadowing (LOS and first-order reflections); NaN legs are never shadowed
    """

    delay: np.ndarray
    gain: np.ndarray
    legs: np.ndarray


def _images(src: np.ndarray, size: tuple[float, float, float], reflect: tuple[float, ...], max_order: int):
    """Image sources of ``src`` in a box: (position, reflection product, order, index triple)."""
    out = []
    rng = range(-max_order, max_order + 1)
    for nx in rng:
        for ny in rng:
            for nz in rng:
                n = (nx, ny, nz)
                order = sum(abs(v) for v in n)
                if order > max_order:
                    continue
                pos = src.astype(np.float64).copy()
                coef = 1.0
                for axis, k in enumerate(n):
                    length = size[axis]
                    lo, hi = reflect[2 * axis], reflect[2 * axis + 1]
                    # Image index k along one axis: |k| reflections alternating between the
                    # two walls; odd k mirror the coordinate, even k shift it.
                    if k % 2:
                        pos[axis] = k * length + (length - src[axis]) if k > 0 else (k + 1) * length - src[axis]
                    else:
                        pos[axis] = k * length + src[axis]
                    coef *= (lo * hi) ** (abs(k) // 2) * (1.0 if k % 2 == 0 else (hi if k > 0 else lo))
                out.append((pos, coef, order, n))
    return out


def static_paths(scene: Scene, rx: np.ndarray, tx: np.ndarray, wavelength: float, max_order: int = 2) -> StaticPaths:
    delays, gains, legs = [], [], []
    for img, coef, order, n in _images(tx, scene.size, scene.reflect, max_order):
        d = max(float(np.linalg.norm(rx - img)), MIN_DISTANCE_M)
        delays.append(d / C)
        gains.append(coef * wavelength / (4 * np.pi * d))
        leg = np.full((2, 2, 2), np.nan)
        if order == 0:
            leg[0] = [tx[:2], rx[:2]]
        elif order == 1:
            axis = int(np.flatnonzero(n)[0])
            plane = 0.0 if n[axis] < 0 else scene.size[axis]
            # Where the straight line image -> rx crosses the wall: the reflection point.
            frac = (plane - img[axis]) / (rx[axis] - img[axis])
            hit = img + frac * (rx - img)
            leg[0] = [tx[:2], hit[:2]]
            leg[1] = [hit[:2], rx[:2]]
        legs.append(leg)
    for pos, g in zip(scene.furniture, scene.furniture_gain):
        d1 = max(float(np.linalg.norm(pos - tx)), MIN_DISTANCE_M)
        d2 = max(float(np.linalg.norm(rx - pos)), MIN_DISTANCE_M)
        delays.append((d1 + d2) / C)
        gains.append(g * wavelength / ((4 * np.pi) ** 1.5 * d1 * d2))
        legs.append(np.full((2, 2, 2), np.nan))
    return StaticPaths(np.array(delays), np.array(gains, dtype=np.complex128), np.array(legs))


def _point_segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Horizontal distance of points p[time, 2] from segments a[path, 2] -> b[path, 2]: [time, path]."""
    ab = b - a
    denom = np.maximum(np.sum(ab * ab, axis=-1), 1e-12)
    ap = p[:, None, :] - a[None, :, :]
    u = np.clip(np.sum(ap * ab[None], axis=-1) / denom[None], 0.0, 1.0)
    closest = a[None] + u[..., None] * ab[None]
    return np.linalg.norm(p[:, None, :] - closest, axis=-1)


def shadowing(paths: StaticPaths, persons: list[Person], t: np.ndarray) -> np.ndarray:
    """float[time, path]: amplitude factor of each static path from people standing in it."""
    factor = np.ones((len(t), len(paths.delay)))
    for person in persons:
        centre = person.centre(t)
        depth = (1.0 - person.shadow_transmission()) * person.presence(t)
        for leg in range(paths.legs.shape[1]):
            a, b = paths.legs[:, leg, 0], paths.legs[:, leg, 1]
            has = ~np.isnan(a[:, 0])
            if not has.any():
                continue
            dist = _point_segment_distance(centre, a[has], b[has])
            factor[:, has] *= 1.0 - depth[:, None] * np.exp(-(dist / SHADOW_WIDTH_M) ** 2)
    return factor


def _sum_paths(gain: np.ndarray, delay: np.ndarray, freqs: np.ndarray) -> np.ndarray:
    """sum_k gain[time, k] exp(-j 2 pi f tau[time, k]) -> complex[time, subcarrier], in chunks.

    The carrier part of the phase is reduced modulo 2 pi in float64 first, so the rest
    (offsets across the band, a few radians) can be evaluated in complex64 at twice the speed.
    """
    n_t, n_k = gain.shape
    f0 = float(freqs[0])
    carrier = np.mod(-2 * np.pi * f0 * delay, 2 * np.pi).astype(np.float32)  # [time, k]
    offsets = (-2 * np.pi * (freqs - f0)).astype(np.float32)  # [subcarrier]
    tau = delay.astype(np.float32)
    g = gain.astype(np.complex64)
    out = np.empty((n_t, len(freqs)), dtype=np.complex128)
    step = max(1, _CHUNK_ELEMENTS // max(1, n_k * len(freqs)))
    for s in range(0, n_t, step):
        phase = carrier[s:s + step, :, None] + tau[s:s + step, :, None] * offsets[None, None, :]
        e = np.exp(1j * phase)
        out[s:s + step] = np.einsum("tk,tkf->tf", g[s:s + step], e)
    return out


def channel_response(scene: Scene, persons: list[Person], t: np.ndarray, freqs: np.ndarray,
                     max_order: int = 2) -> np.ndarray:
    """complex128[time, rx, tx, subcarrier]: the noiseless channel at times ``t``, frequencies ``freqs``."""
    wavelength = C / float(np.mean(freqs))
    n_rx, n_tx = len(scene.rx), len(scene.tx)
    out = np.empty((len(t), n_rx, n_tx, len(freqs)), dtype=np.complex128)
    for r in range(n_rx):
        for s in range(n_tx):
            rx, tx = scene.rx[r], scene.tx[s]
            paths = static_paths(scene, rx, tx, wavelength, max_order)
            steering = np.exp(-2j * np.pi * paths.delay[:, None] * freqs[None, :])  # [path, subcarrier]
            h = (shadowing(paths, persons, t) * paths.gain[None, :]) @ steering
            for person in persons:
                rows = person.presence(t) > 0  # doorway walkers exist only during their pass
                if not rows.any():
                    continue
                pos, g = person.scatterers(t[rows], tx, rx, wavelength)
                d1 = np.maximum(np.linalg.norm(pos - tx, axis=-1), MIN_DISTANCE_M)
                d2 = np.maximum(np.linalg.norm(rx - pos, axis=-1), MIN_DISTANCE_M)
                amp = g * wavelength / ((4 * np.pi) ** 1.5 * d1 * d2)
                h[rows] += _sum_paths(amp, (d1 + d2) / C, freqs)
            out[:, r, s, :] = h
    return out
