"""Bi-directional cross-domain generation for site adaptation (after Yang et al., "Bi-Directional Generation
for Unsupervised Domain Adaptation", AAAI 2020): no target labels needed.

Two translators bridge the domains in both directions, two task-specific classifiers read them:

    G_st: source window -> as the target site would record it      D_t: real target vs G_st(x_s)
    G_ts: target window -> as the source site would record it      D_s: real source vs G_ts(x_t)
    C_s   source classifier  (starts as the base model)            C_t  target classifier (starts as the base)

    critics    hinge loss, real vs translated
    G_st, G_ts fool the critics  +  cycle * (|G_ts(G_st(x_s)) - x_s| + |G_st(G_ts(x_t)) - x_t|)   (standardised L1)
    C_s        CE(C_s(x_s), y_s)
    C_t        semantic * CE(C_t(G_st(x_s)), y_s)                translated source windows keep their labels
               + source * CE(C_t(x_s), y_s)                       and so do the originals
    both       consistency * |softmax C_t(x_t) - softmax C_s(G_ts(x_t))|_1   the two views of a target window agree
    C_t        pseudo * CE(C_t(x_t), c) on target windows where both views agree on c with mean confidence
               >= ``pseudo_threshold`` (after ``warmup`` steps)
    C_t        CE on labelled target windows, when the site has any (optional; 0 labels = the published setting)

Everything is trained jointly with one backward pass per step (critics have their own step). The adapted
model is C_t: the base architecture with new weights, run on raw target windows, so ``load_run`` /
``export_run`` take it unchanged. Translators and critics are training aids and are not saved.

Differences from the paper, kept small: a 1-D CSI window replaces the image, the translators are residual
convolution stacks that start as the identity, classifiers are copies of the base model (no separate
feature extractor), C_t also sees the untranslated source windows (measured: without them C_t fell behind
simply training on the source for as long), and the pseudo-label rule is agreement of the two views above
a confidence threshold.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from edgecsi.training.generative.translator import DomainCritic, Translator

if TYPE_CHECKING:   # the adapt package imports this module to register it: no import of it at load time
    from edgecsi.training.adapt.method import MethodResult
    from edgecsi.training.adapt.target import AdaptData


@dataclass
class BidirectionalConfig:
    steps: int = 300
    batch_size: int = 32
    lr: float = 5e-4              # classifiers
    lr_gen: float = 2e-4          # translators
    lr_critic: float = 2e-4
    cycle: float = 10.0
    semantic: float = 1.0
    source: float = 1.0
    consistency: float = 1.0
    pseudo: float = 1.0
    pseudo_threshold: float = 0.9
    warmup: int = 50
    channels: int = 32
    weight_decay: float = 1e-4


def _stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    flat = np.asarray(x, np.float64).reshape(-1, x.shape[2])
    return flat.mean(0), np.maximum(flat.std(0), 1e-6)


def level_gap(a: np.ndarray, b: np.ndarray, std: np.ndarray) -> float:
    """RMS over features of the difference of the per-feature means of two window sets, in units of ``std``:
    the first-order gap between two sites (a different static channel per subcarrier)."""
    d = (np.asarray(a, np.float64).mean(axis=(0, 1)) - np.asarray(b, np.float64).mean(axis=(0, 1))) / std
    return float(np.sqrt((d ** 2).mean()))


def _translate(g: Translator, x: np.ndarray, batch: int = 512) -> np.ndarray:
    g.eval()
    with torch.inference_mode():
        return np.concatenate([g(torch.from_numpy(np.ascontiguousarray(x[i:i + batch], np.float32))).numpy()
                               for i in range(0, len(x), batch)])


def adapt_bidirectional(model: nn.Module, data: "AdaptData", cfg: BidirectionalConfig = BidirectionalConfig(), *,
                        seed: int = 0) -> "MethodResult":
    """C_t after bi-directional generation training (see the module docstring); ``model`` is not changed."""
    from edgecsi.training.adapt.batches import BatchStream
    from edgecsi.training.adapt.method import MethodResult

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    c_t = copy.deepcopy(model)
    if len(data.x_unlabelled) == 0:
        return MethodResult(c_t.eval(), [], notes=["no unlabelled target windows: the source model, unchanged"])
    c_s = copy.deepcopy(model)
    n_feat = data.x_source.shape[2]
    # One standardisation for every translator and critic, from both domains pooled: standardising each
    # domain with its own statistics would hide from the critics the very per-subcarrier level shift
    # between sites that the translators should learn.
    mean, std = _stats(np.concatenate([data.x_source, data.x_unlabelled]))
    g_st, g_ts = Translator(n_feat, channels=cfg.channels), Translator(n_feat, channels=cfg.channels)
    d_s, d_t = DomainCritic(n_feat, channels=cfg.channels), DomainCritic(n_feat, channels=cfg.channels)
    for m in (g_st, g_ts, d_s, d_t):
        m.set_input_stats(mean, std)
    scale_s = scale_t = torch.as_tensor(std, dtype=torch.float32)

    opt_cls = torch.optim.AdamW(list(c_t.parameters()) + list(c_s.parameters()), lr=cfg.lr,
                                weight_decay=cfg.weight_decay)
    opt_gen = torch.optim.Adam(list(g_st.parameters()) + list(g_ts.parameters()), lr=cfg.lr_gen, betas=(0.5, 0.999))
    opt_crit = torch.optim.Adam(list(d_s.parameters()) + list(d_t.parameters()), lr=cfg.lr_critic, betas=(0.5, 0.999))

    bs = cfg.batch_size
    src = BatchStream(data.x_source, data.y_source, bs, rng)
    unl = BatchStream(data.x_unlabelled, None, bs, rng)
    lab = BatchStream(data.x_labelled, data.y_labelled, bs, rng) if data.has_labels else None
    history: dict[str, list[float]] = {"step": [], "critic": [], "adv": [], "cycle": [], "ce_s": [], "ce_t": [],
                                       "consistency": [], "pseudo": [], "pseudo_fraction": []}
    for m in (c_t, c_s, g_st, g_ts, d_s, d_t):
        m.train()
    for step in range(cfg.steps):
        xs, ys = src.next()
        xt, _ = unl.next()
        # -- critics: real vs translated
        with torch.no_grad():
            fake_t, fake_s = g_st(xs), g_ts(xt)
        crit = (torch.relu(1 - d_t(xt)).mean() + torch.relu(1 + d_t(fake_t)).mean()
                + torch.relu(1 - d_s(xs)).mean() + torch.relu(1 + d_s(fake_s)).mean())
        opt_crit.zero_grad(set_to_none=True)
        crit.backward()
        opt_crit.step()
        # -- translators and classifiers, one backward
        fake_t, fake_s = g_st(xs), g_ts(xt)
        adv = -d_t(fake_t).mean() - d_s(fake_s).mean()
        cyc = ((g_ts(fake_t) - xs).abs() / scale_s).mean() + ((g_st(fake_s) - xt).abs() / scale_t).mean()
        logits_s = c_s(torch.cat([xs, fake_s]))              # one batch: BatchNorm sees both views
        ls_real, ls_fake = logits_s[:len(xs)], logits_s[len(xs):]
        n = len(xs)
        logits_t = c_t(torch.cat([xs, fake_t, xt]))
        lt_src, lt_fake, lt_real = logits_t[:n], logits_t[n:2 * n], logits_t[2 * n:]
        ce_s = F.cross_entropy(ls_real, ys)
        ce_t = cfg.semantic * F.cross_entropy(lt_fake, ys) + cfg.source * F.cross_entropy(lt_src, ys)
        p_t, p_s = torch.softmax(lt_real, 1), torch.softmax(ls_fake, 1)
        consistency = (p_t - p_s).abs().sum(1).mean()
        pseudo = torch.zeros(())
        fraction = 0.0
        if step >= cfg.warmup:
            with torch.no_grad():
                avg = (p_t + p_s) / 2
                conf, label = avg.max(1)
                keep = (p_t.argmax(1) == p_s.argmax(1)) & (conf >= cfg.pseudo_threshold)
                fraction = float(keep.float().mean())
            if keep.any():
                pseudo = F.cross_entropy(lt_real[keep], label[keep])
        loss = (adv + cfg.cycle * cyc + ce_s + ce_t + cfg.consistency * consistency
                + cfg.pseudo * pseudo)
        if lab is not None:
            xl, yl = lab.next()
            loss = loss + F.cross_entropy(c_t(xl), yl)
        opt_cls.zero_grad(set_to_none=True)
        opt_gen.zero_grad(set_to_none=True)
        loss.backward()
        opt_cls.step()
        opt_gen.step()
        if step % 10 == 0 or step == cfg.steps - 1:
            for key, value in (("step", step), ("critic", crit), ("adv", adv), ("cycle", cyc), ("ce_s", ce_s),
                               ("ce_t", ce_t), ("consistency", consistency), ("pseudo", pseudo),
                               ("pseudo_fraction", fraction)):
                history[key].append(float(value.detach()) if isinstance(value, torch.Tensor) else float(value))
    history["level_gap"] = [level_gap(data.x_source, data.x_unlabelled, std),
                            level_gap(_translate(g_st, data.x_source), data.x_unlabelled, std)]
    notes = ["C_t deployed; translators, critics and C_s were training aids (not saved)",
             f"per-subcarrier level gap source->target {history['level_gap'][0]:.3f}, "
             f"translated source->target {history['level_gap'][1]:.3f} (standardised RMS)"]
    if data.has_labels:
        notes.append(f"{len(data.y_labelled)} labelled target windows used (CE on C_t)")
    return MethodResult(c_t.eval(), sorted(n for n, _ in c_t.named_parameters()), history, notes)


def method():
    """The ``edgecsi.training.adapt.run.Method`` entry for ``--method bidirectional``."""
    from edgecsi.training.adapt.run import Method

    return Method("bidirectional", BidirectionalConfig, adapt_bidirectional, False,
                  "bi-directional cross-domain generation: two translators, two classifiers, target pseudo-labels")


def register() -> None:
    """Add ``bidirectional`` to ``edgecsi.training.adapt.METHODS`` (idempotent)."""
    from edgecsi.training.adapt.run import METHODS

    METHODS.setdefault("bidirectional", method())


__all__ = ["BidirectionalConfig", "adapt_bidirectional", "method", "register"]
