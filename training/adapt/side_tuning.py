"""Side-tuning (Zhang et al. 2020): base B frozen, a small side network S, ``alpha*B + (1-alpha)*S``.

1. Build :class:`~edgecsi.training.models.side_tuned.SideTuned` around a copy of the base (frozen, eval
   mode) with a small side network whose embedding width equals the base's, and a head initialised from
   the base's head.
2. Distil B into S: ``S.embed(x) ~ B.embed(x)`` (mean squared error) on source and unlabelled target
   windows -- no labels involved -- so at alpha = 0.5 the blend starts where the base is.
3. Train S, the head and alpha on the labelled target windows (CE over the classes they show,
   ``seen_ce``; + ``source_weight`` x CE on source
   windows, for classes the site did not label). alpha: ``learned`` = sigmoid of a parameter initialised
   0, no weight decay on it (the paper's code); ``curriculum`` = from 1 down to ``alpha_end`` linearly;
   ``fixed`` = ``alpha_end``.

The result is one module (base + side + blend + head); ``export_onnx`` writes it as one ONNX graph
whose ``embedding`` output is the blended embedding. The per-site artefact is the side network, the
head and alpha; the base's tensors are bit-identical to the base run's.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgecsi.training.adapt.batches import BatchStream, progress
from edgecsi.training.adapt.method import MethodResult
from edgecsi.training.adapt.seen_ce import seen_class_cross_entropy, seen_mask
from edgecsi.training.adapt.target import AdaptData
from edgecsi.training.models import build_from_arch
from edgecsi.training.models.side_tuned import SideTuned, default_side_arch


@dataclass
class SideConfig:
    alpha_mode: str = "learned"     # "learned" | "curriculum" | "fixed"
    alpha_end: float = 0.5          # curriculum end value / fixed value
    side: dict | None = None        # the side network's arch (default: default_side_arch of the base)
    distill_steps: int = 300
    distill_lr: float = 3e-3
    steps: int = 300
    lr: float = 3e-3
    weight_decay: float = 1e-4
    source_weight: float = 0.5
    batch_size: int = 64


def build_side_tuned(base: nn.Module, cfg: SideConfig) -> SideTuned:
    """The combined module around a copy of ``base`` (weights copied, head initialised from the base's)."""
    base_arch = base.arch()
    side_arch = cfg.side or default_side_arch(base_arch)
    st = build_from_arch({"name": "side_tuned", "n_features": base_arch["n_features"], "n_time": base_arch["n_time"],
                          "n_outputs": base_arch["n_outputs"],
                          "hp": {"base": base_arch, "side": side_arch, "alpha_mode": cfg.alpha_mode}})
    st.base.load_state_dict(base.state_dict())
    st.head.load_state_dict(base.head.state_dict())
    st.side.set_input_stats(base.input_mean, base.input_std)
    st.input_mean.copy_(base.input_mean)
    st.input_std.copy_(base.input_std)
    with torch.no_grad():
        st.alpha_value.fill_(1.0 if cfg.alpha_mode == "curriculum" else cfg.alpha_end)
    for p in st.base.parameters():
        p.requires_grad_(False)
    return st


def distil_side(st: SideTuned, x: np.ndarray, cfg: SideConfig, rng: np.random.Generator) -> list[float]:
    """Train ``st.side`` to reproduce ``st.base.embed`` on windows ``x`` (no labels); returns losses."""
    stream = BatchStream(x, None, cfg.batch_size, rng)
    opt = torch.optim.AdamW(st.side.parameters(), lr=cfg.distill_lr, weight_decay=cfg.weight_decay)
    st.train()
    losses = []
    for step in range(cfg.distill_steps):
        xb, _ = stream.next()
        with torch.no_grad():
            teacher = st.base.embed(xb)
        loss = nn.functional.mse_loss(st.side.embed(xb), teacher)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 10 == 0 or step == cfg.distill_steps - 1:
            losses.append(float(loss.detach()))
    return losses


def adapt_side(model: nn.Module, data: AdaptData, cfg: SideConfig = SideConfig(), *, seed: int = 0) -> MethodResult:
    """Side-tune ``model`` on ``data``; returns the combined module (eval mode)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    if not data.has_labels:
        return MethodResult(copy.deepcopy(model).eval(), [],
                            notes=["no labelled target windows: the source model, unchanged"])
    st = build_side_tuned(model, cfg)
    unlabelled = np.concatenate([data.x_source, data.x_unlabelled, data.x_labelled])
    history: dict[str, list[float]] = {"distill_loss": distil_side(st, unlabelled, cfg, rng), "loss": [], "alpha": []}

    groups = [{"params": list(st.side.parameters()) + list(st.head.parameters()), "weight_decay": cfg.weight_decay}]
    if cfg.alpha_mode == "learned":
        groups.append({"params": [st.alpha_logit], "weight_decay": 0.0})
    else:
        st.alpha_logit.requires_grad_(False)
    opt = torch.optim.AdamW(groups, lr=cfg.lr)
    loss_fn = nn.CrossEntropyLoss()
    tgt = BatchStream(data.x_labelled, data.y_labelled, cfg.batch_size, rng)
    src = BatchStream(data.x_source, data.y_source, cfg.batch_size, rng)
    seen = seen_mask(torch.from_numpy(data.y_labelled), data.n_classes)
    st.train()
    for step in range(cfg.steps):
        if cfg.alpha_mode == "curriculum":
            with torch.no_grad():
                st.alpha_value.fill_(1.0 + (cfg.alpha_end - 1.0) * progress(step, cfg.steps))
        xt, yt = tgt.next()
        loss = seen_class_cross_entropy(st(xt), yt, seen)
        if cfg.source_weight > 0:
            xs, ys = src.next()
            loss = loss + cfg.source_weight * loss_fn(st(xs), ys)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 10 == 0 or step == cfg.steps - 1:
            history["loss"].append(float(loss.detach()))
            history["alpha"].append(float(st.alpha().detach()))
    st.alpha_logit.requires_grad_(True)
    trainable = sorted([f"side.{n}" for n, _ in st.side.named_parameters()]
                       + [f"head.{n}" for n, _ in st.head.named_parameters()]
                       + (["alpha_logit"] if cfg.alpha_mode == "learned" else []))
    return MethodResult(st.eval(), trainable, history,
                        notes=[f"alpha = {float(st.alpha().detach()):.3f} ({cfg.alpha_mode})"])
