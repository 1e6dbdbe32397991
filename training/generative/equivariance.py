"""How well a downsampling encoder follows a time shift of its input (the alias-free GAN lesson, measured).

For an encoder with total stride ``r`` and circular padding, shifting the input by ``s`` samples should
shift its feature map by ``s / r`` samples -- a fractional shift when ``s`` is not a multiple of ``r``,
which we apply to the unshifted map exactly in the Fourier domain. ``shift_equivariance_error`` is the
relative L2 distance between the two; ``shift_invariance_error`` the same for the map's mean over time
(the embedding a model head sees). A strided convolution aliases and misses both by far more than the
same convolutions followed by ``BlurPool1d``.

    strided, blurred = paired_encoders(n_features=56, channels=32, seed=0)    # same conv weights
    shift_equivariance_error(blurred, x, shift=1)   # x[batch, time, feature], time a multiple of 4
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgecsi.training.models.blurpool import BlurPool1d


class ShiftEncoder(nn.Module):
    """Two conv stages with total stride 4 over ``x[batch, time, feature]`` -> ``h[batch, channel, time/4]``.

    ``blur=False``: each conv has stride 2 (the usual strided-conv downsampling);
    ``blur=True``: each conv has stride 1, then ReLU, then ``BlurPool1d`` -- the same weights.
    Circular padding throughout, so integer shifts by multiples of 4 are exact for both.
    """

    def __init__(self, n_features: int, channels: int = 32, kernel: int = 5, *, blur: bool, taps: int = 7) -> None:
        super().__init__()
        self.blur = blur
        stride = 1 if blur else 2
        pad = {"padding": kernel // 2, "padding_mode": "circular"}
        self.conv1 = nn.Conv1d(n_features, channels, kernel, stride=stride, **pad)
        self.conv2 = nn.Conv1d(channels, channels, kernel, stride=stride, **pad)
        self.pool1 = BlurPool1d(channels, taps=taps, pad="circular") if blur else nn.Identity()
        self.pool2 = BlurPool1d(channels, taps=taps, pad="circular") if blur else nn.Identity()
        self.stride = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool1(torch.relu(self.conv1(x.transpose(1, 2))))
        return self.pool2(torch.relu(self.conv2(h)))


def paired_encoders(n_features: int, channels: int = 32, kernel: int = 5, *, seed: int = 0,
                    taps: int = 7) -> tuple[ShiftEncoder, ShiftEncoder]:
    """(strided, blurred) encoders sharing the same convolution weights."""
    torch.manual_seed(seed)
    strided = ShiftEncoder(n_features, channels, kernel, blur=False)
    blurred = ShiftEncoder(n_features, channels, kernel, blur=True, taps=taps)
    blurred.load_state_dict({**blurred.state_dict(), **strided.state_dict()})
    return strided.eval(), blurred.eval()


def fractional_roll(h: torch.Tensor, shift: float) -> torch.Tensor:
    """Circular shift of ``h[..., time]`` by ``shift`` samples (any real number), band-limited (FFT phase ramp).

    For an even length the Nyquist bin has no unique fractional shift; it is kept real (cosine part).
    """
    n = h.shape[-1]
    spec = torch.fft.rfft(h.double(), dim=-1)
    k = torch.arange(spec.shape[-1], dtype=torch.float64)
    ramp = torch.exp(-2j * torch.pi * k * shift / n)
    shifted = spec * ramp
    if n % 2 == 0:
        shifted[..., -1] = spec[..., -1] * torch.cos(torch.tensor(torch.pi * shift))
    return torch.fft.irfft(shifted, n=n, dim=-1).to(h.dtype)


def _check_length(x: torch.Tensor, stride: int) -> None:
    if x.shape[1] % stride:
        raise ValueError(f"time length {x.shape[1]} must be a multiple of the encoder stride {stride}")


@torch.no_grad()
def shift_equivariance_error(encoder: nn.Module, x: torch.Tensor, shift: int) -> float:
    """``||E(roll(x, s)) - roll(E(x), s / r)|| / ||E(x)||`` over the batch; ``x[batch, time, feature]``."""
    stride = int(getattr(encoder, "stride", 1))
    _check_length(x, stride)
    h = encoder(x)
    h_shifted = encoder(torch.roll(x, shifts=shift, dims=1))
    expected = fractional_roll(h, shift / stride)
    return float((h_shifted - expected).norm() / h.norm().clamp_min(1e-12))


@torch.no_grad()
def shift_invariance_error(encoder: nn.Module, x: torch.Tensor, shift: int) -> float:
    """Relative change of the time-mean embedding when the input is rolled by ``shift`` samples."""
    stride = int(getattr(encoder, "stride", 1))
    _check_length(x, stride)
    e = encoder(x).mean(-1)
    e_shifted = encoder(torch.roll(x, shifts=shift, dims=1)).mean(-1)
    return float((e_shifted - e).norm() / e.norm().clamp_min(1e-12))


def compare_shift_errors(x: np.ndarray, *, shifts: tuple[int, ...] = (1, 2, 3), channels: int = 32,
                         seed: int = 0) -> dict[str, dict[str, float]]:
    """Mean equivariance and invariance errors of the strided and blurred twins on windows ``x[w, t, f]``
    (standardised per feature inside; time cropped to a multiple of 4)."""
    xt = torch.as_tensor(np.asarray(x, np.float32))
    xt = xt[:, : xt.shape[1] // 4 * 4]
    xt = (xt - xt.mean((0, 1))) / xt.std((0, 1)).clamp_min(1e-6)
    strided, blurred = paired_encoders(xt.shape[2], channels, seed=seed)
    out = {}
    for name, enc in (("strided", strided), ("blurpool", blurred)):
        out[name] = {"equivariance": float(np.mean([shift_equivariance_error(enc, xt, s) for s in shifts])),
                     "invariance": float(np.mean([shift_invariance_error(enc, xt, s) for s in shifts]))}
    return out


__all__ = ["ShiftEncoder", "paired_encoders", "fractional_roll", "shift_equivariance_error",
           "shift_invariance_error", "compare_shift_errors"]
