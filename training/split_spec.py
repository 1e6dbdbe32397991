"""Split specifications as short strings (for the CLI and configs) -> :class:`Split`.

    published            the data set's published protocol (its first split)
    published:NAME       a published split by name ("small:day1") or position ("published:2")
    by:COL:A+B:C[:V]     train where COL in {A, B}, test where COL == C (validation V optional)
    loo:COL:V            leave V out: train on every other value of COL, test on V
    group-kfold:COL:K:I  fold I of K folds whose COL groups are disjoint (person-disjoint: COL=person)
    kfold:K:I            fold I of a class-stratified random K-fold (optimistic for overlapping windows)

Values are converted to the column's type (``by:day:2+3:1`` works for integer day columns).
"""

from __future__ import annotations

import numpy as np

from edgecsi.training.datasets import splits as S
from edgecsi.training.datasets.base import WindowSet


def resolve_split(ws: WindowSet, spec: "str | S.Split | None") -> S.Split:
    """The :class:`Split` ``spec`` names on ``ws`` (``None`` = "published")."""
    if isinstance(spec, S.Split):
        return spec
    spec = spec or "published"
    kind, _, rest = spec.partition(":")
    parts = rest.split(":") if rest else []
    if kind == "published":
        options = S.split_published(ws)
        if not parts:
            return options[0]
        key = ":".join(parts)
        for s in options:
            if s.name == key:
                return s
        if key.isdigit() and int(key) < len(options):
            return options[int(key)]
        raise ValueError(f"{ws.name}: no published split {key!r}; have {[s.name for s in options]}")
    if kind == "by" and len(parts) in (3, 4):
        col = parts[0]
        conv = _converter(ws, col)
        vals = [[conv(v) for v in p.split("+")] for p in parts[1:]]
        return S.by_values(ws, col, vals[0], vals[1], vals[2] if len(vals) > 2 else (), name=spec)
    if kind == "loo" and len(parts) == 2:
        col, value = parts[0], _converter(ws, parts[0])(parts[1])
        for s in S.leave_one_out(ws, col):
            if s.name == f"{col}={value}":
                return s
        raise ValueError(f"{ws.name}: column {col!r} has no value {value!r}")
    if kind == "group-kfold" and len(parts) == 3:
        folds = S.group_kfold(ws, parts[0], int(parts[1]))
        return folds[int(parts[2])]
    if kind == "kfold" and len(parts) == 2:
        return S.stratified_kfold(ws, int(parts[0]))[int(parts[1])]
    raise ValueError(f"bad split spec {spec!r}; see edgecsi.training.split_spec for the forms")


def _converter(ws: WindowSet, column: str):
    if column not in ws.domains:
        raise KeyError(f"{ws.name}: no domain column {column!r} (have {sorted(ws.domains)})")
    values = ws.domains[column]
    return int if np.issubdtype(values.dtype, np.integer) else str
