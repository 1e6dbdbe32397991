"""Which windows an adaptation sees: the target, its labelled pool, the labelled few, the held-out rest.

A target is described by domain-column filters on a data set (``TargetSpec``):

    target  "day=D2"                           the target windows (``WindowSet.where`` filters)
    pool    "sequence=D2/e01_rx_tx"            where the installer labels windows (None: anywhere
                                               in the target); the held-out test part is the target
                                               MINUS the whole pool, so overlapping neighbours of a
                                               labelled window are never tested on
    labelled_per_class  N or None (= every window of the pool)

Filters are ``COL=V1+V2[,COL2=V3]``; values convert to the column's type (``day=21+22+23``).

Methods get an :class:`AdaptData`: source windows with labels, the labelled target windows with
labels, and unlabelled target windows WITHOUT labels (the target minus the labelled windows: the
transductive setting of DSAN and ADDA, where the adaptation sees the deployment's windows but never
their labels). Accuracy is only ever measured on ``TargetSplit.test``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgecsi.training.datasets import WindowSet


@dataclass(frozen=True)
class TargetSpec:
    """Where the new site's windows are (see the module docstring for the string forms)."""

    dataset: str | None            # data-set id; None = the base run's data set
    target: str                    # filters selecting the target windows
    pool: str | None = None        # filters selecting where labelled windows may come from
    labelled_per_class: int | None = 5   # None = all windows of the pool
    seed: int = 0
    dataset_options: dict | None = None

    def as_dict(self) -> dict:
        return {"dataset": self.dataset, "target": self.target, "pool": self.pool,
                "labelled_per_class": self.labelled_per_class, "seed": self.seed,
                "dataset_options": dict(self.dataset_options or {})}

    @classmethod
    def from_dict(cls, d: dict) -> "TargetSpec":
        return cls(dataset=d.get("dataset"), target=d["target"], pool=d.get("pool"),
                   labelled_per_class=d.get("labelled_per_class"), seed=int(d.get("seed", 0)),
                   dataset_options=d.get("dataset_options") or None)


@dataclass
class TargetSplit:
    """Window indices into the target data set (all disjoint from ``test``)."""

    target: np.ndarray      # every target window
    pool: np.ndarray        # where labels may come from
    labelled: np.ndarray    # the few labelled windows (subset of pool)
    unlabelled: np.ndarray  # target minus labelled (labels never handed to a method)
    test: np.ndarray        # target minus pool: the held-out windows every number is measured on


@dataclass
class AdaptData:
    """What an adaptation method may use. There are no labels for ``x_unlabelled``.

    x_*  float32[window, time, feature] (raw, as the model takes it); y_* int64 class indices.
    """

    x_source: np.ndarray
    y_source: np.ndarray
    x_labelled: np.ndarray
    y_labelled: np.ndarray
    x_unlabelled: np.ndarray
    n_classes: int

    @property
    def has_labels(self) -> bool:
        return len(self.y_labelled) > 0


def parse_filters(ws: WindowSet, text: str | None) -> dict:
    """``"day=D2,sequence=D2/e01_rx_tx+D2/e02_rx_tx"`` -> {column: value or [values]} for ``ws.where``."""
    if not text:
        return {}
    out: dict = {}
    for part in text.split(","):
        col, sep, values = part.partition("=")
        col = col.strip()
        if not sep or not col or not values:
            raise ValueError(f"bad filter {part!r}: expected COLUMN=VALUE[+VALUE...]")
        if col not in ws.domains:
            raise ValueError(f"{ws.name}: no domain column {col!r} (have {sorted(ws.domains)})")
        conv = int if np.issubdtype(ws.domains[col].dtype, np.integer) else str
        vals = [conv(v) for v in values.split("+")]
        out[col] = vals if len(vals) > 1 else vals[0]
    return out


def split_target(ws: WindowSet, spec: TargetSpec) -> TargetSplit:
    """The deterministic (seeded) labelled / unlabelled / test windows of ``spec`` on ``ws``."""
    target_mask = ws.where(**parse_filters(ws, spec.target))
    if not target_mask.any():
        raise ValueError(f"{ws.name}: target {spec.target!r} selects no window")
    pool_mask = target_mask & ws.where(**parse_filters(ws, spec.pool)) if spec.pool else target_mask.copy()
    if spec.pool and not pool_mask.any():
        raise ValueError(f"{ws.name}: pool {spec.pool!r} selects no window of target {spec.target!r}")
    target, pool = np.flatnonzero(target_mask), np.flatnonzero(pool_mask)
    test = np.flatnonzero(target_mask & ~pool_mask) if spec.pool else None
    labelled = choose_labelled(ws.y, pool, spec.labelled_per_class, np.random.default_rng(spec.seed))
    if test is None:                     # no pool: any target window may be labelled, test on the others
        test = np.setdiff1d(target, labelled)
    if len(test) == 0:
        raise ValueError(f"{ws.name}: nothing left to test on after labelling (target {spec.target!r}, "
                         f"pool {spec.pool!r}); name a pool smaller than the target")
    unlabelled = np.setdiff1d(target, labelled)
    return TargetSplit(target=target, pool=pool, labelled=labelled, unlabelled=unlabelled, test=test)


def choose_labelled(y: np.ndarray, pool: np.ndarray, per_class: int | None, rng: np.random.Generator) -> np.ndarray:
    """Up to ``per_class`` random windows of each class present in ``pool`` (None: all of the pool)."""
    if per_class is None:
        return np.sort(pool)
    if per_class < 0:
        raise ValueError(f"labelled_per_class must be >= 0 or None (all), got {per_class}")
    chosen = []
    for c in np.unique(y[pool]):
        members = pool[y[pool] == c]
        chosen.append(rng.permutation(members)[:per_class])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, np.int64)


def stratified_cap(y: np.ndarray, idx: np.ndarray, cap: int | None, rng: np.random.Generator) -> np.ndarray:
    """At most ``cap`` windows of ``idx``, each class keeping its share (at least one window)."""
    if cap is None or len(idx) <= cap:
        return np.sort(idx)
    keep = []
    for c in np.unique(y[idx]):
        members = idx[y[idx] == c]
        k = max(1, int(round(cap * len(members) / len(idx))))
        keep.append(rng.choice(members, min(k, len(members)), replace=False))
    return np.sort(np.concatenate(keep))


def adapt_data(source: WindowSet, source_idx: np.ndarray, target: WindowSet, split: TargetSplit, *,
               max_source: int | None = 4000, max_unlabelled: int | None = 4000, seed: int = 0) -> AdaptData:
    """Assemble an :class:`AdaptData` (source capped class-stratified, unlabelled capped at random)."""
    rng = np.random.default_rng(seed)
    src = stratified_cap(source.y, np.asarray(source_idx), max_source, rng)
    unl = split.unlabelled
    if max_unlabelled is not None and len(unl) > max_unlabelled:
        unl = np.sort(rng.choice(unl, max_unlabelled, replace=False))
    return AdaptData(x_source=source.x[src], y_source=source.y[src].astype(np.int64),
                     x_labelled=target.x[split.labelled], y_labelled=target.y[split.labelled].astype(np.int64),
                     x_unlabelled=target.x[unl], n_classes=source.n_classes)
