"""``object_cnn``: concealed metal / liquid detection -- a CNN per window, then a majority vote
over the windows of one walk-through (the seed's method; the paper's code was not found).

The per-window network is a 1D-CNN over time (features are channels). ``majority_vote`` turns
per-window predictions into one decision per walk-through (group), ties going to the class with
the larger summed probability, so it is deterministic.
"""

from __future__ import annotations

import numpy as np

from edgecsi.training.models.cnn1d import CNN1D

OBJECT_CNN_DEFAULTS = {"channels": (24, 48, 48), "kernel": 5, "fc": 48, "dropout": 0.3, "axis": "time",
                       "downsample": 1}


class ObjectCNN(CNN1D):
    name = "object_cnn"
    defaults = OBJECT_CNN_DEFAULTS


def majority_vote(proba: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-group decision from per-window class probabilities.

    proba   float[window, class] (softmax outputs; one-hot predictions work too)
    groups  [window] walk-through id of each window
    returns (group ids in sorted order, int64[group] voted class)
    """
    proba = np.asarray(proba, dtype=np.float64)
    groups = np.asarray(groups)
    ids, inverse = np.unique(groups, return_inverse=True)
    n_classes = proba.shape[1]
    votes = np.zeros((len(ids), n_classes))
    mass = np.zeros((len(ids), n_classes))
    np.add.at(votes, (inverse, proba.argmax(axis=1)), 1.0)
    np.add.at(mass, inverse, proba)
    # Lexicographic: most votes first, summed probability breaks ties.
    score = votes * (proba.shape[0] + 1) + mass / max(mass.max(), 1e-12)
    return ids, score.argmax(axis=1).astype(np.int64)
