"""Outlier removal for training sets (training side; the gateway never drops data this way).

Rows are packets ``x[packet, feature]`` (e.g. ``Pipeline.packet_features``)
or windows ``x[window, time, feature]``; a window is summarised by its
per-feature mean and standard deviation over time before scoring. With
``groups`` (e.g. location or class labels) each group is scored on its own,
as AdapLoc does per location.

Methods (``OutlierConfig.method``):

- ``mad``: robust z-score ``0.6745 * |s - median| / MAD`` per summary feature;
  a row is an outlier when the median of its z-scores exceeds ``threshold``
  (the median over features ignores a few odd subcarriers). numpy only.
- ``isolation_forest``: sklearn ``IsolationForest`` with ``contamination``.
- ``none``: keep everything.
"""

from __future__ import annotations

import numpy as np

from edgecsi.edge.pipeline.config import OutlierConfig


def summarise_rows(x: np.ndarray) -> np.ndarray:
    """``s[row, summary]``: rows as they are for 2-D input; per-feature mean and std over time for windows."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        return x
    if x.ndim == 3:
        return np.concatenate([x.mean(axis=1), x.std(axis=1)], axis=1)
    raise ValueError(f"expected x[row, feature] or x[window, time, feature], got shape {x.shape}")


def mad_inliers(s: np.ndarray, threshold: float) -> np.ndarray:
    """``keep[row]`` for summaries ``s[row, feature]`` by the median robust z-score."""
    med = np.median(s, axis=0)
    mad = np.median(np.abs(s - med), axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = 0.6745 * np.abs(s - med) / mad
    # A constant feature (MAD 0) says nothing about which row is odd.
    z = np.where(mad > 0, z, 0.0)
    return np.median(z, axis=1) <= threshold


def isolation_forest_inliers(s: np.ndarray, contamination: float, seed: int = 0) -> np.ndarray:
    """``keep[row]`` from an IsolationForest fitted on the rows themselves."""
    from sklearn.ensemble import IsolationForest

    if s.shape[0] < 2:
        return np.ones(s.shape[0], dtype=bool)
    forest = IsolationForest(contamination=contamination, random_state=seed)
    return forest.fit_predict(s) == 1


def inlier_mask(x: np.ndarray, config: OutlierConfig, groups: np.ndarray | None = None,
                seed: int = 0) -> np.ndarray:
    """``keep[row]`` (True = inlier) for packets or windows ``x``, scored per group when ``groups`` is given."""
    s = summarise_rows(x)
    keep = np.ones(s.shape[0], dtype=bool)
    if config.method == "none" or s.shape[0] == 0:
        return keep
    labels = np.zeros(s.shape[0], dtype=np.int64) if groups is None else np.asarray(groups)
    if labels.shape[0] != s.shape[0]:
        raise ValueError(f"groups has {labels.shape[0]} entries for {s.shape[0]} rows")
    for g in np.unique(labels):
        rows = np.flatnonzero(labels == g)
        if config.method == "mad":
            keep[rows] = mad_inliers(s[rows], config.threshold)
        elif config.method == "isolation_forest":
            keep[rows] = isolation_forest_inliers(s[rows], config.contamination, seed)
        else:
            raise ValueError(f"unknown outlier method {config.method!r}")
    return keep
