"""Adversarial autoencoder (Makhzani et al. 2015) for CSI windows: a code matched to a prior by a critic.

    q(z|x) = Encoder(x)          x[batch, time, feature] raw (standardised inside) -> z[batch, latent]
    x_rec  = Decoder(z [, y])    z (and, when conditional, a one-hot class y) -> x[batch, time, feature]
    C(z)                         latent critic: prior sample (1) or code of a real window (0)

Each step: (1) reconstruction, MSE in standardised units, encoder + decoder; (2) critic, BCE on prior
samples vs codes; (3) regularisation, the encoder learns to make its codes pass for prior samples (BCE,
weight ``adv_weight``; 0 gives a plain autoencoder, the ablation). Prior: N(0, I), or with ``prior_modes`` = M
an equal mixture of M unit Gaussians centred at 4 * e_1 .. 4 * e_M (M <= latent; Makhzani's mixture
prior, which makes the codes form M blobs for k-means).

Three variants (Makhzani et al. sections 2, 5, 6):
- plain: z ~ N(0, I); ``encode`` is an unsupervised feature extractor (k-means on the codes).
- ``n_classes`` (supervised AAE): the label goes to the decoder, so z holds the style; ``sample`` ->
  labelled synthetic windows for augmentation.
- ``clusters`` = K (unsupervised clustering AAE): the encoder also outputs q(c|x), a softmax over K, matched
  by a second critic to one-hot samples of a uniform categorical prior; the decoder gets [q(c|x), z];
  ``assign`` = argmax q(c|x) is the cluster of a window.

Resampling follows the anti-aliasing rule: the encoder downsamples with ``BlurPool1d``, the decoder
upsamples with ``BlurUpsample1d``. Fixed window length (the code is a flattened feature map).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from edgecsi.training.models.blurpool import BlurPool1d, BlurUpsample1d


@dataclass
class AAEConfig:
    latent: int = 8
    channels: int = 32
    n_classes: int = 0          # > 0: supervised AAE (decoder gets the one-hot label)
    clusters: int = 0           # > 0: clustering AAE (categorical code with a uniform prior)
    prior_modes: int = 0        # > 0: z prior = equal mixture of this many unit Gaussians (means 4 * e_i)
    pool: str = "flatten"       # "flatten": code from the whole feature map; "mean": from its mean over time
    adv_weight: float = 1.0     # 0: plain autoencoder (no critic)
    steps: int = 600
    batch_size: int = 64
    lr: float = 1e-3
    lr_critic: float = 1e-3
    critic_hidden: int = 64


def coded_length(n_time: int) -> int:
    """Time length after the encoder's two stride-2 ``BlurPool1d``: ceil(ceil(t / 2) / 2)."""
    return math.ceil(math.ceil(n_time / 2) / 2)


