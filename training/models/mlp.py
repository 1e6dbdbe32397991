"""Fully connected networks: ``mlp`` (fingerprint localization) and ``count_dnn`` (crowd counting).

Both flatten ``x[batch, time, feature]`` to ``time * feature`` inputs, so ``n_time`` is fixed.
Hidden layers are Linear + BatchNorm1d + ReLU + Dropout. The TorchScript exporter does not fold a
BatchNorm1d that follows a Linear, so ``edgecsi.export.onnx_export.fold_batch_norms`` folds it into the
Linear before export (without that, the float BatchNormalization nodes made int8 no faster than fp32).
The embedding is the last hidden layer; ``head`` maps it to class logits (reference points,
people counts as classes) or to values (coordinates: ``n_outputs=2``; a count: ``n_outputs=1``).
"""

from __future__ import annotations

import torch
from torch import nn

from edgecsi.training.models.base import CSIModel, merge_hp

MLP_DEFAULTS = {"hidden": (256, 128), "dropout": 0.2}
COUNT_DNN_DEFAULTS = {"hidden": (256, 128, 64), "dropout": 0.3}


class MLP(CSIModel):
    name = "mlp"
    defaults = MLP_DEFAULTS

    def __init__(self, n_features: int, n_time: int, n_outputs: int, **hp) -> None:
        hp = merge_hp(self.defaults, hp, self.name)
        hp["hidden"] = [int(h) for h in hp["hidden"]]
        if not hp["hidden"]:
            raise ValueError(f"{self.name}: needs at least one hidden layer (the embedding)")
        super().__init__(n_features, n_time, n_outputs, hp)
        layers: list[nn.Module] = []
        d_in = n_time * n_features
        for d_out in hp["hidden"]:
            layers += [nn.Linear(d_in, d_out), nn.BatchNorm1d(d_out), nn.ReLU(), nn.Dropout(float(hp["dropout"]))]
            d_in = d_out
        self.layers = nn.Sequential(*layers)
        self.embed_dim = d_in
        self._make_head()

    def features(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z.reshape(-1, self.n_time * self.n_features))


class CountDNN(MLP):
    """DeepCount-style DNN for crowd counting: ``n_outputs=1`` regresses the count,
    ``n_outputs=k`` classifies 0..k-1 people."""

    name = "count_dnn"
    defaults = COUNT_DNN_DEFAULTS
