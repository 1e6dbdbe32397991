"""Semantic alignment with a few labelled target windows (AdapLoc; CCSA, Motiian et al. ICCV 2017).

One shared embedding g (``model.embed``) and head h, trained from the base's weights on

    L = (1 - alpha) * CE(h(g(x_s)), y_s)
        + alpha * mean over pairs [ y_c * d^2 + (1 - y_c) * max(0, m - d)^2 ],   d = ||g(x_s) - g(x_t)||_2

over pairs of a source window and a labelled target window, y_c = 1 when they share a label. Each step
pairs a source batch with the labelled target windows; negative pairs are capped at ``neg_per_pos``
times the positives (random subset). Defaults are CCSA's: m = 1, alpha = 0.25, 3 negatives per positive.

``target_weight`` (default 0, i.e. CCSA's loss as published) adds CE on the labelled target windows
(over the classes they show, ``seen_ce``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgecsi.training.adapt.batches import BatchStream
from edgecsi.training.adapt.method import MethodResult
from edgecsi.training.adapt.seen_ce import seen_class_cross_entropy, seen_mask
from edgecsi.training.adapt.target import AdaptData


@dataclass
class CCSAConfig:
    alpha: float = 0.25
    margin: float = 1.0
    neg_per_pos: int = 3
    target_weight: float = 0.0
    steps: int = 300
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 64


def contrastive_alignment(zs: torch.Tensor, ys: torch.Tensor, zt: torch.Tensor, yt: torch.Tensor, *,
                          margin: float, neg_per_pos: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """CCSA's semantic alignment + separation loss over all (source, target) pairs of two batches.

    zs[ns, d], zt[nt, d] embeddings; ys[ns], yt[nt] labels. Negatives are capped at
    ``neg_per_pos * max(1, positives)`` by a random subset.
    """
    d = torch.cdist(zs, zt)                                  # [ns, nt]
    same = ys[:, None] == yt[None, :]
    pos = d[same]
    neg = d[~same]
    cap = neg_per_pos * max(1, int(pos.numel()))
    if neg.numel() > cap:
        neg = neg[torch.randperm(neg.numel(), generator=generator)[:cap]]
    terms = torch.cat([pos.pow(2), torch.clamp(margin - neg, min=0).pow(2)])
    return terms.mean() if terms.numel() else zs.sum() * 0.0


def adapt_ccsa(model: nn.Module, data: AdaptData, cfg: CCSAConfig = CCSAConfig(), *, seed: int = 0) -> MethodResult:
    """A copy of ``model`` trained with CCSA's loss (every parameter)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = copy.deepcopy(model)
    if not data.has_labels:
        return MethodResult(net.eval(), [], notes=["no labelled target windows: the source model, unchanged"])
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    src = BatchStream(data.x_source, data.y_source, cfg.batch_size, rng)
    tgt = BatchStream(data.x_labelled, data.y_labelled, cfg.batch_size, rng)
    history: dict[str, list[float]] = {"ce": [], "alignment": []}
    seen = seen_mask(torch.from_numpy(data.y_labelled), data.n_classes)
    net.train()
    for step in range(cfg.steps):
        xs, ys = src.next()
        xt, yt = tgt.next()
        z = net.embed(torch.cat([xs, xt]))                    # one pass: BatchNorm sees both domains
        zs, zt = z[: len(xs)], z[len(xs):]
        ce = loss_fn(net.head(zs), ys)
        align = contrastive_alignment(zs, ys, zt, yt, margin=cfg.margin, neg_per_pos=cfg.neg_per_pos, generator=gen)
        loss = (1 - cfg.alpha) * ce + cfg.alpha * align
        if cfg.target_weight > 0:
            loss = loss + cfg.target_weight * seen_class_cross_entropy(net.head(zt), yt, seen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 10 == 0 or step == cfg.steps - 1:
            history["ce"].append(float(ce.detach()))
            history["alignment"].append(float(align.detach()))
    return MethodResult(net.eval(), sorted(n for n, _ in net.named_parameters()), history)
