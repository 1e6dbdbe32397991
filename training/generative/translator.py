"""Window-to-window translators and domain critics for cross-domain generation (``bidirectional.py``).

``Translator``: ``x[batch, time, feature]`` raw -> the same window as the other domain would have recorded
it, raw units. Residual in standardised units with a zero-initialised output layer, so it starts as the
identity (a translator that has learnt nothing changes nothing). Dilated 1-D convolutions over time,
features as channels, no resampling.

``DomainCritic``: window -> score (high = from this critic's domain); spectral norm, ``BlurPool1d``
downsampling, mean over time.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from edgecsi.training.models.blurpool import BlurPool1d


class Translator(nn.Module):
    def __init__(self, n_features: int, *, channels: int = 32, dilations: tuple[int, ...] = (1, 2, 4)) -> None:
        super().__init__()
        self.register_buffer("input_mean", torch.zeros(n_features))
        self.register_buffer("input_std", torch.ones(n_features))
        self.inp = nn.Conv1d(n_features, channels, 5, padding=2, padding_mode="replicate")
        self.blocks = nn.ModuleList(nn.Conv1d(channels, channels, 3, dilation=d, padding=d, padding_mode="replicate")
                                    for d in dilations)
        self.out = nn.Conv1d(channels, n_features, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def set_input_stats(self, mean, std, *, eps: float = 1e-6) -> None:
        n = self.input_mean.numel()
        self.input_mean.copy_(torch.as_tensor(mean, dtype=torch.float32).reshape(n))
        self.input_std.copy_(torch.as_tensor(std, dtype=torch.float32).reshape(n).clamp_min(eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = ((x - self.input_mean) / self.input_std).transpose(1, 2)
        h = torch.relu(self.inp(z))
        for block in self.blocks:
            h = h + torch.relu(block(h))
        return x + self.out(h).transpose(1, 2) * self.input_std


class DomainCritic(nn.Module):
    def __init__(self, n_features: int, *, channels: int = 32) -> None:
        super().__init__()
        c = channels
        self.register_buffer("input_mean", torch.zeros(n_features))
        self.register_buffer("input_std", torch.ones(n_features))
        self.body = nn.Sequential(
            spectral_norm(nn.Conv1d(n_features, c, 5, padding=2)), nn.LeakyReLU(0.2), BlurPool1d(c),
            spectral_norm(nn.Conv1d(c, c, 5, padding=2)), nn.LeakyReLU(0.2), BlurPool1d(c),
        )
        self.score = spectral_norm(nn.Linear(c, 1))

    def set_input_stats(self, mean, std, *, eps: float = 1e-6) -> None:
        n = self.input_mean.numel()
        self.input_mean.copy_(torch.as_tensor(mean, dtype=torch.float32).reshape(n))
        self.input_std.copy_(torch.as_tensor(std, dtype=torch.float32).reshape(n).clamp_min(eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = ((x - self.input_mean) / self.input_std).transpose(1, 2)
        return self.score(self.body(z).mean(dim=2))[:, 0]


__all__ = ["Translator", "DomainCritic"]
