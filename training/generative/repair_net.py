"""The UNIR generator G (a measurement -> a clean window) and its critic D (real measurement or re-measured fake).

G = ``RepairNet``: ``y[batch, time, feature]`` raw, missing entries 0 -> ``x_hat[batch, time, feature]``.
It keeps what arrived and only fills what did not, like the inpainting generator of Pajot et al.,
and starts from the classical estimate computed inside the graph:

    obs      = observed_mask(y)                          1 where y holds a value
    g0[t]    = log(mean observed |y| of packet t) - its mean over the window's packets   (AGC estimate)
    z        = standardised y * exp(-g0), 0 where missing  (levelled packets)
    nc_fill  = normalised convolution over time           sum_k w_k (obs*z)[t-k] / sum_k w_k obs[t-k]
               (a Gaussian-weighted interpolation between the packets that arrived; 0 = the feature mean
               where nothing arrived within reach over time, e.g. a dead subcarrier: then the same
               normalised convolution over the feature axis, from the neighbouring subcarriers)
    d_fill, d_gain = net([z*obs, obs, nc_fill, g0])       dilated 1-D convolutions over time, features as
                                                          channels (a dead subcarrier is predicted from
                                                          the others at the same packet)
    x_hat    = obs * y * exp(-(g0 + d_gain)[t]) + (1 - obs) * (nc_fill + d_fill) * std + mean
               (d_fill within +-3 std and d_gain within +-6 dB, through tanh)

The output layer starts at zero, so an untrained G is the classical interpolation + per-packet gain
normalisation; the adversarial training learns the corrections. Fully convolutional (any time length), no
resampling, only Conv1d / ReLU / elementwise ops: exports to ONNX with dynamic batch and time
(``repair_onnx.py``).

Phase: the corruption model can rotate I/Q features, but G has no phase branch -- on raw I/Q the clean
window's phase is itself random per packet (CFO), so there is nothing to restore; repair sanitised phase
features (``edgecsi.edge.pipeline.phase``) or amplitudes. With ``iq`` the mask and gain treat a subcarrier's
real and imaginary columns together.

D = ``RepairCritic``: measurement -> one score (hinge loss); spectral norm, LeakyReLU, ``BlurPool1d``
downsampling (the anti-aliasing rule for every downsampling in our models), mean over time.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from edgecsi.training.generative.corruption import observed_mask
from edgecsi.training.models.blurpool import BlurPool1d


MAX_FILL = 3.0                              # standard deviations
MAX_GAIN_DB = 6.0
MAX_LOG_GAIN = MAX_GAIN_DB * math.log(10) / 20


class _Residual(nn.Module):
    def __init__(self, channels: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation, padding=dilation * (kernel // 2),
                              padding_mode="replicate")
        self.mix = nn.Conv1d(channels, channels, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h + self.mix(torch.relu(self.conv(h)))


class RepairNet(nn.Module):
    """G: measurement ``y[batch, time, feature]`` -> repaired ``x[batch, time, feature]`` (same units)."""

    def __init__(self, n_features: int, *, channels: int = 32, dilations: tuple[int, ...] = (1, 2, 4, 8),
                 kernel: int = 3, iq: bool = False) -> None:
        super().__init__()
        if kernel % 2 != 1:
            raise ValueError(f"kernel must be odd, got {kernel}")
        self.n_features, self.iq = int(n_features), bool(iq)
        self.hp = {"channels": int(channels), "dilations": [int(d) for d in dilations], "kernel": int(kernel),
                   "iq": self.iq}
        self.register_buffer("input_mean", torch.zeros(n_features))
        self.register_buffer("input_std", torch.ones(n_features))
        self.inp = nn.Conv1d(3 * n_features + 1, channels, 5, padding=2, padding_mode="replicate")
        # Normalised-convolution weights over time (Gaussian, sigma 1.5 packets, reach +-5).
        k = torch.arange(-5, 6, dtype=torch.float32)
        self.register_buffer("interp_taps", torch.exp(-0.5 * (k / 1.5) ** 2).repeat(2 * n_features, 1, 1))
        self.register_buffer("across_taps", torch.exp(-0.5 * (k / 1.5) ** 2).repeat(2, 1, 1))
        self.blocks = nn.Sequential(*[_Residual(channels, kernel, d) for d in dilations])
        self.out = nn.Conv1d(channels, n_features + 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def set_input_stats(self, mean, std, *, eps: float = 1e-6) -> None:
        self.input_mean.copy_(torch.as_tensor(mean, dtype=torch.float32).reshape(self.n_features))
        self.input_std.copy_(torch.as_tensor(std, dtype=torch.float32).reshape(self.n_features).clamp_min(eps))

    def arch(self) -> dict:
        return {"name": "repair_net", "n_features": self.n_features, "hp": dict(self.hp)}

    @classmethod
    def from_arch(cls, arch: dict) -> "RepairNet":
        hp = dict(arch.get("hp", {}))
        hp["dilations"] = tuple(hp.get("dilations", (1, 2, 4, 8)))
        return cls(int(arch["n_features"]), **hp)

    def classical(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(obs, z*obs, nc_fill, g0) of the module docstring; all [b, t, f] except g0 [b, t, 1]."""
        obs = observed_mask(y, self.iq)
        # Per-packet AGC estimate: log observed mean amplitude, minus its mean over the observed packets.
        amp = y.abs() * obs
        count = obs.sum(dim=2, keepdim=True)
        seen = (count > 0).to(y.dtype)
        log_m = torch.log(amp.sum(dim=2, keepdim=True) / count.clamp_min(1.0) + 1e-6) * seen
        ref = log_m.sum(dim=1, keepdim=True) / seen.sum(dim=1, keepdim=True).clamp_min(1.0)
        g0 = (log_m - ref) * seen
        # Levelled packets, standardised per feature; interpolate over time between those that arrived.
        z = (y * torch.exp(-g0) - self.input_mean) / self.input_std * obs
        f = self.n_features
        both = torch.nn.functional.conv1d(torch.cat([z, obs], dim=2).transpose(1, 2), self.interp_taps,
                                          padding=5, groups=2 * f).transpose(1, 2)
        num, den = both[:, :, :f], both[:, :, f:]
        reach = (den > 1e-3).to(z.dtype)
        nc_time = num / den.clamp_min(1e-3) * reach
        # Where nothing arrived within reach over time (a dead subcarrier): the same normalised
        # convolution over the feature axis, from the neighbouring features of the same packet.
        b, t = z.shape[0], z.shape[1]
        pair = torch.stack([nc_time * reach, reach], dim=2).reshape(-1, 2, f)      # [b*t, 2, f]
        across = torch.nn.functional.conv1d(pair, self.across_taps, padding=self.across_taps.shape[-1] // 2,
                                            groups=2).reshape(b, t, 2, f)
        nc_feat = across[:, :, 0] / across[:, :, 1].clamp_min(1e-3) * (across[:, :, 1] > 1e-3).to(z.dtype)
        nc_fill = reach * nc_time + (1 - reach) * nc_feat
        return obs, z, nc_fill, g0

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        obs, z, nc_fill, g0 = self.classical(y)
        h = torch.relu(self.inp(torch.cat([z, obs, nc_fill, g0], dim=2).transpose(1, 2)))
        o = self.out(self.blocks(h)).transpose(1, 2)            # [b, t, f + 1]
        f = self.n_features
        # Bounded corrections (tanh): at most +-MAX_FILL standard deviations on a fill, +-MAX_GAIN_DB on a
        # packet's gain -- an adversarial update can then never blow a window up.
        fill = (nc_fill + MAX_FILL * torch.tanh(o[:, :, :f] / MAX_FILL)) * self.input_std + self.input_mean
        log_gain = g0 + MAX_LOG_GAIN * torch.tanh(o[:, :, f:] / MAX_LOG_GAIN)
        return obs * y * torch.exp(-log_gain) + (1 - obs) * fill


class RepairCritic(nn.Module):
    """D: measurement ``y[batch, time, feature]`` -> score[batch] (high = a real measurement)."""

    def __init__(self, n_features: int, *, channels: int = 32) -> None:
        super().__init__()
        c = int(channels)
        self.register_buffer("input_mean", torch.zeros(n_features))
        self.register_buffer("input_std", torch.ones(n_features))
        self.body = nn.Sequential(
            spectral_norm(nn.Conv1d(n_features, c, 5, padding=2)), nn.LeakyReLU(0.2), BlurPool1d(c),
            spectral_norm(nn.Conv1d(c, 2 * c, 5, padding=2)), nn.LeakyReLU(0.2), BlurPool1d(2 * c),
            spectral_norm(nn.Conv1d(2 * c, 2 * c, 3, padding=1)), nn.LeakyReLU(0.2),
        )
        self.score = spectral_norm(nn.Linear(2 * c, 1))

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        z = ((y - self.input_mean) / self.input_std).transpose(1, 2)
        return self.score(self.body(z).mean(dim=2))[:, 0]


__all__ = ["RepairNet", "RepairCritic"]
