"""The known corruption model F_theta of CSI windows: what the radio and the link do to a clean window.

    y = F_theta(x)      x, y  float32[window, time, feature]   (time = packets, as the data sets give them)

theta (``CorruptionParams``), drawn independently per window by ``CorruptionModel.sample``:

packet_keep[w, t]   0 where the packet was lost. Losses come in bursts of ``burst`` packets whose starts
                    are independent, tuned so a fraction ``packet_loss`` of packets is lost on average.
unit_keep[w, u]     0 for a subcarrier ("unit") dropped for the whole window (a dead or nulled bin):
                    a fraction ``subcarrier_drop`` of the units. A unit is one feature column, or with
                    ``subcarriers=S`` the subcarrier index ``feature % S`` on every chain (Intel 5300
                    ``rx*30 + sc`` -> S = 30), and with ``iq`` both its real and imaginary columns.
gain[w, t]          per-packet AGC gain, log-normal with ``agc_db`` dB standard deviation (amplitude).
phase[w, t]         per-packet common phase offset, uniform in +-``phase`` rad, plus ``slope[w, t]`` rad per
                    subcarrier, uniform in +-``phase_slope`` (CFO / timing offset). Only with ``iq=True``
                    (features = [real block | imaginary block], the Intel ``representation="iq"``
                    layout); amplitude features do not see a phase offset.

Order: gain and phase rotate/scale every entry, then the lost packets and dropped units are set to 0 --
what a fixed-rate window holds where nothing arrived. The missing entries of a measurement are therefore
readable from the measurement itself (``observed_mask``); the gains and phases are not.

Torch first (``CorruptionModel``, used inside UNIR training with fresh theta every step); ``corrupt``
wraps it for numpy arrays with a seed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np
import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class CorruptionConfig:
    packet_loss: float = 0.2
    burst: int = 3
    subcarrier_drop: float = 0.1
    agc_db: float = 1.0
    phase: float = 0.0
    phase_slope: float = 0.0
    iq: bool = False
    subcarriers: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.packet_loss < 1 or not 0 <= self.subcarrier_drop < 1:
            raise ValueError("packet_loss and subcarrier_drop must be in [0, 1)")
        if self.burst < 1:
            raise ValueError(f"burst must be >= 1 packet, got {self.burst}")
        if self.agc_db < 0 or self.phase < 0 or self.phase_slope < 0:
            raise ValueError("agc_db, phase and phase_slope are spreads: >= 0")
        if (self.phase or self.phase_slope) and not self.iq:
            raise ValueError("phase offsets need I/Q features (iq=True): amplitudes carry no phase")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "CorruptionConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"CorruptionConfig: unknown field(s) {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    @classmethod
    def parse(cls, text: str) -> "CorruptionConfig":
        """``"packet_loss=0.3,burst=4,agc_db=2"`` -> config (the CLI's form); empty -> defaults."""
        values: dict = {}
        types = {f.name: f.type for f in fields(cls)}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, raw = part.partition("=")
            if not sep or key not in types:
                raise ValueError(f"bad corruption setting {part!r}; known: {sorted(types)}")
            if key == "iq":
                values[key] = raw.lower() in ("1", "true", "yes")
            elif key in ("burst",):
                values[key] = int(raw)
            elif key == "subcarriers":
                values[key] = None if raw.lower() == "none" else int(raw)
            else:
                values[key] = float(raw)
        return cls(**values)


@dataclass
class CorruptionParams:
    """theta for a batch of windows (see the module docstring); float32 tensors."""

    packet_keep: torch.Tensor   # [w, t]
    unit_keep: torch.Tensor     # [w, units]
    gain: torch.Tensor          # [w, t]
    phase: torch.Tensor         # [w, t] rad
    slope: torch.Tensor         # [w, t] rad per subcarrier


class CorruptionModel:
    """F_theta for windows with ``n_features`` features; ``sample`` draws theta, ``apply`` measures."""

    def __init__(self, config: CorruptionConfig, n_features: int) -> None:
        self.config = config
        self.n_features = int(n_features)
        block = self.n_features // 2 if config.iq else self.n_features
        if config.iq and self.n_features % 2:
            raise ValueError(f"iq features need an even count (real block, imaginary block), got {n_features}")
        per_chain = config.subcarriers or block
        if block % per_chain:
            raise ValueError(f"{block} features per part are not a whole number of {per_chain}-subcarrier chains")
        # unit index of every feature column and subcarrier index (for the phase slope)
        within = torch.arange(block) % per_chain
        self.unit_of_feature = within.repeat(2) if config.iq else within
        self.n_units = per_chain
        self.subcarrier = within.float() - (per_chain - 1) / 2

    def sample(self, n_windows: int, n_time: int, generator: torch.Generator | None = None) -> CorruptionParams:
        cfg = self.config
        rate, burst = cfg.packet_loss, int(cfg.burst)
        if rate > 0:
            # A packet is lost if a burst started in it or in one of the burst-1 before it:
            # P(kept) = (1 - q)^burst = 1 - rate.
            q = 1.0 - (1.0 - rate) ** (1.0 / burst)
            starts = (torch.rand(n_windows, 1, n_time, generator=generator) < q).float()
            lost = F.max_pool1d(F.pad(starts, (burst - 1, 0)), burst, stride=1)[:, 0]
            packet_keep = 1.0 - lost
        else:
            packet_keep = torch.ones(n_windows, n_time)
        if cfg.subcarrier_drop > 0:
            unit_keep = (torch.rand(n_windows, self.n_units, generator=generator) >= cfg.subcarrier_drop).float()
        else:
            unit_keep = torch.ones(n_windows, self.n_units)
        log_gain = torch.randn(n_windows, n_time, generator=generator) * (cfg.agc_db * math.log(10) / 20)
        phase = (torch.rand(n_windows, n_time, generator=generator) * 2 - 1) * cfg.phase
        slope = (torch.rand(n_windows, n_time, generator=generator) * 2 - 1) * cfg.phase_slope
        return CorruptionParams(packet_keep, unit_keep, torch.exp(log_gain), phase, slope)

    def keep_mask(self, theta: CorruptionParams) -> torch.Tensor:
        """``keep[w, t, f]`` float 1/0: the entries F_theta leaves observed."""
        return theta.packet_keep[:, :, None] * theta.unit_keep[:, None, self.unit_of_feature]

    def apply(self, x: torch.Tensor, theta: CorruptionParams) -> torch.Tensor:
        """``F_theta(x)`` for ``x[w, t, f]`` (differentiable in ``x``)."""
        if x.shape[2] != self.n_features:
            raise ValueError(f"x has {x.shape[2]} features, the corruption model {self.n_features}")
        y = x * theta.gain[:, :, None]
        if self.config.iq and (self.config.phase or self.config.phase_slope):
            angle = theta.phase[:, :, None] + theta.slope[:, :, None] * self.subcarrier.to(x.dtype)
            half = self.n_features // 2
            re, im = y[..., :half], y[..., half:]
            c, s = torch.cos(angle), torch.sin(angle)
            y = torch.cat([re * c - im * s, re * s + im * c], dim=2)
        return y * self.keep_mask(theta)

    def __call__(self, x: torch.Tensor,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, CorruptionParams]:
        theta = self.sample(x.shape[0], x.shape[1], generator)
        return self.apply(x, theta), theta


def observed_mask(y: torch.Tensor, iq: bool = False) -> torch.Tensor:
    """``obs[w, t, f]`` float 1 where the measurement holds a value, 0 where it was lost (exactly 0).

    With ``iq`` an entry counts as observed when its real or imaginary part is non-zero (a complex value
    of exactly 0 is what a lost entry is).
    """
    nz = (y != 0).to(y.dtype)
    if not iq:
        return nz
    half = y.shape[-1] // 2
    either = torch.maximum(nz[..., :half], nz[..., half:])
    return torch.cat([either, either], dim=-1)


def observed_mask_np(y: np.ndarray, iq: bool = False) -> np.ndarray:
    """numpy twin of ``observed_mask`` -> bool[w, t, f]."""
    nz = np.asarray(y) != 0
    if not iq:
        return nz
    half = nz.shape[-1] // 2
    either = nz[..., :half] | nz[..., half:]
    return np.concatenate([either, either], axis=-1)


def corrupt(x: np.ndarray, config: CorruptionConfig, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(y, keep)``: ``F_theta(x)`` for ``x[w, t, f]`` with theta drawn from ``seed``, and ``keep[w, t, f]``
    bool (True where the entry survived). Deterministic for a given seed and shape."""
    model = CorruptionModel(config, x.shape[2])
    gen = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(np.ascontiguousarray(x, np.float32))
    theta = model.sample(xt.shape[0], xt.shape[1], gen)
    with torch.no_grad():
        y = model.apply(xt, theta)
    return y.numpy(), model.keep_mask(theta).numpy().astype(bool)


__all__ = ["CorruptionConfig", "CorruptionParams", "CorruptionModel", "observed_mask", "observed_mask_np", "corrupt"]
