"""Classical baselines on the same windows and splits as the neural models (scikit-learn / numpy).

    from edgecsi.training.baselines import run_baseline
    metrics = run_baseline("svm", ws, split)            # {"test": {name: metrics}, ...}

| name       | what                                                                      | targets       |
|------------|---------------------------------------------------------------------------|---------------|
| svm        | StandardScaler + RBF SVC, C chosen on the training-side validation part    | class         |
| svr        | StandardScaler + RBF SVR per output (Zhou et al.: SVR for coordinates)     | value, coords |
| knn        | StandardScaler + k nearest neighbours (fingerprint kNN), k on validation   | all           |
| threshold  | presence: median + k*MAD of a motion statistic of empty-room windows       | class (2)     |
| kmeans     | Wi-Metal: k-means (Euclidean), each cluster -> majority training label;    | class         |
|            | SSE (inertia) reported as the cluster quality                              |               |

Window features (``window_features``): ``time == 1`` -> the features themselves; longer windows ->
per-feature mean and standard deviation over time (2 x features). Hyper-parameters are chosen on a
validation part carved out of the TRAINING data exactly as ``train`` does; test sets are touched once.
Large training sets are subsampled (class-stratified, ``max_train``) because kernel SVMs scale
quadratically.
"""

from __future__ import annotations

import time

import numpy as np

from edgecsi.training.datasets import WindowSet
from edgecsi.training.datasets.splits import Split
from edgecsi.training.holdout import (class_coords, resolve_target, stratified_subsample, validation_part,
                                     with_known_coords)
from edgecsi.training.metrics import classification_metrics, coords_metrics, value_metrics

BASELINES = ("svm", "svr", "knn", "threshold", "kmeans")


def window_features(x: np.ndarray) -> np.ndarray:
    """``x[window, time, feature]`` -> ``float32[window, feature']`` for classical models."""
    if x.shape[1] == 1:
        return x[:, 0, :].astype(np.float32, copy=False)
    return np.concatenate([x.mean(axis=1), x.std(axis=1)], axis=1).astype(np.float32)


def motion_statistic(x: np.ndarray) -> np.ndarray:
    """Per window: mean over features of the standard deviation over time, relative to the mean
    level (so a gain change of the receiver does not look like motion). ``float64[window]``."""
    x = np.asarray(x, np.float64)
    level = np.abs(x.mean(axis=1)) + 1e-9
    return (x.std(axis=1) / level).mean(axis=1)


class PresenceThreshold:
    """Presence from a robust threshold on ``motion_statistic``, fitted on EMPTY-room windows only.

    threshold = median + k * 1.4826 * MAD (the MAD scaled to a Gaussian sigma); occupied above it.
    ``empty_class`` is the label index of "empty" in the data set.
    """

    def __init__(self, k: float = 3.0, empty_class: int = 0) -> None:
        self.k = k
        self.empty_class = empty_class
        self.threshold_: float | None = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> "PresenceThreshold":
        s = motion_statistic(x[np.asarray(y) == self.empty_class])
        if len(s) == 0:
            raise ValueError("presence threshold needs empty-room windows to calibrate on")
        med = float(np.median(s))
        mad = float(np.median(np.abs(s - med)))
        self.threshold_ = med + self.k * 1.4826 * mad
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        occupied = motion_statistic(x) > self.threshold_
        return np.where(occupied, 1 - self.empty_class, self.empty_class).astype(np.int64)


class KMeansLabeller:
    """Wi-Metal style: k-means on window features (Euclidean), then each cluster takes the majority
    label of the training windows in it. ``sse_`` is the within-cluster sum of squares."""

    def __init__(self, n_clusters: int, seed: int = 0) -> None:
        self.n_clusters = n_clusters
        self.seed = seed

    def fit(self, f: np.ndarray, y: np.ndarray) -> "KMeansLabeller":
        from sklearn.cluster import KMeans
        from sklearn.preprocessing import StandardScaler

        self.scaler_ = StandardScaler().fit(f)
        self.km_ = KMeans(self.n_clusters, n_init=10, random_state=self.seed).fit(self.scaler_.transform(f))
        self.sse_ = float(self.km_.inertia_)
        n_classes = int(y.max()) + 1
        votes = np.zeros((self.n_clusters, n_classes))
        np.add.at(votes, (self.km_.labels_, y), 1)
        self.cluster_label_ = votes.argmax(axis=1)
        return self

    def predict(self, f: np.ndarray) -> np.ndarray:
        return self.cluster_label_[self.km_.predict(self.scaler_.transform(f))]


