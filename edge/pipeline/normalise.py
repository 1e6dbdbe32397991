"""Per-feature normalisation ``(x - mean) / std`` with statistics fitted on training windows.

Statistics are accumulated chunk by chunk (Chan et al.'s pairwise update, in
float64) so fitting never needs all training windows in memory.
"""

from __future__ import annotations

import numpy as np


class FeatureStats:
    """Running per-feature count, mean and sum of squared deviations over rows ``x[..., feature]``."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: np.ndarray | None = None
        self.m2: np.ndarray | None = None

    def update(self, x: np.ndarray) -> None:
        rows = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(x)[-1])
        n = rows.shape[0]
        if n == 0:
            return
        mean = rows.mean(axis=0)
        m2 = ((rows - mean) ** 2).sum(axis=0)
        if self.mean is None:
            self.count, self.mean, self.m2 = n, mean, m2
            return
        if mean.shape != self.mean.shape:
            raise ValueError(f"feature count changed from {self.mean.shape[0]} to {mean.shape[0]}")
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta * delta * (self.count * n / total)
        self.count = total

    def std(self) -> np.ndarray:
        if self.mean is None:
            raise ValueError("no data to compute statistics from")
        return np.sqrt(self.m2 / self.count)


class Normaliser:
    """Applies fitted statistics; std below ``min_std`` (a constant feature) is treated as 1."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, min_std: float) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        std = np.asarray(std, dtype=np.float64)
        self.inv_std = 1.0 / np.where(std < min_std, 1.0, std)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if x.shape[-1] != self.mean.shape[0]:
            raise ValueError(f"normaliser fitted on {self.mean.shape[0]} features, got {x.shape[-1]}")
        return (x - self.mean) * self.inv_std
