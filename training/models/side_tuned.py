"""``side_tuned``: a frozen base model B, a small side network S and one blend, as ONE module.

Side-tuning (Zhang et al. 2020; see shared/specs/methods.md): the representation is

    embed(x) = alpha * B.embed(x) + (1 - alpha) * S.embed(x)        [batch, embed_dim]
    forward(x) = head(embed(x))                                      [batch, n_outputs]

``alpha = sigmoid(alpha_logit)`` with ``alpha_logit`` a parameter initialised to 0 (alpha = 0.5) when
``alpha_mode="learned"``; for ``"fixed"`` / ``"curriculum"`` alpha is the buffer ``alpha_value`` (the
curriculum lowers it during adaptation and leaves its final value there). The blend is on the
embedding, before ``head``, as in the paper's merge operator; so the module keeps the zoo's
``embed``/``head`` contract and exports through ``export_onnx`` as one graph that also outputs the
blended embedding (the gateway can still calibrate a numpy head on top of it).

hp (JSON-safe, saved in config.json so ``build_from_arch`` rebuilds it):
    base        the base model's ``arch()`` (None: a default ``cnn1d`` of the same shape, so the
                registry can build every model from defaults)
    side        the side network's ``arch()`` (None: :func:`default_side_arch`); its ``embed_dim``
                must equal the base's. The side network's own head is never used and is dropped.
    alpha_mode  "learned" | "fixed" | "curriculum"

The base keeps its own ``head`` (unused here) so its weights stay exactly those of the base run.
"""

from __future__ import annotations

import torch
from torch import nn

from edgecsi.training.models.base import CSIModel, merge_hp

SIDE_TUNED_DEFAULTS = {"base": None, "side": None, "alpha_mode": "learned"}
ALPHA_MODES = ("learned", "fixed", "curriculum")


def default_side_arch(base_arch: dict) -> dict:
    """A small network with the base's input shape whose embedding matches the base's width.

    Windows of >= 8 packets: a ``cnn1d`` over time (16, 32 channels); fingerprints (time < 8): an
    ``mlp`` with one 32-wide hidden layer. About 10k parameters next to the base's 50-200k.
    """
    n_time, n_features = int(base_arch["n_time"]), int(base_arch["n_features"])
    width = int(base_arch["embed_dim"])
    if n_time >= 8:
        name, hp = "cnn1d", {"channels": [16, 32], "kernel": 5, "fc": width, "dropout": 0.1, "axis": "time"}
    else:
        name, hp = "mlp", {"hidden": [32, width], "dropout": 0.1}
    return {"name": name, "n_features": n_features, "n_time": n_time, "n_outputs": int(base_arch["n_outputs"]), "hp": hp}


class SideTuned(CSIModel):
    name = "side_tuned"

    def __init__(self, n_features: int, n_time: int, n_outputs: int, **hp) -> None:
        # The registry imports this module; build_from_arch lives in the registry: import late.
        from edgecsi.training.models import build_from_arch, build_model

        hp = merge_hp(SIDE_TUNED_DEFAULTS, hp, self.name)
        if hp["alpha_mode"] not in ALPHA_MODES:
            raise ValueError(f"{self.name}: alpha_mode must be one of {ALPHA_MODES}, got {hp['alpha_mode']!r}")
        base = (build_from_arch(hp["base"]) if hp["base"] is not None
                else build_model("cnn1d", n_features, n_time, n_outputs))
        hp["base"] = base.arch()
        if (base.n_features, base.n_time) != (n_features, n_time):
            raise ValueError(f"{self.name}: base takes [{base.n_time}, {base.n_features}], "
                             f"not [{n_time}, {n_features}]")
        side = build_from_arch(hp["side"] if hp["side"] is not None else default_side_arch(hp["base"]))
        if side.embed_dim != base.embed_dim:
            raise ValueError(f"{self.name}: side embedding {side.embed_dim} != base embedding {base.embed_dim}")
        side.head = nn.Identity()            # never used; keeps the per-site artefact small
        hp["side"] = {**side.arch(), "n_outputs": side.n_outputs}
        super().__init__(n_features, n_time, n_outputs, hp)
        self.base = base
        self.side = side
        self.embed_dim = base.embed_dim
        self.time_axis = "any" if base.time_axis == side.time_axis == "any" else "fixed"
        self.alpha_logit = nn.Parameter(torch.zeros(()))
        self.register_buffer("alpha_value", torch.tensor(0.5))
        self._make_head()
        # The base normalises its own input; keep this module's (unused) buffers equal to it.
        self.input_mean.copy_(base.input_mean)
        self.input_std.copy_(base.input_std)

    @property
    def alpha_mode(self) -> str:
        return str(self.hp["alpha_mode"])

    def alpha(self) -> torch.Tensor:
        """The blend weight of the base (a 0-d tensor in [0, 1])."""
        return torch.sigmoid(self.alpha_logit) if self.alpha_mode == "learned" else self.alpha_value

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        a = self.alpha()
        return a * self.base.embed(x) + (1 - a) * self.side.embed(x)

    def set_input_stats(self, mean, std, *, eps: float = 1e-6) -> None:
        """Sets the statistics of base, side and this module alike (one input, one normalisation)."""
        for m in (super(), self.base, self.side):
            m.set_input_stats(mean, std, eps=eps)

    def train(self, mode: bool = True) -> "SideTuned":
        # The base is frozen: its BatchNorm statistics and dropout stay in eval mode while the side trains.
        super().train(mode)
        self.base.eval()
        return self

    def body_parameters(self):
        """The side network (the base is frozen, the head is the head)."""
        return list(self.side.parameters())
