"""Unsupervised adversarial reconstruction (UNIR, Pajot et al., ICLR 2019) of corrupted CSI windows.

G learns to map corrupted measurements y to clean windows from corrupted windows ONLY, using the known
corruption model F_theta (``corruption.py``):

    x_hat   = G(y)
    y_tilde = F_theta'(x_hat)                       theta' fresh from the corruption sampler
    D loss  = E relu(1 - D(y)) + E relu(1 + D(y_tilde))                       (hinge)
    G loss  = -E D(y_tilde) + lambda * || F_theta(G(y_tilde)) - y ||_1         (per-feature standardised)

If G's windows were the clean ones, re-measuring them would give measurements distributed like the real
ones, so D cannot tell them apart. The reconstruction term (the public code's form) re-measures G's output,
repairs it again and compares with what y really observed: entries that theta' hid but y holds must be
predicted from the rest -- the term that teaches G to fill. theta's masks are read from y
(``observed_mask``); its AGC gains are not known, so the comparison is made in levelled units, against
G's own levelled y (the observed entries of x_hat, held fixed): ``obs_y * (G(y_tilde) - stop_grad(x_hat))``.

Config (shared/specs/methods.md): lambda = 1, Adam G 4e-5 / D 1e-5, betas (0, 0.99), batch 64, hinge loss,
one D step per G step. Measured here (``benchmarks/generative.py``, ESP32-S2): with lambda = 1 the larger
learning rates we tried (1e-4, 1e-3) let the adversarial term pull G away from its classical start and the
error rose; with the paper's rates G improves on its start for ~100-200 steps, then the game drifts and
jumps (D stays near chance). Hence a held-out checkpoint choice (below) and 300 steps by default.

    result = train_unir(y_train, CorruptionConfig(), UNIRConfig(steps=300))
    x_hat = repair(result.model, y_test)
    save_repair(result, "runs/repair");  model, config = load_repair("runs/repair")
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgecsi.training.generative.corruption import CorruptionConfig, CorruptionModel, observed_mask, observed_mask_np
from edgecsi.training.generative.repair_net import RepairCritic, RepairNet

REPAIR_FORMAT = "edgecsi-repair/1"


@dataclass
class UNIRConfig:
    lam: float = 1.0
    lr_g: float = 4e-5
    lr_d: float = 1e-5
    betas: tuple[float, float] = (0.0, 0.99)
    batch_size: int = 64
    steps: int = 300
    channels: int = 32
    critic_channels: int = 32
    dilations: tuple[int, ...] = (1, 2, 4, 8)
    val_fraction: float = 0.1     # measurements held out for checkpoint selection (0: keep the last G)
    eval_every: int = 25


@dataclass
class UNIRResult:
    model: RepairNet
    corruption: CorruptionConfig
    config: UNIRConfig
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0
    n_windows: int = 0


def observed_stats(y: np.ndarray, iq: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std over the OBSERVED entries of measurements ``y[w, t, f]`` (no clean data)."""
    obs = observed_mask_np(y, iq)
    count = np.maximum(obs.sum(axis=(0, 1)), 1)
    mean = (y * obs).sum(axis=(0, 1), dtype=np.float64) / count
    var = (((y - mean) * obs) ** 2).sum(axis=(0, 1), dtype=np.float64) / count
    return mean, np.maximum(np.sqrt(var), 1e-6)