class Encoder(nn.Module):
    """``pool="mean"`` makes the code (nearly) invariant to where in the window things happen -- the
    anti-aliased ``BlurPool1d`` downsampling is what keeps the time mean stable under shifts."""

    def __init__(self, n_features: int, n_time: int, latent: int, channels: int, clusters: int = 0,
                 pool: str = "flatten") -> None:
        super().__init__()
        if pool not in ("flatten", "mean"):
            raise ValueError(f"pool must be 'flatten' or 'mean', got {pool!r}")
        self.pool = pool
        c = channels
        self.body = nn.Sequential(
            nn.Conv1d(n_features, c, 5, padding=2), nn.ReLU(), BlurPool1d(c),
            nn.Conv1d(c, 2 * c, 5, padding=2), nn.ReLU(), BlurPool1d(2 * c),
            nn.Conv1d(2 * c, 2 * c, 3, padding=1), nn.ReLU(),
        )
        self.length = coded_length(n_time)
        width = 2 * c * (self.length if pool == "flatten" else 1)
        self.code = nn.Linear(width, latent)
        self.cluster = nn.Linear(width, clusters) if clusters else None

    def _features(self, z: torch.Tensor) -> torch.Tensor:
        h = self.body(z.transpose(1, 2))
        return h.flatten(1) if self.pool == "flatten" else h.mean(dim=2)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.code(self._features(z))

    def both(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(style code, cluster logits) -- clustering AAE."""
        h = self._features(z)
        return self.code(h), self.cluster(h)


class Decoder(nn.Module):
    def __init__(self, n_features: int, n_time: int, latent: int, channels: int, n_classes: int) -> None:
        super().__init__()
        c = channels
        self.n_time, self.c = n_time, c
        self.length = coded_length(n_time)
        self.inp = nn.Linear(latent + n_classes, 2 * c * self.length)
        self.body = nn.Sequential(
            BlurUpsample1d(2 * c), nn.Conv1d(2 * c, c, 5, padding=2), nn.ReLU(),
            BlurUpsample1d(c), nn.Conv1d(c, c, 5, padding=2), nn.ReLU(),
            nn.Conv1d(c, n_features, 1),
        )

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.inp(code)).reshape(-1, 2 * self.c, self.length)
        return self.body(h)[:, :, : self.n_time].transpose(1, 2)


class AAE(nn.Module):
    """Encoder, decoder and latent critic over windows ``x[batch, time, feature]`` (raw units in and out)."""

    def __init__(self, n_features: int, n_time: int, cfg: AAEConfig = AAEConfig()) -> None:
        super().__init__()
        self.n_features, self.n_time, self.cfg = int(n_features), int(n_time), cfg
        self.register_buffer("input_mean", torch.zeros(n_features))
        self.register_buffer("input_std", torch.ones(n_features))
        if cfg.clusters and cfg.n_classes:
            raise ValueError("an AAE is either conditional (n_classes) or clustering (clusters), not both")
        if cfg.prior_modes > cfg.latent:
            raise ValueError(f"prior_modes ({cfg.prior_modes}) must be <= latent ({cfg.latent})")
        self.encoder = Encoder(n_features, n_time, cfg.latent, cfg.channels, cfg.clusters, cfg.pool)
        self.decoder = Decoder(n_features, n_time, cfg.latent, cfg.channels, cfg.n_classes + cfg.clusters)
        self.critic = _critic(cfg.latent, cfg.critic_hidden)
        self.cluster_critic = _critic(cfg.clusters, cfg.critic_hidden) if cfg.clusters else None

    def set_input_stats(self, mean, std, *, eps: float = 1e-6) -> None:
        self.input_mean.copy_(torch.as_tensor(mean, dtype=torch.float32).reshape(self.n_features))
        self.input_std.copy_(torch.as_tensor(std, dtype=torch.float32).reshape(self.n_features).clamp_min(eps))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.input_mean) / self.input_std

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Raw ``x[batch, time, feature]`` -> code ``z[batch, latent]``."""
        return self.encoder(self.normalise(x))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Code (and class index when conditional) -> raw ``x[batch, time, feature]``."""
        return self.decoder(self._code(z, y)) * self.input_std + self.input_mean

    def _code(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        k = self.cfg.n_classes or self.cfg.clusters
        if k:
            if y is None:
                raise ValueError("a conditional or clustering AAE needs the class / cluster of every code")
            return torch.cat([z, F.one_hot(y, k).float()], dim=1)
        return z

    def cluster_probs(self, x: torch.Tensor) -> torch.Tensor:
        """q(c|x)[batch, clusters] of the clustering AAE."""
        if not self.cfg.clusters:
            raise ValueError("cluster_probs needs a clustering AAE (AAEConfig.clusters > 0)")
        return torch.softmax(self.encoder.both(self.normalise(x))[1], dim=1)


def _critic(n_in: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
                         nn.Linear(hidden, 1))


@dataclass
class AAEResult:
    model: AAE
    history: dict[str, list[float]] = field(default_factory=dict)
    seconds: float = 0.0


def train_aae(x: np.ndarray, cfg: AAEConfig = AAEConfig(), *, y: np.ndarray | None = None, seed: int = 0,
              threads: int | None = None) -> AAEResult:
    """Train an AAE on windows ``x[w, t, f]`` (labels ``y`` only for the conditional variant)."""
    started = time.time()
    if threads:
        torch.set_num_threads(threads)
    if cfg.n_classes and y is None:
        raise ValueError("AAEConfig.n_classes > 0 needs the labels y")
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = np.ascontiguousarray(x, np.float32)
    n, n_time, n_feat = x.shape
    model = AAE(n_feat, n_time, cfg)
    flat = x.reshape(-1, n_feat).astype(np.float64)
    model.set_input_stats(flat.mean(0), np.maximum(flat.std(0), 1e-6))
    ae_params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    opt_ae = torch.optim.Adam(ae_params, lr=cfg.lr)
    opt_enc = torch.optim.Adam(model.encoder.parameters(), lr=cfg.lr)
    cluster_params = [] if model.cluster_critic is None else list(model.cluster_critic.parameters())
    opt_c = torch.optim.Adam(list(model.critic.parameters()) + cluster_params, lr=cfg.lr_critic)
    xt = torch.from_numpy(x)
    yt = None if y is None else torch.from_numpy(np.asarray(y, np.int64))
    history: dict[str, list[float]] = {"step": [], "rec": [], "critic": [], "fool": []}
    bce = nn.BCEWithLogitsLoss()
    bs = min(cfg.batch_size, n)
    ones, zeros = torch.ones(bs, 1), torch.zeros(bs, 1)
    order = np.zeros(0, np.int64)
    model.train()

    def codes(target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if cfg.clusters:
            z, logits = model.encoder.both(target)
            return z, torch.softmax(logits, dim=1)
        return model.encoder(target), None

    def adversarial(z: torch.Tensor, c: torch.Tensor | None, real: torch.Tensor) -> torch.Tensor:
        loss = bce(model.critic(z), real)
        if c is not None:
            loss = loss + bce(model.cluster_critic(c), real)
        return loss

    for step in range(cfg.steps):
        if len(order) < bs:
            order = np.concatenate([order, rng.permutation(n)])
        b, order = torch.from_numpy(order[:bs]), order[bs:]
        target = model.normalise(xt[b])
        # (1) reconstruction
        z, c = codes(target)
        if c is not None:
            dec_in = torch.cat([z, c], dim=1)
        else:
            dec_in = model._code(z, None if yt is None else yt[b])
        rec = F.mse_loss(model.decoder(dec_in), target)
        opt_ae.zero_grad(set_to_none=True)
        rec.backward()
        opt_ae.step()
        crit = fool = torch.zeros(())
        if cfg.adv_weight > 0:
            # (2) critics: prior samples (1) vs codes (0)
            with torch.no_grad():
                z, c = codes(target)
            prior_c = None if c is None else F.one_hot(torch.randint(0, cfg.clusters, (bs,)), cfg.clusters).float()
            crit = adversarial(prior_sample(cfg, bs), prior_c, ones) + adversarial(z, c, zeros)
            opt_c.zero_grad(set_to_none=True)
            crit.backward()
            opt_c.step()
            # (3) regularisation: codes that pass for prior samples
            z, c = codes(target)
            fool = cfg.adv_weight * adversarial(z, c, ones)
            opt_enc.zero_grad(set_to_none=True)
            fool.backward()
            opt_enc.step()
        if step % 10 == 0 or step == cfg.steps - 1:
            history["step"].append(step)
            history["rec"].append(float(rec.detach()))
            history["critic"].append(float(crit.detach()))
            history["fool"].append(float(fool.detach()))
    model.eval()
    return AAEResult(model, history, time.time() - started)


def prior_sample(cfg: AAEConfig, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n`` draws of the code prior: N(0, I), or the mixture of ``cfg.prior_modes`` Gaussians."""
    z = torch.randn(n, cfg.latent, generator=generator)
    if cfg.prior_modes:
        mode = torch.randint(0, cfg.prior_modes, (n,), generator=generator)
        z = z + 4.0 * F.one_hot(mode, cfg.latent).float()
    return z


def encode(model: AAE, x: np.ndarray, *, batch: int = 1024) -> np.ndarray:
    """Codes ``z[w, latent]`` of windows ``x[w, t, f]`` (eval mode)."""
    model.eval()
    outs = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            outs.append(model.encode(torch.from_numpy(np.ascontiguousarray(x[i:i + batch], np.float32))).numpy())
    return np.concatenate(outs) if outs else np.zeros((0, model.cfg.latent), np.float32)


def assign(model: AAE, x: np.ndarray, *, batch: int = 1024) -> np.ndarray:
    """Cluster index (argmax q(c|x)) of every window of ``x[w, t, f]`` (clustering AAE)."""
    model.eval()
    outs = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            xb = torch.from_numpy(np.ascontiguousarray(x[i:i + batch], np.float32))
            outs.append(model.cluster_probs(xb).argmax(1).numpy())
    return np.concatenate(outs) if outs else np.zeros(0, np.int64)


def reconstruct(model: AAE, x: np.ndarray, y: np.ndarray | None = None) -> np.ndarray:
    """``decode(encode(x))`` in raw units (labels needed when conditional)."""
    with torch.inference_mode():
        z = torch.from_numpy(encode(model, x))
        yt = None if y is None else torch.from_numpy(np.asarray(y, np.int64))
        return model.decode(z, yt).numpy()


def sample(model: AAE, n: int, *, y: np.ndarray | None = None, seed: int = 0, temperature: float = 1.0) -> np.ndarray:
    """``n`` synthetic windows decoded from prior samples (of classes ``y[n]`` when conditional)."""
    gen = torch.Generator().manual_seed(seed)
    z = prior_sample(model.cfg, n, gen) * temperature
    with torch.inference_mode():
        yt = None if y is None else torch.from_numpy(np.asarray(y, np.int64))
        return model.decode(z, yt).numpy()


def augment_with_samples(model: AAE, x: np.ndarray, y: np.ndarray, per_class: int, *, seed: int = 0,
                         mode: str = "prior", spread: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """``(x + synthetic, y + their classes)`` from a conditional AAE, ``per_class`` new windows per class.

    mode "prior":        z ~ the prior, decoded with each class (Makhzani's generation)
    mode "neighbourhood": z = code of a real window of that class + ``spread`` * N(0, I), decoded with its class
                          (new windows near real ones: keeps what the code still knows about the class)
    """
    if not model.cfg.n_classes:
        raise ValueError("augmentation needs a conditional AAE (AAEConfig.n_classes > 0)")
    y = np.asarray(y, np.int64)
    if mode == "prior":
        ys = np.repeat(np.arange(model.cfg.n_classes), per_class)
        xs = sample(model, len(ys), y=ys, seed=seed)
    elif mode == "neighbourhood":
        rng = np.random.default_rng(seed)
        picks = np.concatenate([rng.choice(np.flatnonzero(y == c), per_class) for c in np.unique(y)])
        ys = y[picks]
        gen = torch.Generator().manual_seed(seed)
        with torch.inference_mode():
            z = torch.from_numpy(encode(model, x[picks]))
            z = z + spread * torch.randn(z.shape, generator=gen)
            xs = model.decode(z, torch.from_numpy(ys)).numpy()
    else:
        raise ValueError(f"mode must be 'prior' or 'neighbourhood', got {mode!r}")
    return np.concatenate([x, xs.astype(np.float32)]), np.concatenate([y, ys])


def prior_mismatch(z: np.ndarray) -> float:
    """How far codes ``z[w, latent]`` are from N(0, I) in their first two moments:
    ``||mean|| + ||cov - I||_F / sqrt(latent)`` (0 for a perfect match)."""
    z = np.asarray(z, np.float64)
    cov = np.cov(z, rowvar=False).reshape(z.shape[1], z.shape[1])
    return float(np.linalg.norm(z.mean(0)) + np.linalg.norm(cov - np.eye(z.shape[1])) / np.sqrt(z.shape[1]))


__all__ = ["AAEConfig", "AAE", "AAEResult", "train_aae", "prior_sample", "encode", "assign", "reconstruct", "sample",
           "augment_with_samples",
           "prior_mismatch"]
