"""The static world: a box-shaped room, its walls, the radios, and the furniture.

Coordinates are metres: x along the room's width, y along its depth, z up from the
floor. Walls are the six faces of the box; each has an amplitude reflection
coefficient (negative: the phase flip of a high-permittivity surface). Furniture is
a set of static point scatterers. Two variants of each kind of scene exist: ``base``
and ``changed`` (other walls, moved furniture, other placement of the radios) so a
model trained on one can be tested on a second domain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("room", "doorway")
VARIANTS = ("base", "changed")


@dataclass(frozen=True)
class Scene:
    """A room and everything in it that does not move.

    size            (x, y, z) of the box
    reflect         amplitude reflection coefficient of the faces
                    x=0, x=X, y=0, y=Y, floor, ceiling
    tx              float[tx, 3] transmit antenna positions
    rx              float[rx, 3] receive antenna positions
    furniture       float[object, 3] static scatterer positions
    furniture_gain  complex[object] square root of each object's radar cross-section (m)
    walk_area       (x0, y0, x1, y1): where people may walk
    link_axis       for doorways: the walkers cross the TX-RX line along this axis (0 = x, 1 = y)
    """

    name: str
    size: tuple[float, float, float]
    reflect: tuple[float, float, float, float, float, float]
    tx: np.ndarray
    rx: np.ndarray
    furniture: np.ndarray
    furniture_gain: np.ndarray
    walk_area: tuple[float, float, float, float]
    link_axis: int = 1

    def describe(self) -> dict:
        """JSON-friendly summary for the labels sidecar."""
        return {
            "name": self.name,
            "size_m": list(self.size),
            "wall_reflection": list(self.reflect),
            "tx_m": self.tx.round(3).tolist(),
            "rx_m": self.rx.round(3).tolist(),
            "furniture_m": self.furniture.round(3).tolist(),
            "walk_area_m": list(self.walk_area),
        }


def _furniture(items: list[tuple[tuple[float, float, float], float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """(position, |sqrt RCS|, phase) rows -> positions and complex gains."""
    pos = np.array([p for p, _, _ in items], dtype=np.float64)
    gain = np.array([g * np.exp(1j * ph) for _, g, ph in items], dtype=np.complex128)
    return pos, gain


def _room_base() -> Scene:
    # A 5 x 4 m lab: concrete walls, a window wall (x=X), router in one corner, the
    # receiver on a shelf diagonally across; a table, a steel cabinet, a sofa.
    pos, gain = _furniture([
        ((2.6, 3.1, 0.75), 0.5, 0.3), ((3.2, 3.1, 0.75), 0.4, 2.1), ((2.9, 3.5, 0.70), 0.3, 4.0),
        ((4.6, 0.4, 1.00), 1.2, 1.0), ((4.6, 0.4, 1.70), 0.9, 5.2),
        ((0.5, 3.4, 0.45), 0.4, 3.3), ((1.3, 3.5, 0.45), 0.4, 0.7),
    ])
    return Scene(
        name="room/base", size=(5.0, 4.0, 2.8), reflect=(-0.45, -0.30, -0.45, -0.50, -0.40, -0.35),
        tx=np.array([[0.6, 0.7, 1.40]]), rx=np.array([[4.3, 3.2, 1.00]]),
        furniture=pos, furniture_gain=gain, walk_area=(0.5, 0.5, 4.5, 3.5))


def _room_changed() -> Scene:
    # Another building: a longer, narrower office with plasterboard walls, one wall of
    # metal-backed panels, furniture elsewhere; the radios are re-mounted at other heights.
    pos, gain = _furniture([
        ((1.2, 0.5, 0.75), 0.6, 1.7), ((1.8, 0.5, 0.75), 0.5, 4.4),
        ((5.5, 2.9, 1.10), 1.4, 2.6), ((3.0, 3.1, 0.50), 0.5, 0.2),
        ((4.1, 0.6, 0.90), 0.7, 3.9), ((0.4, 2.2, 1.20), 0.3, 5.8),
    ])
    return Scene(
        name="room/changed", size=(6.0, 3.5, 2.6), reflect=(-0.30, -0.25, -0.70, -0.30, -0.45, -0.25),
        tx=np.array([[1.0, 3.1, 1.70]]), rx=np.array([[5.2, 0.5, 0.80]]),
        furniture=pos, furniture_gain=gain, walk_area=(0.5, 0.5, 5.5, 3.0))


def _doorway_base() -> Scene:
    # Hallway side of a door: TX and RX on the two jambs of a 0.9 m door at y = 2.5,
    # 1.1 m high; walkers cross along y. The steel door frame is four strong scatterers.
    pos, gain = _furniture([
        ((1.50, 2.5, 0.3), 0.5, 0.4), ((1.50, 2.5, 2.0), 0.5, 2.2),
        ((2.50, 2.5, 0.3), 0.5, 3.1), ((2.50, 2.5, 2.0), 0.5, 5.0),
        ((0.4, 0.6, 1.0), 0.6, 1.3), ((3.6, 4.4, 0.8), 0.5, 4.2),
    ])
    return Scene(
        name="doorway/base", size=(4.0, 5.0, 2.5), reflect=(-0.45, -0.45, -0.35, -0.35, -0.40, -0.30),
        tx=np.array([[1.55, 2.5, 1.10]]), rx=np.array([[2.45, 2.5, 1.10]]),
        furniture=pos, furniture_gain=gain, walk_area=(1.0, 0.3, 3.0, 4.7), link_axis=1)


def _doorway_changed() -> Scene:
    # A wider (1.0 m) wooden door in a narrower corridor, radios mounted lower.
    pos, gain = _furniture([
        ((1.20, 3.0, 2.05), 0.25, 1.1), ((2.30, 3.0, 2.05), 0.25, 2.9),
        ((0.3, 5.5, 1.0), 0.8, 0.6), ((3.2, 0.8, 0.6), 0.6, 3.7),
    ])
    return Scene(
        name="doorway/changed", size=(3.5, 6.0, 2.7), reflect=(-0.30, -0.55, -0.30, -0.40, -0.35, -0.30),
        tx=np.array([[1.25, 3.0, 0.95]]), rx=np.array([[2.25, 3.0, 0.95]]),
        furniture=pos, furniture_gain=gain, walk_area=(0.8, 0.3, 2.7, 5.7), link_axis=1)


_BUILDERS = {
    ("room", "base"): _room_base,
    ("room", "changed"): _room_changed,
    ("doorway", "base"): _doorway_base,
    ("doorway", "changed"): _doorway_changed,
}


def make_scene(kind: str, variant: str = "base") -> Scene:
    """The preset scene ``kind`` ("room" or "doorway") in ``variant`` ("base" or "changed")."""
    try:
        return _BUILDERS[(kind, variant)]()
    except KeyError:
        raise ValueError(f"no scene {kind!r}/{variant!r}; kinds {KINDS}, variants {VARIANTS}") from None
