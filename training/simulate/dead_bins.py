"""What real firmware puts in the bins that carry no channel estimate.

- ESP32 nulls print as 0; the first 4 bytes of the buffer (subcarriers 0 and +1 of the
  L-LTF, FFT order) are garbage such as ``38 96 2 0`` (4th byte always 0), stable for
  long runs (csi-formats spec 2.4).
- Nexmon guard bins hold arbitrary small values; CSI words 0..2 (80 MHz: subcarriers
  0, +1, +2) are overwritten by PhyRxStatus, which barely changes between packets
  (spec 3.4: ``2538 0000 00c6 8080 80..`` in the 43455c0 sample).

Values are complex64 in the chip's units, already representable in its format.
"""

from __future__ import annotations

import numpy as np

from edgecsi.training.simulate.chips import ChipProfile
from edgecsi.training.simulate.quantize import quantize


def _esp32_first_word(n: int, rng: np.random.Generator) -> np.ndarray:
    """complex[packet, 2]: entries 0 and 1 from garbage bytes (imag, real, imag, real=0)."""
    base = np.array([rng.integers(10, 110), rng.integers(-60, 100), rng.integers(0, 10)])
    changes = rng.random(n) < 0.02  # the garbage stays put for a while, then jumps
    draws = np.stack([rng.integers(10, 110, n), rng.integers(-60, 100, n), rng.integers(0, 10, n)], axis=1)
    which = np.maximum.accumulate(np.where(changes, np.arange(n), -1))
    b = np.where(which[:, None] >= 0, draws[np.maximum(which, 0)], base[None, :])
    out = np.empty((n, 2), dtype=np.complex64)
    out[:, 0] = b[:, 1] + 1j * b[:, 0]
    out[:, 1] = 0 + 1j * b[:, 2]
    return out


def _phy_status_int16(n: int, rng: np.random.Generator) -> np.ndarray:
    """complex[packet, 3]: 12 PhyRxStatus bytes read as 3 (int16 real, int16 imag) words."""
    raw = np.tile(np.array([0x25, 0x38, 0, 0, 0, 0xC6, 0x80, 0x80, 0x80, 0, 0, 0], dtype=np.uint8), (n, 1))
    raw[:, 0] = rng.choice([0x25, 0x27, 0x35], n, p=[0.9, 0.05, 0.05])  # the few values seen
    words = raw.view("<i2").reshape(n, 3, 2).astype(np.float32)
    return (words[..., 0] + 1j * words[..., 1]).astype(np.complex64)


def fill_dead_bins(csi: np.ndarray, chip: ChipProfile, noise_std: float, rng: np.random.Generator) -> None:
    """Overwrite nulls and firmware-artefact bins of csi[packet, rx, tx, subcarrier] in place."""
    n = csi.shape[0]
    nulls = chip.null_mask & ~chip.artefact_mask
    if chip.null_fill == "zero":
        csi[..., nulls] = 0
    else:
        shape = (*csi.shape[:3], int(nulls.sum()))
        noise = rng.normal(0.0, noise_std / np.sqrt(2), (*shape, 2)).view(np.complex128)[..., 0]
        csi[..., nulls] = quantize(noise, chip.value_kind)
    artefact_idx = np.flatnonzero(chip.artefact_mask)  # ascending subcarrier = ascending FFT word here
    if chip.is_esp32:
        garbage = _esp32_first_word(n, rng)
    elif chip.value_kind == "int14":
        garbage = _phy_status_int16(n, rng)
    else:  # packed float: the status words decode to some constant values
        const = rng.normal(0.0, 3.0, (len(artefact_idx), 2)) @ np.array([1.0, 1j])
        garbage = np.broadcast_to(quantize(const, chip.value_kind), (n, len(artefact_idx)))
    csi[..., artefact_idx] = garbage[:, None, None, :]
