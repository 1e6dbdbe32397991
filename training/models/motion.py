"""``motion_cnn``: an activity 1D-CNN over person-independent motion features computed inside the model.

Why: within one room, who performs an activity changes the *static* CSI amplitude (body size,
where the person stands) far more than the *motion* pattern of the activity. Leave-one-person-out
accuracy of ``activity_cnn`` on raw |CSI| was 79 % / 58 % (Intel 5300 bedroom / meeting room).
This model removes the static part per window before the convolutions, so the exported graph
takes the same raw pipeline output as every other model:

1. ``downsample``: AvgPool1d(k) over time (a fixed kernel; 200 packets at 20 Hz -> 50 at 5 Hz).
2. ``center``: subtract each window's per-feature mean over time (static path / person offset).
3. ``scale``: divide by each window's per-feature RMS over time (after centring: the std), plus
   ``eps`` -- the amplitude of the motion no longer depends on how strong that subcarrier is.
4. ``diff``: append the first temporal difference (x[t] - x[t-1], first step repeated as 0) as
   extra channels: a velocity / Doppler-like view of the same window.
5. ``spectrum=n`` (0 = off): a learned 1x1 projection to ``spectrum_channels`` streams, then a FIXED
   Hann-windowed short-time DFT (bins 1..n of a ``spectrum_window``-packet window, hop = downsample;
   a grouped Conv1d with constant weights) and log magnitude -- Doppler-like spectrogram channels.
6. Conv1d blocks over time (features are channels), global mean over time, Dropout, FC -> embedding.

``columns=[start, stop]`` (default: all) makes the model read only input features ``start:stop``
(after the shared per-feature normalisation): ensemble members can then look at different feature
blocks of ONE pipeline output, e.g. the amplitude and the inter-antenna (``conj``) block of
``features=("amplitude", "conj")`` -- on Intel 5300 a member on each block erred differently enough
to lift the held-out-person validation accuracy (docs/results/training.md).

All steps are static slices, concatenations and mean reductions over a fixed axis (ReduceMean,
Sqrt, Div in ONNX opset 17); int8 static quantization keeps them (checked in tests/test_training.py).
``time_axis`` is "any" (windows of any length >= downsample * 4 work).
"""

from __future__ import annotations

import numbers

import torch
from torch import nn

from edgecsi.training.models.base import CSIModel, conv_block, merge_hp

MOTION_DEFAULTS = {"channels": (32, 64, 96), "kernel": 5, "fc": 64, "dropout": 0.5, "downsample": 1,
                   "center": True, "scale": True, "diff": True, "eps": 0.1,
                   "spectrum": 0, "spectrum_window": 31, "spectrum_channels": 8, "columns": None}


