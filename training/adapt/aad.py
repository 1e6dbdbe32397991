"""Adversarial adaptation with distillation (AAD: ADDA + knowledge distillation; Ryu & Lee 2020).

Stage 1 is the base run: source encoder E_s (``model.embed``) and classifier C (``model.head``).
Stage 2 (here): E_s and C frozen; the target encoder E_t starts as a copy of E_s; a discriminator D
(MLP with LeakyReLU, sigmoid output) learns to tell E_t's source embeddings (1) from its target
embeddings (0), and E_t learns

    alpha * BCE(D(E_t(x_t)), 1) + beta * T^2 * KL( softmax(C(E_s(x_s))/T) || softmax(C(E_t(x_s))/T) )

(fool D on target windows; stay close to the source model on source windows). Gradients clipped to
``clip``. Inference: C(E_t(x)) -- the same architecture as the base, with E_t's weights.

Defaults from shared/specs/methods.md (alpha = beta = 1, T = 20, clip 1) except the learning rate:
the paper's Adam 1e-5 is for fine-tuning BERT; the small CNNs here barely move at 1e-5 in a few
hundred steps, so ``lr`` defaults to 1e-4 (pass ``lr=1e-5`` for the paper's value).

Labelled target windows are optional: with ``target_weight > 0`` and labels present, E_t also gets
CE(C(E_t(x_l)), y_l) over the classes they show (``seen_ce``; a semi-supervised variant; with none it
is AAD as published).
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
class AADConfig:
    alpha: float = 1.0
    beta: float = 1.0
    temperature: float = 20.0
    clip: float = 1.0
    target_weight: float = 1.0
    disc_hidden: int = 64
    steps: int = 300
    lr: float = 1e-4
    disc_lr: float = 1e-4
    batch_size: int = 64


def discriminator(embed_dim: int, hidden: int) -> nn.Sequential:
    """D: embedding -> probability that it came from the source domain."""
    return nn.Sequential(nn.Linear(embed_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                         nn.LeakyReLU(0.2), nn.Linear(hidden, 1), nn.Sigmoid())


def distillation(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher/T) || softmax(student/T)), batch mean."""
    t = temperature
    return nn.functional.kl_div(torch.log_softmax(student_logits / t, dim=1),
                                torch.softmax(teacher_logits.detach() / t, dim=1), reduction="batchmean") * t * t


def adapt_aad(model: nn.Module, data: AdaptData, cfg: AADConfig = AADConfig(), *, seed: int = 0) -> MethodResult:
    """E_t (a copy of the base's body) trained adversarially with distillation; C stays the base's head."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    source_model = copy.deepcopy(model).eval()          # E_s and C, frozen
    net = copy.deepcopy(model)                          # E_t (+ C, frozen)
    if len(data.x_unlabelled) == 0:
        return MethodResult(net.eval(), [], notes=["no unlabelled target windows: the source model, unchanged"])
    for p in list(source_model.parameters()) + list(net.head.parameters()):
        p.requires_grad_(False)
    body = [p for n, p in net.named_parameters() if not n.startswith("head.")]
    disc = discriminator(net.embed_dim, cfg.disc_hidden)
    opt_t = torch.optim.Adam(body, lr=cfg.lr)
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.disc_lr)
    bce = nn.BCELoss()
    src = BatchStream(data.x_source, data.y_source, cfg.batch_size, rng)
    unl = BatchStream(data.x_unlabelled, None, cfg.batch_size, rng)
    use_labels = cfg.target_weight > 0 and data.has_labels
    lab = BatchStream(data.x_labelled, data.y_labelled, cfg.batch_size, rng) if use_labels else None
    history: dict[str, list[float]] = {"d_loss": [], "g_loss": [], "kd_loss": [], "d_acc": []}
    seen = seen_mask(torch.from_numpy(data.y_labelled), data.n_classes) if use_labels else None
    net.train()
    for step in range(cfg.steps):
        xs, _ = src.next()
        xt, _ = unl.next()
        # 1. discriminator: E_t(x_s) -> 1, E_t(x_t) -> 0
        zs_t = net.embed(xs)
        zt = net.embed(xt)
        pred = disc(torch.cat([zs_t, zt]).detach()).squeeze(1)
        label = torch.cat([torch.ones(len(xs)), torch.zeros(len(xt))])
        d_loss = bce(pred, label)
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        # 2. target encoder: fool D on target windows, distil the source model on source windows
        with torch.no_grad():
            teacher = source_model(xs)
        g_loss = bce(disc(zt).squeeze(1), torch.ones(len(xt)))
        kd = distillation(teacher, net.head(zs_t), cfg.temperature)
        loss = cfg.alpha * g_loss + cfg.beta * kd
        if lab is not None:
            xl, yl = lab.next()
            loss = loss + cfg.target_weight * seen_class_cross_entropy(net(xl), yl, seen)
        opt_t.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(body, cfg.clip)
        opt_t.step()
        if step % 10 == 0 or step == cfg.steps - 1:
            history["d_loss"].append(float(d_loss.detach()))
            history["g_loss"].append(float(g_loss.detach()))
            history["kd_loss"].append(float(kd.detach()))
            history["d_acc"].append(float(((pred > 0.5).float() == label).float().mean()))
    for p in net.head.parameters():
        p.requires_grad_(True)
    notes = [] if not data.has_labels else [f"labelled target windows {'used' if use_labels else 'ignored'}"]
    return MethodResult(net.eval(), sorted(n for n, _ in net.named_parameters() if not n.startswith("head.")),
                        history, notes)
