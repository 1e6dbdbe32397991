"""FC fine-tuning (Sheng et al., IEEE IoT-J 2020): freeze the conv and recurrent layers, train the head.

The body (every layer up to the embedding) stays exactly the base's, in eval mode (BatchNorm keeps the
base's statistics), so the adapted model shares the base's embedding: the per-site artefact is the head
alone, and the result is directly comparable with the numpy head the gateway fits on the same windows
(``edgecsi.edge.calibration``).

    layers="head"  only ``model.head`` (embeddings are computed once; training takes milliseconds)
    layers="fc"    ``head`` plus every ``nn.Linear`` registered after the last conv / recurrent layer
                   (``activity_cnn``'s ``fc``; an ``mlp``'s whole stack, which has no conv layer)

Loss: CE on the labelled target windows (over the classes they show: ``seen_ce``) + ``source_weight``
x CE on a source batch. Both keep the classes the site did not label (an ESP32-S2 sequence shows 6 of
the 10 classes) from being forgotten; ``source_weight=0`` is plain fine-tuning on the site's windows.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgecsi.training.adapt.batches import BatchStream, embeddings
from edgecsi.training.adapt.method import MethodResult
from edgecsi.training.adapt.seen_ce import seen_class_cross_entropy, seen_mask
from edgecsi.training.adapt.target import AdaptData


@dataclass
class FCConfig:
    layers: str = "head"          # "head" | "fc"
    steps: int = 300
    lr: float = 1e-2
    weight_decay: float = 1e-4
    source_weight: float = 0.5
    batch_size: int = 64


def fc_parameters(model: nn.Module, layers: str) -> dict[str, nn.Parameter]:
    """Name -> parameter of what ``layers`` trains (see the module docstring)."""
    if layers == "head":
        return {f"head.{n}": p for n, p in model.head.named_parameters()}
    if layers != "fc":
        raise ValueError(f"layers must be 'head' or 'fc', not {layers!r}")
    frozen_kinds = (nn.Conv1d, nn.LSTM, nn.GRU, nn.RNN)
    modules = list(model.named_modules())
    last_frozen = max((i for i, (_, m) in enumerate(modules) if isinstance(m, frozen_kinds)), default=-1)
    names = {n for i, (n, m) in enumerate(modules) if i > last_frozen and isinstance(m, nn.Linear)}
    return {f"{mod}.{pn}": p for mod, m in modules if mod in names for pn, p in m.named_parameters()}


def adapt_fc(model: nn.Module, data: AdaptData, cfg: FCConfig = FCConfig(), *, seed: int = 0) -> MethodResult:
    """A copy of ``model`` whose head (or FC layers) is fine-tuned on ``data``; the body is untouched."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = copy.deepcopy(model).eval()
    if not data.has_labels:
        return MethodResult(net, [], notes=["no labelled target windows: the source model, unchanged"])
    params = fc_parameters(net, cfg.layers)
    for p in net.parameters():
        p.requires_grad_(False)
    for p in params.values():
        p.requires_grad_(True)
    opt = torch.optim.AdamW(list(params.values()), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    history: dict[str, list[float]] = {"loss": []}

    if cfg.layers == "head":
        # The body is frozen and deterministic in eval mode: embed every window once.
        forward = net.head
        tgt = BatchStream(embeddings(net, data.x_labelled).numpy(), data.y_labelled, cfg.batch_size, rng)
        src = BatchStream(embeddings(net, data.x_source).numpy(), data.y_source, cfg.batch_size, rng)
    else:
        forward = net
        tgt = BatchStream(data.x_labelled, data.y_labelled, cfg.batch_size, rng)
        src = BatchStream(data.x_source, data.y_source, cfg.batch_size, rng)
    seen = seen_mask(torch.from_numpy(data.y_labelled), data.n_classes)
    for step in range(cfg.steps):
        xt, yt = tgt.next()
        loss = seen_class_cross_entropy(forward(xt), yt, seen)
        if cfg.source_weight > 0:
            xs, ys = src.next()
            loss = loss + cfg.source_weight * loss_fn(forward(xs), ys)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 10 == 0 or step == cfg.steps - 1:
            history["loss"].append(float(loss.detach()))
    for p in net.parameters():
        p.requires_grad_(True)
    return MethodResult(net.eval(), sorted(params), history)