class MotionCNN(CSIModel):
    name = "motion_cnn"
    time_axis = "any"
    defaults = MOTION_DEFAULTS

    def __init__(self, n_features: int, n_time: int, n_outputs: int, **hp) -> None:
        hp = merge_hp(self.defaults, hp, self.name)
        hp["channels"] = [int(c) for c in hp["channels"]]
        for key in ("center", "scale", "diff"):
            hp[key] = bool(hp[key])
        if hp["columns"] is not None:
            cols = hp["columns"]
            pair = not isinstance(cols, str) and hasattr(cols, "__len__") and len(cols) == 2
            if not (pair and all(isinstance(c, numbers.Integral) and not isinstance(c, bool) for c in cols)
                    and 0 <= cols[0] < cols[1] <= n_features):
                raise ValueError(f"{self.name}: columns must be [start, stop] (integers) with 0 <= start < stop <= "
                                 f"n_features ({n_features}), got {cols!r} (command line: --hp 'columns=[0,90]')")
            hp["columns"] = [int(cols[0]), int(cols[1])]
        super().__init__(n_features, n_time, n_outputs, hp)
        width = n_features if hp["columns"] is None else hp["columns"][1] - hp["columns"][0]
        if int(hp["spectrum"]):
            self.time_axis = "fixed"     # the spectrogram is cut to the traced length
        k = int(hp["downsample"])
        if k < 1 or n_time < k:
            raise ValueError(f"{self.name}: downsample={k} needs 1 <= downsample <= n_time ({n_time})")
        self.pre = nn.AvgPool1d(k) if k > 1 else nn.Identity()
        length = n_time // k
        c_in = width * (2 if hp["diff"] else 1)
        n_bins = int(hp["spectrum"])
        if n_bins:
            win, r = int(hp["spectrum_window"]), int(hp["spectrum_channels"])
            if win % 2 != 1 or win > n_time or n_bins > win // 2:
                raise ValueError(f"{self.name}: spectrum_window must be odd and <= n_time, spectrum <= window // 2")
            # Learned projection of the features to r streams (PCA-like), then a FIXED short-time DFT per
            # stream (Hann window, bins 1..n_bins: DC is the static part we drop), hop = downsample, so the
            # spectrogram has the same length as the downsampled motion channels.
            self.project = nn.Conv1d(width, r, 1, bias=False)
            t = torch.arange(win, dtype=torch.float32)
            hann = 0.5 - 0.5 * torch.cos(2 * torch.pi * (t + 1) / (win + 1))
            f = torch.arange(1, n_bins + 1, dtype=torch.float32)[:, None]
            kernels = torch.stack([hann * torch.cos(2 * torch.pi * f * t / win),
                                   hann * torch.sin(2 * torch.pi * f * t / win)], dim=1)   # [bin, re/im, tap]
            self.register_buffer("dft", kernels.reshape(1, 2 * n_bins, win).repeat(r, 1, 1).reshape(r * 2 * n_bins, 1, win))
            c_in += r * n_bins
        blocks = []
        for c_out in hp["channels"]:
            pool = length >= 4
            blocks.append(conv_block(c_in, c_out, int(hp["kernel"]), pool=pool))
            length = length // 2 if pool else length
            c_in = c_out
        self.convs = nn.Sequential(*blocks)
        self.fc = nn.Sequential(nn.Dropout(float(hp["dropout"])), nn.Linear(c_in, int(hp["fc"])), nn.ReLU())
        self.embed_dim = int(hp["fc"])
        self._make_head()

    def motion(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised ``z[batch, time, feature]`` -> motion channels ``[batch, channel, time']``."""
        h = self.pre(z.transpose(1, 2))                          # [batch, feature, time']
        if self.hp["center"]:
            h = h - h.mean(dim=2, keepdim=True)
        if self.hp["scale"]:
            h = h / torch.sqrt((h * h).mean(dim=2, keepdim=True) + float(self.hp["eps"]))
        if self.hp["diff"]:
            d = h[:, :, 1:] - h[:, :, :-1]
            d = torch.cat([torch.zeros_like(h[:, :, :1]), d], dim=2)
            h = torch.cat([h, d], dim=1)
        return h

    def spectrogram(self, z: torch.Tensor, length: int) -> torch.Tensor:
        """Log magnitude of the short-time DFT of the projected streams: ``[batch, r * bins, length]``."""
        h = self.project(z.transpose(1, 2))                          # [batch, r, time]
        h = h - h.mean(dim=2, keepdim=True)
        k, win, r = int(self.hp["downsample"]), int(self.hp["spectrum_window"]), int(self.hp["spectrum_channels"])
        s = nn.functional.conv1d(h, self.dft, stride=k, padding=win // 2, groups=r)   # [batch, r*2*bins, t']
        s = s[:, :, :length].reshape(-1, r * int(self.hp["spectrum"]), 2, length)
        return torch.log(torch.sqrt((s * s).sum(dim=2) + 1e-4) + 1.0)

    def features(self, z: torch.Tensor) -> torch.Tensor:
        if self.hp["columns"] is not None:
            z = z[:, :, self.hp["columns"][0]:self.hp["columns"][1]]
        h = self.motion(z)
        if int(self.hp["spectrum"]):
            h = torch.cat([h, self.spectrogram(z, h.shape[2])], dim=1)
        return self.fc(self.convs(h).mean(dim=2))