def run_baseline(name: str, ws: WindowSet, split: Split, *, target: str = "auto", seed: int = 0,
                 max_train: int = 6000, val_fraction: float = 0.15, val_group: str | None = None) -> dict:
    """Fit baseline ``name`` on ``split.train`` (choosing its hyper-parameter on a training-side
    validation part) and return ``{"test": {name: metrics}, "baseline": ..., "params": ...}``."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {BASELINES}")
    started = time.time()
    rng = np.random.default_rng(seed)
    target = resolve_target(ws, target)
    train_idx, val_idx, _ = validation_part(ws, split, val_fraction, val_group, rng)
    if target == "coords":
        train_idx, val_idx = with_known_coords(ws, train_idx), with_known_coords(ws, val_idx)
    if len(train_idx) > max_train:
        train_idx = stratified_subsample(ws, train_idx, max_train, rng, target)
    if len(val_idx) > max_train:
        val_idx = np.sort(rng.choice(val_idx, max_train, replace=False))
    y = ws.y if target != "coords" else ws.coords
    rp_coords = class_coords(ws, train_idx) if target == "class" else None

    def score(pred_fn, idx) -> dict:
        pred = pred_fn(idx)
        if target == "class":
            tc = ws.coords[idx] if (rp_coords is not None and ws.coords is not None) else None
            return classification_metrics(ws.y[idx], pred, ws.n_classes, rp_coords, tc)
        if target == "value":
            return value_metrics(ws.y[idx], pred)
        return coords_metrics(ws.coords[idx], pred)

    if name == "threshold":
        if target != "class" or ws.n_classes != 2:
            raise ValueError("the presence threshold is a two-class (empty / occupied) baseline")
        empty = ws.labels.index("empty") if "empty" in ws.labels else 0
        model = PresenceThreshold(empty_class=empty).fit(ws.x[train_idx], ws.y[train_idx])
        params = {"threshold": model.threshold_, "k": model.k}
        predict = lambda idx: model.predict(ws.x[idx])  # noqa: E731
    else:
        feats = window_features(ws.x)
        model, params = _fit_sklearn(name, feats, y, train_idx, val_idx, target, ws, seed)
        predict = lambda idx: model.predict(feats[idx])  # noqa: E731

    out = {"baseline": name, "target": target, "params": params, "n_train": int(len(train_idx)),
           "n_val": int(len(val_idx)), "test": {t: score(predict, idx) for t, idx in split.tests().items()}}
    out["seconds"] = round(time.time() - started, 2)
    return out


def _fit_sklearn(name, feats, y, train_idx, val_idx, target, ws, seed):
    from sklearn.multioutput import MultiOutputRegressor
    from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, SVR

    if name == "kmeans":
        if target != "class":
            raise ValueError("kmeans is a classification baseline")
        k = max(ws.n_classes, 2)
        model = KMeansLabeller(k, seed=seed).fit(feats[train_idx], ws.y[train_idx])
        return model, {"n_clusters": k, "sse": model.sse_}
    if name == "svm" and target != "class":
        raise ValueError("svm is for classes; use svr for regression")
    if name == "svr" and target == "class":
        raise ValueError("svr is for regression; use svm for classes")

    def make(param):
        if name == "svm":
            return make_pipeline(StandardScaler(), SVC(C=param, kernel="rbf", gamma="scale"))
        if name == "svr":
            reg = SVR(C=param, kernel="rbf", gamma="scale")
            return make_pipeline(StandardScaler(), reg if target == "value" else MultiOutputRegressor(reg))
        cls = KNeighborsClassifier if target == "class" else KNeighborsRegressor
        return make_pipeline(StandardScaler(), cls(n_neighbors=param, weights="distance"))

    grid = (1.0, 10.0, 100.0) if name in ("svm", "svr") else (1, 3, 5, 9, 15)
    ytr = y[train_idx] if target != "value" else y[train_idx].astype(np.float64)
    best, best_score = grid[len(grid) // 2], -np.inf
    if len(val_idx) and len(grid) > 1:
        for p in grid:
            m = make(p).fit(feats[train_idx], ytr)
            pred = m.predict(feats[val_idx])
            if target == "class":
                s = float((pred == ws.y[val_idx]).mean())
            elif target == "value":
                s = -float(np.abs(pred - y[val_idx]).mean())
            else:
                s = -float(np.linalg.norm(pred - y[val_idx], axis=1).mean())
            if s > best_score:
                best, best_score = p, s
    # Refit on training + validation with the chosen parameter (the test sets stay untouched).
    both = np.concatenate([train_idx, val_idx])
    yb = y[both] if target != "value" else y[both].astype(np.float64)
    model = make(best).fit(feats[both], yb)
    key = "C" if name in ("svm", "svr") else "k"
    return model, {key: best, "val_score": None if best_score == -np.inf else best_score}
