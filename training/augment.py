"""Training-time augmentation of ``x[batch, time, feature]`` windows (torch, applied per batch).

gain   each window multiplied by a factor in [1 - gain, 1 + gain] (receiver gain / AGC drift)
shift  each window rolled along time by up to ``shift`` x its length (activity onset varies)
noise  Gaussian noise with ``noise`` x the per-feature training std added (normalised units)

Only windows with ``time > 1`` are shifted. Nothing here runs at inference or export.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class Augment:
    gain: float = 0.0
    shift: float = 0.0
    noise: float = 0.0

    @classmethod
    def parse(cls, spec: "Augment | dict | bool | None") -> "Augment | None":
        """None/False -> no augmentation; True -> defaults for CSI streams; dict -> fields."""
        if spec is None or spec is False:
            return None
        if spec is True:
            return cls(gain=0.15, shift=0.2, noise=0.05)
        if isinstance(spec, cls):
            return spec
        return cls(**spec)

    def as_dict(self) -> dict:
        return asdict(self)

    def __call__(self, x: torch.Tensor, std: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        b, t, _ = x.shape
        if self.gain:
            g = 1 + (torch.rand(b, 1, 1, generator=gen) * 2 - 1) * self.gain
            x = x * g
        if self.shift and t > 1:
            max_shift = int(self.shift * t)
            if max_shift:
                offsets = torch.randint(-max_shift, max_shift + 1, (b,), generator=gen)
                idx = (torch.arange(t)[None, :] - offsets[:, None]) % t          # [batch, time]
                x = torch.gather(x, 1, idx[:, :, None].expand_as(x))
        if self.noise:
            x = x + torch.randn(x.shape, generator=gen) * (self.noise * std)
        return x
