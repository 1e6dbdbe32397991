"""What every model in the zoo shares: the input layout, input normalisation, ``embed`` and ``head``.

Input layout (fixed for every model, and for the exported ONNX graph):

    x[batch, time, feature]  float32, exactly what the signal pipeline / data-set loader outputs

Each model normalises its input itself with per-feature statistics stored as buffers
(``input_mean[feature]``, ``input_std[feature]``, set from the training data by ``set_input_stats``),
so the exported graph takes exactly what the gateway's pipeline produces. (A pipeline whose config
has ``normalise.enabled`` has already standardised its output with its own fitted statistics, in
training and on the gateway alike; the model's statistics then sit near 0 / 1.)

Output: ``forward(x) = head(embed(x))`` -> float32[batch, n_outputs] (logits for classification,
values for regression). ``embed(x)`` -> float32[batch, embed_dim] is everything before the final
``nn.Linear`` ``head``; site adaptation freezes the body and fine-tunes or replaces ``head``
(``replace_head``).

Export safety (checked by tests/test_training.py for every registered model): only Conv1d,
BatchNorm1d, ReLU, MaxPool1d with kernel 2, Linear, Dropout, a standard batch-first nn.LSTM,
static reshapes/slices and mean reductions over a fixed axis. No adaptive pooling, no shapes that
depend on the data.
"""

from __future__ import annotations

import torch
from torch import nn

INPUT_LAYOUT = "x[batch, time, feature] float32 (the signal pipeline's output; the model normalises per feature)"


class CSIModel(nn.Module):
    """Base class: subclasses build ``self.body`` pieces, implement ``features(x)`` and set ``embed_dim``.

    ``name`` is the registry name; ``hp`` holds the hyper-parameters that, together with
    ``n_features``, ``n_time`` and ``n_outputs``, rebuild the same architecture.
    """

    name: str = "base"
    #: The time length the model needs: "fixed" (must equal n_time) or "any" (any length >= a minimum).
    time_axis: str = "fixed"

    def __init__(self, n_features: int, n_time: int, n_outputs: int, hp: dict) -> None:
        super().__init__()
        if n_features < 1 or n_time < 1 or n_outputs < 1:
            raise ValueError(f"{self.name}: n_features, n_time, n_outputs must be >= 1 "
                             f"(got {n_features}, {n_time}, {n_outputs})")
        self.n_features = int(n_features)
        self.n_time = int(n_time)
        self.n_outputs = int(n_outputs)
        self.hp = dict(hp)
        self.register_buffer("input_mean", torch.zeros(n_features))
        self.register_buffer("input_std", torch.ones(n_features))

    # -- to implement -------------------------------------------------------------------------
    embed_dim: int

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised ``z[batch, time, feature]`` -> ``float32[batch, embed_dim]``."""
        raise NotImplementedError

    # -- shared -------------------------------------------------------------------------------
    def _make_head(self) -> None:
        self.head = nn.Linear(self.embed_dim, self.n_outputs)

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.input_mean) / self.input_std

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """``x[batch, time, feature]`` (raw) -> embedding ``[batch, embed_dim]`` (input of ``head``)."""
        return self.features(self.normalise(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))

    def set_input_stats(self, mean, std, *, eps: float = 1e-6) -> None:
        """Per-feature mean and std of the training inputs (arrays of length n_features)."""
        mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(self.n_features)
        std_t = torch.as_tensor(std, dtype=torch.float32).reshape(self.n_features).clamp_min(eps)
        self.input_mean.copy_(mean_t)
        self.input_std.copy_(std_t)

    def replace_head(self, n_outputs: int) -> nn.Linear:
        """A fresh ``nn.Linear(embed_dim, n_outputs)`` head (new label set at a new site)."""
        self.n_outputs = int(n_outputs)
        self._make_head()
        return self.head

    def body_parameters(self):
        """Every parameter except the head's (what adaptation freezes)."""
        head_ids = {id(p) for p in self.head.parameters()}
        return [p for p in self.parameters() if id(p) not in head_ids]

    def arch(self) -> dict:
        """What ``build_model`` needs to rebuild this architecture (saved in config.json)."""
        return {"name": self.name, "n_features": self.n_features, "n_time": self.n_time,
                "n_outputs": self.n_outputs, "hp": dict(self.hp), "embed_dim": self.embed_dim,
                "time_axis": self.time_axis}


def conv_block(c_in: int, c_out: int, kernel: int, *, pool: bool) -> nn.Sequential:
    """Conv1d (same padding, odd kernel) + BatchNorm1d + ReLU (+ MaxPool1d(2)); fuses for int8."""
    if kernel % 2 != 1:
        raise ValueError(f"kernel must be odd for same padding, got {kernel}")
    layers: list[nn.Module] = [nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
                               nn.BatchNorm1d(c_out), nn.ReLU()]
    if pool:
        layers.append(nn.MaxPool1d(2))
    return nn.Sequential(*layers)


def merge_hp(defaults: dict, hp: dict, name: str) -> dict:
    """Defaults overridden by ``hp``; unknown keys are an error (typos should not train silently)."""
    unknown = set(hp) - set(defaults)
    if unknown:
        raise ValueError(f"{name}: unknown hyper-parameters {sorted(unknown)}; known: {sorted(defaults)}")
    out = dict(defaults)
    out.update(hp)
    return out
