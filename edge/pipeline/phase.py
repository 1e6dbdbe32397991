"""Phase sanitisation: raw CSI phase -> the part a timing/frequency offset cannot explain.

The measured phase of subcarrier k is ``phi(k) = true(k) + 2*pi*k*tau/N + beta
+ noise``: the sampling time offset adds a slope over k, the carrier phase an
offset; both change from packet to packet. Unwrapping over the (kept)
subcarriers and removing the least-squares line ``a*k + b`` leaves the
residual, which is stable over time. Per packet and per antenna chain, so it is
trivially streaming-equals-batch.
"""

from __future__ import annotations

import numpy as np


def detrend_matrix(subcarriers: np.ndarray) -> np.ndarray:
    """``P[k, k']``: ``phase @ P.T`` removes the least-squares line over subcarrier index.

    ``P = I - A (A^T A)^-1 A^T`` with ``A = [k, 1]``; the true index values are
    used, so dropped bins (DC, pilots) do not bend the fit.
    """
    k = np.asarray(subcarriers, dtype=np.float64)
    a = np.stack([k, np.ones_like(k)], axis=1)
    return np.eye(k.shape[0]) - a @ np.linalg.pinv(a)


def sanitize_phase(csi: np.ndarray, subcarriers: np.ndarray, detrend: np.ndarray | None = None) -> np.ndarray:
    """``phase[..., subcarrier]`` float64 for ``csi[..., subcarrier]``: unwrapped over subcarriers, line removed.

    Pass a precomputed ``detrend_matrix(subcarriers)`` on the hot path.
    """
    p = detrend_matrix(subcarriers) if detrend is None else detrend
    phase = np.unwrap(np.angle(csi), axis=-1)
    return phase @ p.T
