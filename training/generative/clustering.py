"""Cluster the windows of an unlabelled site and score the clusters against the (hidden) activity labels.

    feats = raw_features(x)                       # standardised, flattened windows: the k-means baseline
    labels = kmeans(feats, k=10, seed=0)
    cluster_scores(y_true, labels)                # {"nmi", "ari", "acc"}

``acc`` is cluster accuracy: the best one-to-one mapping of clusters to classes (Hungarian assignment on
the contingency table), the fraction of windows it gets right. Labels are used only to score.
"""

from __future__ import annotations

import numpy as np


def raw_features(x: np.ndarray) -> np.ndarray:
    """``x[w, t, f]`` -> ``[w, t*f]``, each feature standardised over windows and time (the baseline's input)."""
    x = np.asarray(x, np.float64)
    mu = x.mean(axis=(0, 1))
    sd = np.maximum(x.std(axis=(0, 1)), 1e-9)
    return ((x - mu) / sd).reshape(len(x), -1)


def standardise(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float64)
    return (z - z.mean(0)) / np.maximum(z.std(0), 1e-9)


def kmeans(features: np.ndarray, k: int, *, seed: int = 0, n_init: int = 10) -> np.ndarray:
    """k-means (scikit-learn, k-means++ starts) cluster index per row."""
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=n_init, random_state=seed).fit_predict(np.asarray(features, np.float64))


def cluster_accuracy(y_true: np.ndarray, labels: np.ndarray) -> float:
    """Fraction right under the best one-to-one cluster -> class mapping (Hungarian)."""
    from scipy.optimize import linear_sum_assignment

    y_true, labels = np.asarray(y_true), np.asarray(labels)
    classes, yi = np.unique(y_true, return_inverse=True)
    clusters, ci = np.unique(labels, return_inverse=True)
    table = np.zeros((len(clusters), len(classes)), np.int64)
    np.add.at(table, (ci, yi), 1)
    rows, cols = linear_sum_assignment(-table)
    return float(table[rows, cols].sum() / max(len(y_true), 1))


def cluster_scores(y_true: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """NMI, ARI and cluster accuracy of a clustering against the true classes."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    return {"nmi": float(normalized_mutual_info_score(y_true, labels)),
            "ari": float(adjusted_rand_score(y_true, labels)),
            "acc": cluster_accuracy(y_true, labels)}


__all__ = ["raw_features", "standardise", "kmeans", "cluster_accuracy", "cluster_scores"]
