"""Train/test splits over WindowSet domain columns: published protocols, leave-one-X-out, group k-fold.

A split is a set of window indices, never copies of the data, so ``ws.subset(split.train)`` is
how a trainer gets its arrays. Every helper is deterministic (seeded where random).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgecsi.training.datasets.base import WindowSet


@dataclass
class Split:
    """Window indices of one train/test split.

    train, test, val   int64 indices into the WindowSet (val may be empty)
    extra_tests        further named test sets evaluated with the same model
                       (e.g. the ESP32-S2 protocol tests the D1T model on D1E, then D2, D3, D4)
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    val: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    extra_tests: dict[str, np.ndarray] = field(default_factory=dict)

    def tests(self) -> dict[str, np.ndarray]:
        """All test sets by name, the main one first (named after the split)."""
        return {self.name: self.test, **self.extra_tests}

    def check_disjoint(self) -> None:
        """Raise if train, val and any test set share a window."""
        sets = {"train": self.train, "val": self.val, **{f"test:{k}": v for k, v in self.tests().items()}}
        names = list(sets)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if np.intersect1d(sets[a], sets[b]).size:
                    raise ValueError(f"split {self.name}: {a} and {b} overlap")


def _idx(mask: np.ndarray) -> np.ndarray:
    return np.flatnonzero(mask).astype(np.int64)


def by_values(ws: WindowSet, column: str, train, test, val=(), name: str | None = None) -> Split:
    """Train on windows whose ``column`` is in ``train``, test on ``test`` (val optional)."""
    values = ws.domains[column]
    as_list = lambda v: list(v) if isinstance(v, (list, tuple, set, frozenset, np.ndarray)) else [v]  # noqa: E731
    tr, te, va = as_list(train), as_list(test), as_list(val)
    return Split(
        name=name or f"{column}:{'+'.join(map(str, tr))}->{'+'.join(map(str, te))}",
        train=_idx(np.isin(values, tr)),
        test=_idx(np.isin(values, te)),
        val=_idx(np.isin(values, va)) if va else np.zeros(0, np.int64),
    )


def leave_one_out(ws: WindowSet, column: str) -> list[Split]:
    """One split per value of ``column``: test on that value, train on all others.

    leave-one-day-out = ``leave_one_out(ws, "day")``; leave-one-person-out = ``(ws, "person")``;
    leave-one-room-out = ``(ws, "room")``.
    """
    values = ws.domains[column]
    return [Split(name=f"{column}={v}", train=_idx(values != v), test=_idx(values == v))
            for v in np.unique(values)]


def leave_one_day_out(ws: WindowSet) -> list[Split]:
    return leave_one_out(ws, "day")


def group_kfold(ws: WindowSet, column: str, k: int, *, seed: int = 0) -> list[Split]:
    """k folds whose test groups (values of ``column``) never appear in training: person-disjoint
    folds with ``column="person"``. Groups are shuffled with ``seed`` then dealt round-robin."""
    groups = np.unique(ws.domains[column])
    if k > len(groups):
        raise ValueError(f"{ws.name}: {k} folds but only {len(groups)} values of {column!r}")
    order = np.random.default_rng(seed).permutation(groups)
    folds = [order[i::k] for i in range(k)]
    values = ws.domains[column]
    return [Split(name=f"{column}-fold{i}", train=_idx(~np.isin(values, f)), test=_idx(np.isin(values, f)))
            for i, f in enumerate(folds)]


def person_disjoint(ws: WindowSet, k: int | None = None, *, seed: int = 0) -> list[Split]:
    """Leave-one-person-out, or person-disjoint k folds when ``k`` is given."""
    return leave_one_out(ws, "person") if k is None else group_kfold(ws, "person", k, seed=seed)


def stratified_kfold(ws: WindowSet, k: int = 10, *, seed: int = 0, within: np.ndarray | None = None) -> list[Split]:
    """Class-stratified random k-fold over windows (``within``: restrict to these indices).

    Note: windows that overlap in time land in different folds, so this is optimistic -- it is
    what the ESP32-S2 paper's "10-fold CV on D1" does."""
    idx = np.arange(len(ws)) if within is None else np.asarray(within, np.int64)
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(idx), np.int64)
    y = ws.y[idx]
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        members = rng.permutation(members)
        fold_of[members] = np.arange(len(members)) % k
    return [Split(name=f"fold{i}", train=idx[fold_of != i], test=idx[fold_of == i]) for i in range(k)]


def split_published(ws: WindowSet) -> list[Split]:
    """The evaluation protocol the data set's authors published (see each loader's README notes).

    esp32s2_temporal_har_geotecinit  one split: train D1T (e01..e08), test D1E (e09, e10),
                                     extra tests D2, D3, D4
    esp32_wical_crowd_2rooms_3days   leave-one-day(session)-out within each room (6 splits)
    ivanet_csi_ips_2020_21           Dataset A: train d02..d18, val d19..d20, test d21..d23 (the
                                     authors used 2 of d23's 4 periods, unnamed; all 4 are used here)
    nexmon_csu_indoorloc_180rp       train on the reference points, test on the test points
    intel5300_har_2env_5person       nothing published; cross-room both ways (bedroom <-> meeting room)
    """
    if ws.name not in _PUBLISHED:
        raise KeyError(f"no published split for data set {ws.name!r}")
    splits = _PUBLISHED[ws.name](ws)
    for s in splits:
        s.check_disjoint()
    return splits


def _esp32s2(ws: WindowSet) -> list[Split]:
    day, run = ws.domains["day"], ws.domains["run"]
    d1t = (day == "D1") & (run <= 8)
    d1e = (day == "D1") & (run >= 9)
    return [Split(name="D1T->D1E", train=_idx(d1t), test=_idx(d1e),
                  extra_tests={d: _idx(day == d) for d in ("D2", "D3", "D4")})]


def _wical(ws: WindowSet) -> list[Split]:
    room, day = ws.domains["room"], ws.domains["day"]
    return [Split(name=f"{r}:day{d}", train=_idx((room == r) & (day != d)), test=_idx((room == r) & (day == d)))
            for r in np.unique(room) for d in np.unique(day[room == r])]


def _ivanet(ws: WindowSet) -> list[Split]:
    day = ws.domains["day"]
    return [Split(name="A", train=_idx((day >= 2) & (day <= 18)), val=_idx((day >= 19) & (day <= 20)),
                  test=_idx((day >= 21) & (day <= 23)))]


def _nexmon(ws: WindowSet) -> list[Split]:
    split = ws.domains["split"]
    return [Split(name="ref->test", train=_idx(split == "ref"), test=_idx(split == "test"))]


def _intel(ws: WindowSet) -> list[Split]:
    return [by_values(ws, "room", "bedroom", "meetingroom"), by_values(ws, "room", "meetingroom", "bedroom")]


_PUBLISHED = {
    "esp32s2_temporal_har_geotecinit": _esp32s2,
    "esp32_wical_crowd_2rooms_3days": _wical,
    "ivanet_csi_ips_2020_21": _ivanet,
    "nexmon_csu_indoorloc_180rp": _nexmon,
    "intel5300_har_2env_5person": _intel,
}
