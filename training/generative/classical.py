"""The plain repairs a learnt one must beat (numpy only): interpolation, Hampel, per-packet gain normalisation.

All take and return ``y[window, time, feature]`` float32 measurements in which missing entries are 0 (see
``corruption.py``); ``observed[w, t, f]`` bool says which entries hold a value (default: the non-zero ones).

interpolate_missing   each feature: straight lines over time between the packets that arrived (edge values
                      held); a feature missing for the whole window (dropped subcarrier): straight lines over
                      the feature index between the observed features of the same packet
hampel_repair         the gateway pipeline's Hampel filter (``edgecsi.edge.pipeline.hampel``) over time, per
                      window: a lost packet's 0 is an outlier and becomes the window median
normalise_gain        each packet's observed mean amplitude scaled to the window's median packet mean (the
                      pipeline's ``agc="mean"`` idea, keeping the window's level)
"""

from __future__ import annotations

import numpy as np

from edgecsi.edge.pipeline.hampel import hampel


def _observed(y: np.ndarray, observed: np.ndarray | None) -> np.ndarray:
    return (y != 0) if observed is None else np.asarray(observed, bool)


def interpolate_missing(y: np.ndarray, observed: np.ndarray | None = None) -> np.ndarray:
    """Linear interpolation of the missing entries (over time, then over features for whole-window gaps)."""
    y = np.asarray(y, np.float32)
    obs = _observed(y, observed)
    out = y.copy()
    t_axis = np.arange(y.shape[1])
    f_axis = np.arange(y.shape[2])
    for w in range(y.shape[0]):
        ow = obs[w]
        if ow.all():
            continue
        seen_any = ow.any(axis=0)                 # [f]: the feature has at least one observed packet
        for f in np.flatnonzero(seen_any & ~ow.all(axis=0)):
            keep = ow[:, f]
            out[w, ~keep, f] = np.interp(t_axis[~keep], t_axis[keep], y[w, keep, f])
        dead = ~seen_any
        if dead.any() and seen_any.any():
            cols = np.flatnonzero(seen_any)
            for t in range(y.shape[1]):
                out[w, t, dead] = np.interp(f_axis[dead], cols, out[w, t, cols])
    return out


def hampel_repair(y: np.ndarray, half_window: int = 3, n_sigma: float = 3.0) -> np.ndarray:
    """The pipeline's Hampel filter over time on every window (``x[time, feature]`` one segment)."""
    y = np.asarray(y, np.float32)
    return np.stack([hampel(w, half_window, n_sigma) for w in y]).astype(np.float32) if len(y) else y.copy()


def normalise_gain(y: np.ndarray, observed: np.ndarray | None = None) -> np.ndarray:
    """Scale each packet so its mean observed amplitude equals the window's median packet mean."""
    y = np.asarray(y, np.float32)
    obs = _observed(y, observed)
    count = obs.sum(axis=2)
    mean = np.where(count > 0, np.abs(y * obs).sum(axis=2) / np.maximum(count, 1), np.nan)   # [w, t]
    level = np.nanmedian(np.where(np.isfinite(mean), mean, np.nan), axis=1, keepdims=True)
    scale = np.where(np.isfinite(mean) & (mean > 0), level / np.where(mean > 0, mean, 1), 1.0)
    return (y * np.nan_to_num(scale, nan=1.0)[:, :, None]).astype(np.float32)


def interpolate_and_normalise(y: np.ndarray, observed: np.ndarray | None = None) -> np.ndarray:
    """``normalise_gain`` then ``interpolate_missing`` (gain first: the interpolation then joins levelled packets)."""
    obs = _observed(np.asarray(y), observed)
    return interpolate_missing(normalise_gain(y, obs), obs)


#: name -> repair function of y alone (missing = 0), the baselines of the repair table.
BASELINES = {
    "none": lambda y: np.asarray(y, np.float32).copy(),
    "interpolate": interpolate_missing,
    "hampel": hampel_repair,
    "interpolate+gain": interpolate_and_normalise,
}

__all__ = ["interpolate_missing", "hampel_repair", "normalise_gain", "interpolate_and_normalise", "BASELINES"]
