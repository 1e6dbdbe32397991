"""The one type every data-set loader returns: a set of labelled windows with domain columns.

``WindowSet.x`` is ``float32[window, time, feature]``; what ``feature`` means is documented by each
loader (and repeated in ``meta["features"]``). Feature-only data sets (fingerprints, hand-crafted
features) have ``time == 1``. ``domains`` holds one array per column ("room", "day", "person",
"session", "sequence", ...), each with one entry per window, so splits are just boolean masks.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

TASKS = ("activity", "localization", "counting", "presence")


@dataclass
class WindowSet:
    """Labelled windows of one data set and task.

    x        float32[window, time, feature]
    y        int64[window] class index into ``labels`` (float32[window] for regression targets)
    labels   class names, index -> name; ``[]`` for regression
    domains  column name -> array[window] (str or int) naming where/when/who each window came from
    coords   float32[window, 2] position in metres where known (localization), NaN where unknown
    meta     sampling rate, source path, license, published figures, feature description
    """

    name: str
    task: str
    x: np.ndarray
    y: np.ndarray
    labels: list[str]
    domains: dict[str, np.ndarray]
    coords: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.x)
        if self.x.ndim != 3:
            raise ValueError(f"{self.name}: x must be [window, time, feature], got shape {self.x.shape}")
        if len(self.y) != n:
            raise ValueError(f"{self.name}: {len(self.y)} labels for {n} windows")
        for col, values in self.domains.items():
            if len(values) != n:
                raise ValueError(f"{self.name}: domain column {col!r} has {len(values)} rows for {n} windows")
        if self.coords is not None and self.coords.shape != (n, 2):
            raise ValueError(f"{self.name}: coords must be [window, 2], got {self.coords.shape}")

    def __len__(self) -> int:
        return len(self.x)

    def __repr__(self) -> str:
        cols = ", ".join(f"{c}={len(np.unique(v))}" for c, v in self.domains.items())
        return (f"WindowSet({self.name!r}, task={self.task!r}, x={self.x.shape}, "
                f"classes={len(self.labels) or 'regression'}, domains[{cols}])")

    @property
    def is_regression(self) -> bool:
        return not self.labels

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    def subset(self, mask_or_idx) -> "WindowSet":
        """The windows selected by a boolean mask or an index array (order kept as given)."""
        sel = np.asarray(mask_or_idx)
        if sel.dtype == bool and sel.shape != (len(self),):
            raise ValueError(f"{self.name}: mask has shape {sel.shape}, expected ({len(self)},)")
        return WindowSet(
            name=self.name,
            task=self.task,
            x=self.x[sel],
            y=self.y[sel],
            labels=list(self.labels),
            domains={c: v[sel] for c, v in self.domains.items()},
            coords=None if self.coords is None else self.coords[sel],
            meta=dict(self.meta),
        )

    def where(self, **columns) -> np.ndarray:
        """Boolean mask of windows whose domain columns match: ``ws.where(room="bedroom", person=["a", "b"])``.

        A list/tuple/set value matches any of its members.
        """
        mask = np.ones(len(self), dtype=bool)
        for col, want in columns.items():
            if col not in self.domains:
                raise KeyError(f"{self.name}: no domain column {col!r} (have {sorted(self.domains)})")
            values = self.domains[col]
            if isinstance(want, (list, tuple, set, frozenset, np.ndarray)):
                mask &= np.isin(values, list(want))
            else:
                mask &= values == want
        return mask

    def select(self, **columns) -> "WindowSet":
        """``subset(where(**columns))``."""
        return self.subset(self.where(**columns))

    def class_counts(self) -> dict[str, int]:
        """Windows per class name (classification) in label order."""
        if self.is_regression:
            raise ValueError(f"{self.name}: regression targets have no classes")
        counts = np.bincount(self.y, minlength=len(self.labels))
        return {name: int(c) for name, c in zip(self.labels, counts)}

    def domain_counts(self, column: str) -> dict:
        """Windows per value of one domain column, sorted by value."""
        return {_plain(k): v for k, v in sorted(Counter(self.domains[column].tolist()).items())}


def _plain(value):
    """numpy scalars -> python scalars, so counts compare equal to literals and serialise to JSON."""
    return value.item() if isinstance(value, np.generic) else value
