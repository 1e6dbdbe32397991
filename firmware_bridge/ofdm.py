"""OFDM subcarrier facts shared by every source (csi-formats spec, section 0)."""

from __future__ import annotations

import numpy as np

NFFT_BY_BW = {20: 64, 40: 128, 80: 256, 160: 512}

# Highest used subcarrier index (HT/VHT) and the DC nulls around 0, per bandwidth.
_EDGE = {20: 28, 40: 58, 80: 122, 160: 250}
_DC = {20: (0,), 40: (-1, 0, 1), 80: (-1, 0, 1), 160: (-1, 0, 1)}
PILOTS = {
    20: (-21, -7, 7, 21),
    40: (-53, -25, -11, 11, 25, 53),
    80: (-103, -75, -39, -11, 11, 39, 75, 103),
}
LEGACY_EDGE_20 = 26


def natural_indices(nfft: int) -> np.ndarray:
    """Subcarrier indices -N/2 .. N/2-1 (int16)."""
    return np.arange(-nfft // 2, nfft // 2, dtype=np.int16)


def fft_to_natural(nfft: int) -> np.ndarray:
    """Permutation p so that ``x_fft[p]`` is in natural order (same as fftshift)."""
    return np.fft.fftshift(np.arange(nfft))


def null_mask(subcarriers: np.ndarray, bandwidth_mhz: int, *, legacy: bool = False) -> np.ndarray:
    """True for guard and DC bins of an HT/VHT (or legacy 11a/g) symbol."""
    sc = np.asarray(subcarriers, dtype=np.int32)
    edge = LEGACY_EDGE_20 if (legacy and bandwidth_mhz == 20) else _EDGE[bandwidth_mhz]
    return (np.abs(sc) > edge) | np.isin(sc, _DC[bandwidth_mhz])


def pilot_mask(subcarriers: np.ndarray, bandwidth_mhz: int) -> np.ndarray:
    return np.isin(np.asarray(subcarriers, dtype=np.int32), PILOTS.get(bandwidth_mhz, ()))
