"""What a commodity receiver does to the true channel before it reports CSI.

- per-packet random common phase (CFO residue, PLL phase) and a linear phase slope
  across subcarriers (symbol timing offset plus a slow sampling-frequency drift);
- AWGN of a fixed absolute level (thermal noise), so a shadowed link gets a worse SNR;
- AGC: the gain is picked from a table of ``step_db`` steps to bring the received
  power to the chip's target level, and now and then hunts one step off for a while;
  the reported CSI is scaled by that gain, RSSI is not.

All arrays are ``[packet, rx, tx, subcarrier]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgecsi.training.simulate.chips import SUBCARRIER_SPACING_HZ


@dataclass(frozen=True)
class Impairments:
    """Receiver imperfections. Defaults are typical of ESP32/Nexmon captures."""

    snr_db: float = 25.0
    sto_std_s: float = 15e-9  # per-packet timing offset spread
    sfo_ppm: float = 10.0  # drift of the timing offset, wrapped into one sample period
    agc_step_db: float = 1.0
    agc_hunt_prob: float = 0.003  # per packet, chance the AGC leaves its ideal step
    agc_settle_prob: float = 0.05  # per packet, chance it returns
    rssi_std_db: float = 0.7
    random_phase: bool = True


def phase_errors(t: np.ndarray, subcarriers: np.ndarray, bandwidth_mhz: int, imp: Impairments,
                 rng: np.random.Generator) -> np.ndarray:
    """complex[packet, subcarrier] unit-magnitude factor exp(j(phi - 2 pi k df delta))."""
    n = len(t)
    phi = rng.uniform(0, 2 * np.pi, n) if imp.random_phase else np.zeros(n)
    sample = 1.0 / (bandwidth_mhz * 1e6)
    # SFO: the timing offset drifts at ppm * t and the receiver re-syncs every sample period.
    drift = np.mod(imp.sfo_ppm * 1e-6 * t + sample / 2, sample) - sample / 2
    delta = rng.normal(0.0, imp.sto_std_s, n) + drift
    k = subcarriers.astype(np.float64)
    return np.exp(1j * (phi[:, None] - 2 * np.pi * k[None, :] * SUBCARRIER_SPACING_HZ * delta[:, None]))


def rms_over(h: np.ndarray, used: np.ndarray) -> np.ndarray:
    """float[packet]: RMS magnitude of h[packet, rx, tx, subcarrier] over the ``used`` bins."""
    return np.sqrt(np.mean(np.abs(h[..., used]) ** 2, axis=(1, 2, 3)))


def add_noise(h: np.ndarray, used: np.ndarray, snr_db: float, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """h plus circular Gaussian noise at ``snr_db`` below the median received power; returns (h, noise std)."""
    std = float(np.median(rms_over(h, used))) / 10 ** (snr_db / 20)
    noise = rng.normal(0.0, std / np.sqrt(2), (*h.shape, 2)).view(np.complex128)[..., 0]
    return h + noise, std


def agc_gain_db(power_db: np.ndarray, target_db: float, imp: Impairments, rng: np.random.Generator) -> np.ndarray:
    """float[packet]: the gain (dB) the AGC applies, on its step grid, with occasional hunting."""
    step = imp.agc_step_db
    ideal = step * np.round((target_db - power_db) / step)
    n = len(power_db)
    off = np.zeros(n)
    u = rng.random(n)
    direction = rng.choice([-1.0, 1.0], n)
    state = 0.0
    for i in range(n):
        if state == 0.0 and u[i] < imp.agc_hunt_prob:
            state = direction[i] * step
        elif state != 0.0 and u[i] < imp.agc_settle_prob:
            state = 0.0
        off[i] = state
    return ideal + off


def rssi_dbm(power_db: np.ndarray, eirp_dbm: float, imp: Impairments, rng: np.random.Generator) -> np.ndarray:
    """float[packet]: integer dBm, as chips report it."""
    return np.round(eirp_dbm + power_db + rng.normal(0.0, imp.rssi_std_db, len(power_db)))
