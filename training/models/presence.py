"""``presence_cnn``: a very small CNN over time for empty / occupied (runs on every window, always on).

Two strided conv blocks over time (features are channels), mean over time, a 32-wide embedding.
Any time length >= 1 works.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecsi.training.models.base import CSIModel, conv_block, merge_hp

PRESENCE_DEFAULTS = {"channels": (16, 32), "kernel": 5, "fc": 32, "dropout": 0.1}


class PresenceCNN(CSIModel):
    name = "presence_cnn"
    time_axis = "any"

    def __init__(self, n_features: int, n_time: int, n_outputs: int = 2, **hp) -> None:
        hp = merge_hp(PRESENCE_DEFAULTS, hp, self.name)
        hp["channels"] = [int(c) for c in hp["channels"]]
        super().__init__(n_features, n_time, n_outputs, hp)
        blocks, c_in, length = [], n_features, n_time
        for c_out in hp["channels"]:
            pool = length >= 4
            blocks.append(conv_block(c_in, c_out, int(hp["kernel"]), pool=pool))
            length = length // 2 if pool else length
            c_in = c_out
        self.convs = nn.Sequential(*blocks)
        self.fc = nn.Sequential(nn.Dropout(float(hp["dropout"])), nn.Linear(c_in, int(hp["fc"])), nn.ReLU())
        self.embed_dim = int(hp["fc"])
        self._make_head()

    def features(self, z: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(z.transpose(1, 2)).mean(dim=2))
