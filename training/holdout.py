"""Which training windows validate: the training-side hold-out, subsampling, targets, class positions.

Shared by ``train`` and ``baselines`` so a neural model and a baseline on the same split see exactly
the same training and validation windows. Nothing here ever looks at a test set.
"""

from __future__ import annotations

import numpy as np

from edgecsi.training.datasets import WindowSet
from edgecsi.training.datasets.splits import Split

TARGETS = ("class", "value", "coords")


def resolve_target(ws: WindowSet, target: str) -> str:
    """"class" | "value" | "coords" for this set; "auto" -> class unless the set is a regression set."""
    if target == "auto":
        return "value" if ws.is_regression else "class"
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS} or 'auto', not {target!r}")
    if target == "class" and ws.is_regression:
        raise ValueError(f"{ws.name}: regression set, no classes (load it with class labels)")
    if target == "coords" and (ws.coords is None or not np.isfinite(ws.coords).all(axis=1).any()):
        raise ValueError(f"{ws.name}: target 'coords' needs window coordinates (ws.coords)")
    return target


def targets(ws: WindowSet, target: str) -> np.ndarray:
    """int64[window] class indices, or float32[window, 1] values, or float32[window, 2] coordinates."""
    if target == "class":
        return ws.y.astype(np.int64)
    if target == "value":
        return ws.y.astype(np.float32).reshape(-1, 1)
    return ws.coords.astype(np.float32)


def validation_part(ws: WindowSet, sp: Split, fraction: float, group: str | None,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    """(train, val, how val was chosen): the split's own val, else carved out of split.train."""
    if len(sp.val):
        return sp.train, sp.val, "split.val"
    train = np.asarray(sp.train, np.int64)
    if fraction <= 0 or len(train) < 10:
        return train, np.zeros(0, np.int64), "none"
    if group:
        values = ws.domains[group][train]
        groups = rng.permutation(np.unique(values))
        want, taken, chosen = fraction * len(train), 0, []
        for g in groups[:-1]:                      # always leave at least one group to train on
            if taken >= want:
                break
            chosen.append(g)
            taken += int((values == g).sum())
        is_val = np.isin(values, chosen)
        return train[~is_val], train[is_val], f"groups of {group!r}: {[_plain(g) for g in chosen]}"
    # Class-stratified random windows (regression: plain random).
    is_val = np.zeros(len(train), bool)
    if ws.is_regression:
        is_val[rng.permutation(len(train))[: int(round(fraction * len(train)))]] = True
    else:
        y = ws.y[train]
        for c in np.unique(y):
            members = rng.permutation(np.flatnonzero(y == c))
            k = int(round(fraction * len(members))) if len(members) >= 3 else 0
            is_val[members[:k]] = True
    return train[~is_val], train[is_val], f"stratified random {fraction:.0%} of split.train"


def stratified_subsample(ws: WindowSet, idx: np.ndarray, n: int, rng: np.random.Generator, target: str) -> np.ndarray:
    """About ``n`` of the windows ``idx``, keeping class proportions (plain random for regression)."""
    if target != "class":
        return np.sort(rng.choice(idx, n, replace=False))
    y = ws.y[idx]
    keep = []
    for c in np.unique(y):
        members = idx[y == c]
        k = max(1, int(round(n * len(members) / len(idx))))
        keep.append(rng.choice(members, min(k, len(members)), replace=False))
    return np.sort(np.concatenate(keep))


def class_coords(ws: WindowSet, train_idx: np.ndarray) -> np.ndarray | None:
    """Mean training coordinates of each class (reference-point positions), NaN where unknown."""
    if ws.coords is None or ws.is_regression:
        return None
    cc = np.full((ws.n_classes, 2), np.nan)
    y, xy = ws.y[train_idx], ws.coords[train_idx]
    for c in np.unique(y):
        pts = xy[y == c]
        pts = pts[np.isfinite(pts).all(axis=1)]
        if len(pts):
            cc[c] = pts.mean(axis=0)
    return cc if np.isfinite(cc).any() else None


def _plain(value):
    return value.item() if isinstance(value, np.generic) else value


def with_known_coords(ws: WindowSet, idx: np.ndarray) -> np.ndarray:
    """The windows of ``idx`` whose coordinates are known (coordinate regression trains on these)."""
    return idx[np.isfinite(ws.coords[idx]).all(axis=1)]