def train_unir(y: np.ndarray, corruption: CorruptionConfig, cfg: UNIRConfig = UNIRConfig(), *, seed: int = 0,
               monitor: tuple[np.ndarray, np.ndarray] | None = None, monitor_every: int = 50,
               threads: int | None = None) -> UNIRResult:
    """Train G on measurements ``y[w, t, f]`` (missing entries 0) corrupted by ``corruption``.

    monitor  optional (y_check, x_clean) pair: the relative error of G(y_check) against x_clean is logged
             every ``monitor_every`` steps under history["monitor_rel_err"] -- for reports only, never in a loss
             or a decision.

    Checkpoint selection without clean data: ``cfg.val_fraction`` of the measurements are held out, and every
    ``cfg.eval_every`` steps G's reconstruction term on them (fixed theta' draws) is computed; the G with the
    lowest value is returned (the untrained G, step 0, is a candidate). Adversarial training here does not
    settle: it drifts and jumps (measured in benchmarks/generative.py), and this held-out term rises with it.
    """
    started = time.time()
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    y = np.ascontiguousarray(y, np.float32)
    rng = np.random.default_rng(seed)
    n_val = int(round(cfg.val_fraction * len(y))) if len(y) >= 20 else 0
    perm = rng.permutation(len(y))
    y_val, y = y[np.sort(perm[:n_val])], y[np.sort(perm[n_val:])]
    n, _, n_feat = y.shape
    fwd = CorruptionModel(corruption, n_feat)
    mean, std = observed_stats(y, corruption.iq)
    G = RepairNet(n_feat, channels=cfg.channels, dilations=tuple(cfg.dilations), iq=corruption.iq)
    D = RepairCritic(n_feat, channels=cfg.critic_channels)
    G.set_input_stats(mean, std)
    D.input_mean.copy_(G.input_mean)
    D.input_std.copy_(G.input_std)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=tuple(cfg.betas))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=tuple(cfg.betas))
    yt = torch.from_numpy(y)
    scale = G.input_std
    history: dict[str, list[float]] = {"step": [], "d_loss": [], "g_adv": [], "rec": [], "val_step": [],
                                       "val_rec": []}
    if monitor is not None:
        history["monitor_step"], history["monitor_rel_err"] = [], []
    val = None
    if n_val:
        yv = torch.from_numpy(y_val)
        vgen = torch.Generator().manual_seed(seed + 2)
        val = (yv, [fwd.sample(len(yv), yv.shape[1], vgen) for _ in range(2)])
    best = (math.inf, -1, None)
    order = np.zeros(0, np.int64)
    bs = min(cfg.batch_size, n)
    for step in range(cfg.steps + 1):
        if val is not None and (step % cfg.eval_every == 0 or step == cfg.steps):
            score = held_out_rec(G, fwd, val[0], val[1], scale, corruption.iq)
            history["val_step"].append(step)
            history["val_rec"].append(score)
            if score < best[0]:
                best = (score, step, {k: v.detach().clone() for k, v in G.state_dict().items()})
        if step == cfg.steps:
            break
        if len(order) < bs:
            order = np.concatenate([order, rng.permutation(n)])
        b, order = torch.from_numpy(order[:bs]), order[bs:]
        yb = yt[b]
        # -- D: real measurements vs re-measured repairs
        G.train()
        with torch.no_grad():
            y_fake, _ = fwd(G(yb), gen)
        d_loss = torch.relu(1 - D(yb)).mean() + torch.relu(1 + D(y_fake)).mean()
        opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        opt_d.step()
        # -- G: fool D, and invert a measurement whose theta we know
        x_hat = G(yb)
        theta = fwd.sample(bs, yb.shape[1], gen)
        y_tilde = fwd.apply(x_hat, theta)
        g_adv = -D(y_tilde).mean()
        obs = observed_mask(yb, corruption.iq)
        rec = ((obs * (G(y_tilde) - x_hat.detach())).abs() / scale).sum() / obs.sum().clamp_min(1.0)
        g_loss = g_adv + cfg.lam * rec
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        if step % 10 == 0 or step == cfg.steps - 1:
            history["step"].append(step)
            history["d_loss"].append(float(d_loss.detach()))
            history["g_adv"].append(float(g_adv.detach()))
            history["rec"].append(float(rec.detach()))
        if monitor is not None and (step % monitor_every == 0 or step == cfg.steps - 1):
            history["monitor_step"].append(step)
            history["monitor_rel_err"].append(relative_error(repair(G, monitor[0]), monitor[1]))
    if best[2] is not None:
        G.load_state_dict(best[2])
    history["best_step"] = [best[1]]
    G.eval()
    return UNIRResult(G, corruption, cfg, history, time.time() - started, n + n_val)


