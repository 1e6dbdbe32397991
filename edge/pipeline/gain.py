"""Automatic-gain-control (AGC) normalisation: remove the per-packet receiver gain.

Commodity receivers rescale every packet; the CSI magnitude jumps with the AGC
setting, not with the room. Each mode returns one real scale per packet to
multiply the packet's CSI with:

- ``none``: 1.
- ``mean``: 1 / mean |H| over the kept bins of all antenna chains (relative
  gains between chains survive; the packet's mean amplitude becomes 1).
- ``rssi``: ``10**(rssi/20) / rms |H|``: the packet's CSI power is set to its
  reported RSSI (the Intel 5300 ``get_scaled_csi`` idea, without the noise
  term). Packets with unknown RSSI get NaN and are dropped by the caller.
"""

from __future__ import annotations

import numpy as np

_TINY = 1e-12


def agc_scale(csi: np.ndarray, mode: str, rssi: np.ndarray | None = None) -> np.ndarray:
    """``scale[packet]`` float64 for ``csi[packet, rx, tx, subcarrier]`` (NaN where it cannot be computed)."""
    n = csi.shape[0]
    if mode == "none":
        return np.ones(n)
    amp = np.abs(csi).reshape(n, -1)
    if mode == "mean":
        mean = amp.mean(axis=1)
        with np.errstate(divide="ignore"):
            return np.where(mean > _TINY, 1.0 / mean, np.nan)
    if mode == "rssi":
        if rssi is None:
            raise ValueError("agc='rssi' needs the rssi column")
        rms = np.sqrt((amp * amp).mean(axis=1))
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = np.power(10.0, np.asarray(rssi, dtype=np.float64) / 20.0) / rms
        return np.where((rms > _TINY) & np.isfinite(scale), scale, np.nan)
    raise ValueError(f"unknown agc mode {mode!r}")
