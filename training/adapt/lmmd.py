"""LMMD subdomain alignment (DSAN, Zhu et al. 2020): unsupervised, target pseudo-labels, no target labels.

    loss = CE(source) + weight * lambda(p) * LMMD(z_s, z_t),   lambda(p) = 2 / (1 + exp(-10 p)) - 1

    LMMD = (1/C) sum_c [ sum_ij w_i^sc w_j^sc k(z_i^s, z_j^s) + sum_ij w_i^tc w_j^tc k(z_i^t, z_j^t)
                         - 2 sum_ij w_i^sc w_j^tc k(z_i^s, z_j^t) ]

w^sc: one-hot source labels normalised per class over the batch; w^tc: the model's softmax on the
target batch (detached) normalised the same way; C counts the classes present both among the source
labels and the target argmax (the one-hot uses ``n_classes``, not DSAN's hard-coded 31). Kernel: sum of
``kernel_num`` Gaussians, bandwidths ``base * kernel_mul**i`` centred on the mean pairwise squared
distance. Source and target batches have the same size. ``z`` is ``model.embed`` (the bottleneck).

Labelled target windows are optional (``use_labels``): when present they join every target batch with
their one-hot labels in place of predictions and add their CE (over the classes they show,
``seen_ce``) -- a semi-supervised variant; with none
(the default protocol, 0 per class) this is DSAN as published.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from edgecsi.training.adapt.batches import BatchStream, progress
from edgecsi.training.adapt.method import MethodResult
from edgecsi.training.adapt.seen_ce import seen_class_cross_entropy, seen_mask
from edgecsi.training.adapt.target import AdaptData


@dataclass
class LMMDConfig:
    weight: float = 0.5
    kernel_mul: float = 2.0
    kernel_num: int = 5
    use_labels: bool = True
    steps: int = 300
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 32


def gaussian_kernel(a: torch.Tensor, b: torch.Tensor, *, kernel_mul: float = 2.0, kernel_num: int = 5) -> torch.Tensor:
    """Sum of ``kernel_num`` Gaussian kernels over the rows of [a; b] -> [na+nb, na+nb]."""
    total = torch.cat([a, b])
    d2 = torch.cdist(total, total).pow(2)
    n = len(total)
    bandwidth = d2.detach().sum() / max(1, n * n - n)
    bandwidth = bandwidth / (kernel_mul ** (kernel_num // 2))
    bandwidth = torch.clamp(bandwidth, min=1e-8)
    return sum(torch.exp(-d2 / (bandwidth * kernel_mul ** i)) for i in range(kernel_num))


def lmmd(zs: torch.Tensor, ys: torch.Tensor, zt: torch.Tensor, pt: torch.Tensor, n_classes: int, *,
         kernel_mul: float = 2.0, kernel_num: int = 5) -> torch.Tensor:
    """Local MMD between source embeddings ``zs`` (labels ``ys``) and target ``zt`` (class weights ``pt``).

    ``pt[nt, n_classes]``: softmax predictions (or one-hot labels) for the target rows; no gradient flows
    through the weights.
    """
    ns = len(zs)
    s_onehot = nn.functional.one_hot(ys, n_classes).float()
    pt = pt.detach().float()
    s_sum = s_onehot.sum(0, keepdim=True)
    t_sum = pt.sum(0, keepdim=True)
    ws = s_onehot / torch.where(s_sum > 0, s_sum, torch.ones_like(s_sum))
    wt = pt / torch.where(t_sum > 0, t_sum, torch.ones_like(t_sum))
    t_present = nn.functional.one_hot(pt.argmax(1), n_classes).sum(0) > 0
    present = (s_sum[0] > 0) & t_present
    count = int(present.sum())
    if count == 0:
        return zs.sum() * 0.0
    mask = present.float()
    ws, wt = ws * mask, wt * mask
    w_ss = ws @ ws.T / count
    w_tt = wt @ wt.T / count
    w_st = ws @ wt.T / count
    k = gaussian_kernel(zs, zt, kernel_mul=kernel_mul, kernel_num=kernel_num)
    return (w_ss * k[:ns, :ns]).sum() + (w_tt * k[ns:, ns:]).sum() - 2 * (w_st * k[:ns, ns:]).sum()


def dsan_lambda(p: float) -> float:
    return 2.0 / (1.0 + math.exp(-10.0 * p)) - 1.0


def adapt_lmmd(model: nn.Module, data: AdaptData, cfg: LMMDConfig = LMMDConfig(), *, seed: int = 0) -> MethodResult:
    """A copy of ``model`` trained with CE + LMMD (every parameter)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    net = copy.deepcopy(model)
    if len(data.x_unlabelled) == 0:
        return MethodResult(net.eval(), [], notes=["no unlabelled target windows: the source model, unchanged"])
    use_labels = cfg.use_labels and data.has_labels
    # Target batch = unlabelled + (at most half) labelled windows, the same size as the source batch.
    n_lab = min(len(data.y_labelled), cfg.batch_size // 2) if use_labels else 0
    src = BatchStream(data.x_source, data.y_source, cfg.batch_size, rng)
    unl = BatchStream(data.x_unlabelled, None, cfg.batch_size - n_lab, rng)
    lab = BatchStream(data.x_labelled, data.y_labelled, n_lab, rng) if use_labels else None
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    loss_fn = nn.CrossEntropyLoss()
    history: dict[str, list[float]] = {"ce": [], "lmmd": []}
    seen = seen_mask(torch.from_numpy(data.y_labelled), data.n_classes) if use_labels else None
    net.train()
    for step in range(cfg.steps):
        xs, ys = src.next()
        xu, _ = unl.next()
        parts = [xs, xu]
        if lab is not None:
            xl, yl = lab.next()
            parts.append(xl)
        z = net.embed(torch.cat(parts))
        zs, zt = z[: len(xs)], z[len(xs):]
        logits_t = net.head(zt)
        pt = torch.softmax(logits_t, dim=1).detach()
        ce = loss_fn(net.head(zs), ys)
        if lab is not None:
            pt[len(xu):] = nn.functional.one_hot(yl, data.n_classes).float()
            ce = ce + seen_class_cross_entropy(logits_t[len(xu):], yl, seen)
        align = lmmd(zs, ys, zt, pt, data.n_classes, kernel_mul=cfg.kernel_mul, kernel_num=cfg.kernel_num)
        loss = ce + cfg.weight * dsan_lambda(progress(step, cfg.steps)) * align
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 10 == 0 or step == cfg.steps - 1:
            history["ce"].append(float(ce.detach()))
            history["lmmd"].append(float(align.detach()))
    notes = [] if not data.has_labels else [f"labelled target windows {'used' if use_labels else 'ignored'}"]
    return MethodResult(net.eval(), sorted(n for n, _ in net.named_parameters()), history, notes)
