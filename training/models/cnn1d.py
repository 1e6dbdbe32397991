"""1D-CNNs: the AdapLoc-like localization CNN (``cnn1d``) and the plain activity CNN (``activity_cnn``).

Two ways to run a 1D convolution over ``x[batch, time, feature]``:

- ``axis="time"``: features are channels, the kernel slides over time (CSI streams: activity).
  Global mean over time at the end, so any time length >= 1 works.
- ``axis="feature"``: the time steps are channels and the kernel slides over the feature axis
  (subcarriers) -- AdapLoc's 1D-CNN over a fingerprint, and the only sensible choice when
  ``time == 1`` (fingerprints, hand-crafted features). Then ``n_time`` is fixed, and the conv
  output is flattened (not averaged) because *which* subcarrier a pattern sits on is the
  fingerprint (averaging over the feature axis cost 20+ points on iVANET).

``axis="auto"`` picks "time" when ``n_time >= 8`` else "feature"; the resolved value is stored in
``hp`` so a rebuilt model is identical. Pooling (MaxPool1d(2)) is applied only while the sequence is
still >= 4 long, decided at construction, so shapes never depend on data.

``downsample=k`` (axis "time" only) first averages every k packets (AvgPool1d(k), a fixed kernel):
long, slow windows (Intel 5300: 200 packets at 20 Hz) train k times faster with little loss.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecsi.training.models.base import CSIModel, conv_block, merge_hp

CNN1D_DEFAULTS = {"channels": (32, 64, 64), "kernel": 5, "fc": 64, "dropout": 0.2, "axis": "auto", "downsample": 1}
ACTIVITY_DEFAULTS = {"channels": (32, 64, 96), "kernel": 5, "fc": 64, "dropout": 0.3, "axis": "time", "downsample": 1}


class CNN1D(CSIModel):
    name = "cnn1d"
    defaults = CNN1D_DEFAULTS

    def __init__(self, n_features: int, n_time: int, n_outputs: int, **hp) -> None:
        hp = merge_hp(self.defaults, hp, self.name)
        hp["channels"] = [int(c) for c in hp["channels"]]
        if hp["axis"] == "auto":
            hp["axis"] = "time" if n_time >= 8 else "feature"
        if hp["axis"] not in ("time", "feature"):
            raise ValueError(f"{self.name}: axis must be 'time', 'feature' or 'auto', got {hp['axis']!r}")
        super().__init__(n_features, n_time, n_outputs, hp)
        self.time_axis = "any" if hp["axis"] == "time" else "fixed"
        c_in, length = (n_features, n_time) if hp["axis"] == "time" else (n_time, n_features)
        k = int(hp["downsample"])
        if k < 1 or (k > 1 and (hp["axis"] != "time" or n_time < k)):
            raise ValueError(f"{self.name}: downsample={k} needs axis='time' and n_time >= {k}")
        self.pre = nn.AvgPool1d(k) if k > 1 else nn.Identity()
        length = length // k
        blocks = []
        for c_out in hp["channels"]:
            pool = length >= 4
            blocks.append(conv_block(c_in, c_out, int(hp["kernel"]), pool=pool))
            length = length // 2 if pool else length
            c_in = c_out
        self.convs = nn.Sequential(*blocks)
        self.flat_dim = c_in * length if hp["axis"] == "feature" else c_in
        self.fc = nn.Sequential(nn.Dropout(float(hp["dropout"])), nn.Linear(self.flat_dim, int(hp["fc"])), nn.ReLU())
        self.embed_dim = int(hp["fc"])
        self._make_head()

    def features(self, z: torch.Tensor) -> torch.Tensor:
        # Conv1d wants [batch, channel, length].
        h = z.transpose(1, 2) if self.hp["axis"] == "time" else z
        h = self.convs(self.pre(h))
        h = h.mean(dim=2) if self.hp["axis"] == "time" else h.reshape(-1, self.flat_dim)
        return self.fc(h)


class ActivityCNN(CNN1D):
    """Plain 1D-CNN over time for activity windows (the GeoTecINIT / UT-HAR style baseline)."""

    name = "activity_cnn"
    defaults = ACTIVITY_DEFAULTS
