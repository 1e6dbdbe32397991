"""``ensemble``: K zoo models whose outputs are averaged, as ONE exportable model.

    members = [train(..., "count_dnn", seed=s, ...).model for s in range(5)]
    model = combine(members)             # model(x) == mean(member(x) for member in members)

Members may differ (``member_arch``: one ``{"name", "hp"}`` per member, e.g. a ``motion_cnn`` on
per-window centred CSI next to one on the raw levels): on Intel 5300 leave-one-person-out, three such
pairs scored 87.0 / 78.9 % (bedroom / meeting room) where three seeds of the centred model scored
79.4 / 77.2 %; with members on the inter-antenna phase as well (``motion_cnn`` ``columns``: one input,
each member its block) 88.8 / 78.6 % (docs/results/training.md).
The contract of every zoo model holds: ``embed(x)`` is the concatenation of the members' embeddings
``[batch, K * member.embed_dim]`` and ``head`` is one ``nn.Linear`` initialised to the block matrix
``[W_1 ... W_K] / K`` with bias ``mean(b_k)``, so ``head(embed(x))`` is exactly the average of the
members' outputs (logits for classification, values in real units for regression: a member's target
scale is already folded into its own head). Each member keeps its own input normalisation buffers;
``set_input_stats`` sets them all. ``replace_head`` / adaptation work as for any model.
Trained through ``train(..., "ensemble", hp={"base": ..., "members": K})`` the members are trained
jointly on the averaged output; ``combine`` builds it from members trained separately (seeds).
"""

from __future__ import annotations

import torch
from torch import nn

from edgecsi.training.models.base import CSIModel, merge_hp

ENSEMBLE_DEFAULTS = {"base": "count_dnn", "members": 3, "base_hp": {}, "member_arch": None}


class Ensemble(CSIModel):
    name = "ensemble"
    defaults = ENSEMBLE_DEFAULTS

    def __init__(self, n_features: int, n_time: int, n_outputs: int, **hp) -> None:
        from edgecsi.training.models import build_model   # the registry imports this module

        hp = merge_hp(self.defaults, hp, self.name)
        hp["members"] = int(hp["members"])
        hp["base_hp"] = dict(hp["base_hp"])
        if hp["member_arch"]:
            if any(not isinstance(s, dict) or set(s) != {"name", "hp"} for s in hp["member_arch"]):
                raise ValueError(f"{self.name}: member_arch needs one {{'name', 'hp'}} per member, got {hp['member_arch']}")
            hp["members"] = len(hp["member_arch"])
            hp["base"] = hp["member_arch"][0]["name"]
        specs = hp["member_arch"] or [{"name": hp["base"], "hp": hp["base_hp"]}] * hp["members"]
        if hp["members"] < 1 or len(specs) != hp["members"] or any(s["name"] == self.name for s in specs):
            raise ValueError(f"{self.name}: needs members >= 1 non-ensemble models (one member_arch each), got {hp}")
        super().__init__(n_features, n_time, n_outputs, hp)
        self.members = nn.ModuleList(build_model(s["name"], n_features, n_time, n_outputs, **s["hp"]) for s in specs)
        self.hp["base_hp"] = dict(self.members[0].hp)       # the base's resolved hp (e.g. axis="auto")
        if hp["member_arch"]:
            self.hp["member_arch"] = [{"name": m.name, "hp": dict(m.hp)} for m in self.members]
        self.time_axis = "any" if all(m.time_axis == "any" for m in self.members) else "fixed"
        self.embed_dim = sum(m.embed_dim for m in self.members)
        self._make_head()
        self._average_heads()

    def _average_heads(self) -> None:
        """Set ``head`` to the mean of the members' heads (over the concatenated embedding)."""
        k = len(self.members)
        with torch.no_grad():
            self.head.weight.copy_(torch.cat([m.head.weight for m in self.members], dim=1) / k)
            self.head.bias.copy_(torch.stack([m.head.bias for m in self.members]).mean(dim=0))

    def set_input_stats(self, mean, std, *, eps: float = 1e-6) -> None:
        super().set_input_stats(mean, std, eps=eps)
        for m in self.members:
            m.set_input_stats(mean, std, eps=eps)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        # Members normalise the raw input themselves (their buffers may differ when combined).
        return torch.cat([m.embed(x) for m in self.members], dim=1)


def combine(models: list[CSIModel]) -> Ensemble:
    """One :class:`Ensemble` whose output is the mean of ``models`` (same input and outputs; the
    architectures may differ)."""
    if not models:
        raise ValueError("combine: no models")
    first = models[0]
    shape = (first.n_features, first.n_time, first.n_outputs)
    for m in models[1:]:
        if (m.n_features, m.n_time, m.n_outputs) != shape:
            raise ValueError(f"combine: members take or give different shapes "
                             f"((features, time, outputs) {(m.n_features, m.n_time, m.n_outputs)} vs {shape})")
    same = all(m.arch() == first.arch() for m in models[1:])
    ens = Ensemble(*shape, base=first.name, members=len(models), base_hp=first.hp,
                   member_arch=None if same else [{"name": m.name, "hp": dict(m.hp)} for m in models])
    for dst, src in zip(ens.members, models):
        dst.load_state_dict(src.state_dict())
    ens.input_mean.copy_(first.input_mean)
    ens.input_std.copy_(first.input_std)
    ens._average_heads()
    return ens.eval()
