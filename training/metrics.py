"""Held-out metrics for every target kind, as plain JSON-ready dicts.

classification  accuracy, macro_f1, balanced_accuracy, confusion[true][pred], n; plus position error
                in metres when the class of each window has known coordinates (reference points)
value           (regression of one number, e.g. a people count) mae, medae, rmse, r2, and the
                accuracy of the rounded value (exact count) and within +-1
coords          (regression of x, y in metres) mean / median / p90 / max position error in metres
"""

from __future__ import annotations

import numpy as np


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int,
                           class_coords: np.ndarray | None = None,
                           true_coords: np.ndarray | None = None) -> dict:
    """``class_coords[class, 2]``: where each predicted class sits; ``true_coords[window, 2]``: where
    each window really was (defaults to the coordinates of its true class)."""
    y_true = np.asarray(y_true, np.int64)
    y_pred = np.asarray(y_pred, np.int64)
    cm = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    tp = np.diag(cm).astype(np.float64)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp), where=(precision + recall) > 0)
    n = int(len(y_true))
    out = {
        "n": n,
        "accuracy": float(tp.sum() / n) if n else float("nan"),
        # Macro averages over the classes present in this test set (as sklearn does with labels=present).
        "macro_f1": float(f1[present].mean()) if present.any() else float("nan"),
        "balanced_accuracy": float(recall[present].mean()) if present.any() else float("nan"),
        "confusion": cm.tolist(),
    }
    if class_coords is not None:
        cc = np.asarray(class_coords, np.float64)
        truth = cc[y_true] if true_coords is None else np.asarray(true_coords, np.float64)
        err = np.linalg.norm(cc[y_pred] - truth, axis=1)
        ok = np.isfinite(err)
        if ok.any():
            out.update(_error_stats(err[ok], "error_m"))
            out["n_error_m"] = int(ok.sum())
    return out


def value_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    y_true = np.asarray(y_true, np.float64).reshape(-1)
    y_pred = np.asarray(y_pred, np.float64).reshape(-1)
    err = y_pred - y_true
    ss_tot = float(((y_true - y_true.mean()) ** 2).sum()) if len(y_true) else 0.0
    rounded = np.rint(y_pred)
    return {
        "n": int(len(y_true)),
        "mae": float(np.abs(err).mean()),
        "medae": float(np.median(np.abs(err))),
        "rmse": float(np.sqrt((err ** 2).mean())),
        "r2": float(1 - (err ** 2).sum() / ss_tot) if ss_tot > 0 else float("nan"),
        "rounded_accuracy": float((rounded == np.rint(y_true)).mean()),
        "within_1": float((np.abs(rounded - np.rint(y_true)) <= 1).mean()),
    }


def coords_metrics(xy_true: np.ndarray, xy_pred: np.ndarray) -> dict:
    """Windows whose true position is unknown (NaN) are counted in ``n_unknown`` and left out."""
    err = np.linalg.norm(np.asarray(xy_pred, np.float64) - np.asarray(xy_true, np.float64), axis=1)
    ok = np.isfinite(err)
    return {"n": int(ok.sum()), "n_unknown": int((~ok).sum()), **_error_stats(err[ok], "error_m")}


def _error_stats(err: np.ndarray, prefix: str) -> dict:
    return {f"mean_{prefix}": float(err.mean()), f"median_{prefix}": float(np.median(err)),
            f"p90_{prefix}": float(np.percentile(err, 90)), f"max_{prefix}": float(err.max())}


def headline(metrics: dict) -> str:
    """One short human string for a metrics dict (CLI and tables)."""
    if "accuracy" in metrics:
        text = f"acc {metrics['accuracy']:.1%}  macro-F1 {metrics['macro_f1']:.3f}"
        if "mean_error_m" in metrics:
            text += f"  err {metrics['mean_error_m']:.2f} m mean / {metrics['median_error_m']:.2f} m median"
        return text + f"  (n={metrics['n']})"
    if "medae" in metrics:
        return (f"MedAE {metrics['medae']:.3f}  MAE {metrics['mae']:.3f}  exact {metrics['rounded_accuracy']:.1%}"
                f"  (n={metrics['n']})")
    return f"err {metrics['mean_error_m']:.2f} m mean / {metrics['median_error_m']:.2f} m median  (n={metrics['n']})"