@torch.no_grad()
def held_out_rec(G: RepairNet, fwd: CorruptionModel, y: torch.Tensor, thetas: list, scale: torch.Tensor,
                 iq: bool) -> float:
    """The G loss's reconstruction term on held-out measurements ``y`` with fixed theta' draws (eval mode)."""
    was_training = G.training
    G.eval()
    obs = observed_mask(y, iq)
    x_hat = G(y)
    total = 0.0
    for theta in thetas:
        y_tilde = fwd.apply(x_hat, theta)
        total += float(((obs * (G(y_tilde) - x_hat)).abs() / scale).sum() / obs.sum().clamp_min(1.0))
    G.train(was_training)
    return total / len(thetas)


def repair(model: RepairNet, y: np.ndarray, *, batch: int = 1024) -> np.ndarray:
    """``G(y)`` for measurements ``y[w, t, f]`` in eval mode, in chunks -> float32[w, t, f]."""
    model.eval()
    outs = []
    with torch.inference_mode():
        for i in range(0, len(y), batch):
            outs.append(model(torch.from_numpy(np.ascontiguousarray(y[i:i + batch], np.float32))).numpy())
    return np.concatenate(outs) if outs else np.zeros_like(y, np.float32)


def relative_error(x_hat: np.ndarray, x: np.ndarray, mask: np.ndarray | None = None) -> float:
    """``||x_hat - x|| / ||x - mean_f(x)||`` over the selected entries (1 = as bad as the per-feature mean)."""
    x = np.asarray(x, np.float64)
    centred = x - x.mean(axis=(0, 1))
    diff = np.asarray(x_hat, np.float64) - x
    if mask is not None:
        diff, centred = diff[mask], centred[mask]
    return float(np.sqrt((diff ** 2).sum() / max((centred ** 2).sum(), 1e-12)))


# ---------------------------------------------------------------------------------------------
def save_repair(result: UNIRResult, out_dir: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
    """``out_dir/model.safetensors`` (G's state dict) + ``config.json`` (format edgecsi-repair/1)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in result.model.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": REPAIR_FORMAT})
    config = {
        "format": REPAIR_FORMAT,
        "model": result.model.arch(),
        "input": {"layout": "y[batch, time, feature] float32, missing entries 0",
                  "n_features": result.model.n_features},
        "output": {"layout": "x[batch, time, feature] float32, same units as the input"},
        "corruption": result.corruption.as_dict(),
        "training": {**asdict(result.config), "seconds": round(result.seconds, 2), "n_windows": result.n_windows,
                     "torch": torch.__version__, "method": "UNIR (Pajot et al. 2019), hinge loss"},
        **(extra or {}),
    }
    (out / "config.json").write_text(json.dumps(config, indent=2, default=_plain))
    (out / "history.json").write_text(json.dumps(result.history, indent=2))
    return out


def load_repair(run_dir: str | Path) -> tuple[RepairNet, dict]:
    """The repair model (eval mode) and config of a directory written by ``save_repair``."""
    from safetensors.torch import load_file

    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    if config.get("format") != REPAIR_FORMAT:
        raise ValueError(f"{run_dir / 'config.json'}: not a repair model (format {config.get('format')!r})")
    model = RepairNet.from_arch(config["model"])
    model.load_state_dict(load_file(str(run_dir / "model.safetensors")), strict=True)
    return model.eval(), config


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


__all__ = ["UNIRConfig", "UNIRResult", "train_unir", "repair", "relative_error", "observed_stats",
           "save_repair", "load_repair", "REPAIR_FORMAT"]
