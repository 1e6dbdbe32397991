"""Per-domain feature standardisation: each day (session, site) standardised with its OWN statistics.

    ws_norm = standardise_per_domain(ws, by=("room", "day"))

Why: on Wi-CaL the hand-crafted features of one day are offset against another day's (AGC, furniture,
temperature), and a model trained on two days is biased on the third. Standardising every feature
within each day (mean 0, std 1 over that day's windows and time steps) removes the offset.

What it needs at deployment -- and what it does NOT use: only UNLABELLED windows of the day being
evaluated (their per-feature mean and std), never its labels. A deployment gets the same by
collecting a calibration period of the day (or a running mean/std) before predicting. The model's
own input normalisation then sees already standardised inputs. Results that use this are marked
"per-day standardised" in docs/results/training.md, because they assume that calibration step.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from edgecsi.training.datasets.base import WindowSet


def standardise_per_domain(ws: WindowSet, by: tuple[str, ...] = ("day",), *, eps: float = 1e-6) -> WindowSet:
    """A copy of ``ws`` whose features are standardised within each group of the domain columns ``by``."""
    missing = [c for c in by if c not in ws.domains]
    if missing:
        raise ValueError(f"{ws.name}: no domain column(s) {missing}; have {sorted(ws.domains)}")
    keys = np.array(["\x1f".join(str(ws.domains[c][i]) for c in by) for i in range(len(ws))])
    x = np.empty_like(ws.x, dtype=np.float32)
    for key in np.unique(keys):
        rows = np.flatnonzero(keys == key)
        flat = ws.x[rows].reshape(-1, ws.x.shape[2]).astype(np.float64)   # [window*time, feature]
        mean, std = flat.mean(axis=0), np.maximum(flat.std(axis=0), eps)
        x[rows] = ((ws.x[rows] - mean) / std).astype(np.float32)
    meta = dict(ws.meta)
    meta["per_domain_standardised"] = list(by)
    return replace(ws, x=x, meta=meta)
