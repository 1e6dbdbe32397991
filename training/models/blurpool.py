"""Anti-aliased resampling over time: a fixed low-pass FIR before every stride-2 step (and after every
zero-stuffing upsample), the lesson of BlurPool (Zhang 2019) and the alias-free GAN (Karras et al. 2021).

A stride-2 convolution or pooling keeps every other sample of a signal that still holds energy above the
new Nyquist frequency; that energy folds back (aliases), so shifting the input by one sample changes the
output by much more than a half-sample shift would. Filtering first removes the folding: the
feature map then shifts (nearly) with the input, and a global mean over time becomes (nearly) invariant.

    from edgecsi.training.models.blurpool import BlurPool1d, BlurUpsample1d, lowpass_taps
    down = nn.Sequential(nn.Conv1d(c, c, 5, padding=2), nn.ReLU(), BlurPool1d(c))    # [b, c, t] -> [b, c, ceil(t/2)]
    up = BlurUpsample1d(c)                                                           # [b, c, t] -> [b, c, 2t]

Both are depthwise ``conv1d`` / zero-stuffing with fixed taps held in a buffer (not trained, saved with the
state dict): export-safe (ONNX Pad + Conv, opset 17) and quantizable like any Conv.
Layout everywhere: ``h[batch, channel, time]`` (Conv1d's).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

PAD_MODES = ("reflect", "replicate", "circular", "zeros")


def lowpass_taps(taps: int = 7, *, kind: str = "kaiser", cutoff: float = 0.25, beta: float = 6.0) -> np.ndarray:
    """Odd-length, symmetric, unit-DC-gain low-pass FIR ``h[tap]`` float64.

    kind      "kaiser": Kaiser-windowed sinc, ``cutoff`` in cycles/sample (0.25 = half the input's Nyquist,
              right for decimation by 2), ``beta`` the Kaiser shape (6 ~ 60 dB side lobes with enough taps);
              "binomial": the rows of Pascal's triangle ([1, 2, 1], [1, 4, 6, 4, 1] ...) -- BlurPool's default,
              no ripple, a softer cut.
    """
    if taps < 1 or taps % 2 != 1:
        raise ValueError(f"taps must be odd and >= 1 (a symmetric filter with a centre tap), got {taps}")
    if kind == "binomial":
        h = np.array([math.comb(taps - 1, k) for k in range(taps)], dtype=np.float64)
    elif kind == "kaiser":
        if not 0 < cutoff <= 0.5:
            raise ValueError(f"cutoff must be in (0, 0.5] cycles/sample, got {cutoff}")
        n = np.arange(taps) - (taps - 1) / 2
        h = 2 * cutoff * np.sinc(2 * cutoff * n) * np.kaiser(taps, beta)
    else:
        raise ValueError(f"kind must be 'kaiser' or 'binomial', got {kind!r}")
    return h / h.sum()


def _pad(h: torch.Tensor, left: int, right: int, mode: str) -> torch.Tensor:
    if mode == "zeros":
        return F.pad(h, (left, right))
    return F.pad(h, (left, right), mode=mode)


class BlurPool1d(nn.Module):
    """Low-pass filter then keep every ``stride``-th sample: ``h[b, c, t] -> h[b, c, ceil(t / stride)]``.

    Use it in place of ``MaxPool1d(2)`` / a strided conv: ``Conv1d(stride=1) -> ReLU -> BlurPool1d`` (the
    nonlinearity makes new high frequencies, so the filter goes after it). ``pad`` is the boundary rule
    ("reflect" default; "circular" makes integer shifts by multiples of ``stride`` exact, used by the
    equivariance test).
    """

    def __init__(self, channels: int, stride: int = 2, *, taps: int = 7, kind: str = "kaiser",
                 pad: str = "reflect") -> None:
        super().__init__()
        if pad not in PAD_MODES:
            raise ValueError(f"pad must be one of {PAD_MODES}, got {pad!r}")
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.channels, self.stride, self.pad_mode = int(channels), int(stride), pad
        h = lowpass_taps(taps, kind=kind, cutoff=0.5 / stride)
        self.register_buffer("taps", torch.tensor(h, dtype=torch.float32).repeat(self.channels, 1, 1))
        self.half = taps // 2

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = _pad(h, self.half, self.half, self.pad_mode)
        return F.conv1d(h, self.taps, stride=self.stride, groups=self.channels)

    def extra_repr(self) -> str:
        return f"{self.channels}, stride={self.stride}, taps={self.taps.shape[-1]}, pad={self.pad_mode!r}"


class BlurUpsample1d(nn.Module):
    """Upsample by 2 the alias-free way: insert zeros, then the same low-pass (each polyphase half at unit gain).

    ``h[b, c, t] -> h[b, c, 2t]``; nearest-neighbour or transposed-conv upsampling leave image copies of the
    spectrum (a staircase or a checkerboard over time) that a later layer can latch onto.
    """

    def __init__(self, channels: int, *, taps: int = 7, kind: str = "kaiser", pad: str = "reflect") -> None:
        super().__init__()
        if pad not in PAD_MODES:
            raise ValueError(f"pad must be one of {PAD_MODES}, got {pad!r}")
        self.channels, self.pad_mode = int(channels), pad
        h = lowpass_taps(taps, kind=kind, cutoff=0.25)
        # After zero-stuffing, even and odd outputs each see one polyphase half of the taps: give each half
        # unit DC gain, or a constant input comes out with a ripple at the new Nyquist frequency.
        for phase in (0, 1):
            h[phase::2] /= h[phase::2].sum()
        self.register_buffer("taps", torch.tensor(h, dtype=torch.float32).repeat(self.channels, 1, 1))
        self.half = taps // 2

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # [b, c, t] -> [b, c, t, 2] with zeros in the second slot -> [b, c, 2t]
        stuffed = F.pad(h.unsqueeze(-1), (0, 1)).flatten(2)
        return F.conv1d(_pad(stuffed, self.half, self.half, self.pad_mode), self.taps, groups=self.channels)

    def extra_repr(self) -> str:
        return f"{self.channels}, taps={self.taps.shape[-1]}, pad={self.pad_mode!r}"


__all__ = ["BlurPool1d", "BlurUpsample1d", "lowpass_taps", "PAD_MODES"]
