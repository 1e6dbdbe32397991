"""On-gateway calibration: a small numpy head on the base model's embedding, fitted from site windows.

numpy and the standard library only (no torch, scipy, sklearn, not even onnxruntime): it runs on the
gateway in well under a second from a few labelled windows per class.

    from edgecsi.edge.calibration import SiteHead, blend, fit_site_head

    head = fit_site_head(emb, labels_idx, label_names, method="logistic", p_base=p_base)
    head.save(bundle_dir / "site", base_model_sha256)          # site/head.npz + site/head.json
    head = SiteHead.load(bundle_dir / "site", base_model_sha256)  # refuses a head of another base
    p = blend(p_base, head.predict_proba(emb), head.alpha, seen=head.seen)

Arrays: ``emb[window, embed_dim]`` float32 (the bundle model's ``embedding`` output), ``labels_idx[window]``
int indices into ``label_names`` (the bundle's labels, in the same order), ``p_base[window, label]`` the
base model's softmax.

The head: embeddings standardised with the site windows' mean / std, then multinomial logistic regression
(L2, Nesterov gradient descent; default) or ridge regression on one-hot targets (closed form; scores
turned into probabilities by a softmax with a fitted temperature). It only knows the labels the installer
gave windows for (``seen``); :func:`blend` lets the base model keep the others:

    p = a * p_base + (1 - a) * p_head',  p_head'[seen] = p_head[seen] * p_base[seen].sum(),
                                         p_head'[unseen] = p_base[unseen]

``a`` (``SiteHead.alpha``) is chosen among 0.25 / 0.5 / 0.75 by stratified cross-validation on the site
windows when ``p_base`` is given to ``fit_site_head`` and most labelled classes have at least 2 windows,
else 0.5.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecsi.errors import EdgeCSIError

FORMAT = "edgecsi-site-head/1"
HEAD_NPZ = "head.npz"
HEAD_JSON = "head.json"
METHODS = ("logistic", "ridge")
# Never all head, never all base: with a handful of (often correlated) site windows, cross-validation
# overrates the head; on iVANET the full grid picked 0 and lost to the base (docs/results/adaptation.md).
ALPHA_GRID = (0.25, 0.5, 0.75)
DEFAULT_ALPHA = 0.5
DEFAULT_L2 = {"logistic": 1e-2, "ridge": 1.0}


class CalibrationError(EdgeCSIError):
    """A site head that cannot be fitted, saved or loaded; the message names the file."""


@dataclass
class SiteHead:
    """A fitted site head. ``weights[embed_dim, label]``, ``bias[label]`` (zero columns for unseen labels)."""

    label_names: list[str]
    weights: np.ndarray           # float32[embed_dim, label]
    bias: np.ndarray              # float32[label]
    mean: np.ndarray              # float32[embed_dim] standardisation of the embedding
    scale: np.ndarray             # float32[embed_dim]
    seen: np.ndarray              # bool[label]: labels with site windows
    counts: np.ndarray            # int64[label]: site windows per label
    method: str = "logistic"
    l2: float = DEFAULT_L2["logistic"]
    temperature: float = 1.0      # ridge: softmax(score * temperature)
    alpha: float = DEFAULT_ALPHA  # weight of the base model in blend()
    alpha_source: str = "default"
    version: int = 1
    created: str = ""
    base_model_sha256: str | None = None
    meta: dict = field(default_factory=dict)

    @property
    def embed_dim(self) -> int:
        return int(self.weights.shape[0])

    @property
    def n_windows(self) -> int:
        return int(self.counts.sum())

    def scores(self, emb: np.ndarray) -> np.ndarray:
        z = (_as_2d(emb, self.embed_dim) - self.mean) / self.scale
        return z @ self.weights + self.bias

    def predict_proba(self, emb: np.ndarray) -> np.ndarray:
        """``p_head[window, label]`` float32; 0 for labels without site windows."""
        s = self.scores(emb)
        if self.method == "ridge":
            s = s * self.temperature
        return _softmax_masked(s, self.seen).astype(np.float32)

    def blend(self, p_base: np.ndarray, emb: np.ndarray, a: float | None = None) -> np.ndarray:
        """``blend(p_base, self.predict_proba(emb), a or self.alpha, seen=self.seen)``."""
        return blend(p_base, self.predict_proba(emb), self.alpha if a is None else a, seen=self.seen)

    # -- files ----------------------------------------------------------------------------------
    def save(self, directory: str | Path, base_model_sha256: str) -> Path:
        """Write ``head.npz`` + ``head.json`` into ``directory`` (atomically: npz first, json last).

        ``version`` becomes one more than the head already there for the same base model (else 1).
        Returns the path of head.json.
        """
        if not base_model_sha256 or len(base_model_sha256) != 64:
            raise CalibrationError(f"{directory}: base_model_sha256 must be a 64-hex-digit sha256")
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        version = 1
        old = d / HEAD_JSON
        if old.exists():
            try:
                prev = json.loads(old.read_text())
                if prev.get("base_model_sha256") == base_model_sha256:
                    version = int(prev.get("version", 0)) + 1
            except (ValueError, OSError):
                pass
        self.version = version
        self.base_model_sha256 = base_model_sha256
        self.created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        buf = io.BytesIO()
        np.savez(buf, weights=self.weights.astype(np.float32), bias=self.bias.astype(np.float32),
                 mean=self.mean.astype(np.float32), scale=self.scale.astype(np.float32),
                 seen=self.seen.astype(bool), counts=self.counts.astype(np.int64))
        npz = buf.getvalue()
        doc = {
            "format": FORMAT,
            "version": version,
            "created": self.created,
            "base_model_sha256": base_model_sha256,
            "labels": list(self.label_names),
            "method": self.method,
            "l2": self.l2,
            "temperature": self.temperature,
            "alpha": self.alpha,
            "alpha_source": self.alpha_source,
            "embed_dim": self.embed_dim,
            "n_windows": self.n_windows,
            "windows_per_label": {n: int(c) for n, c in zip(self.label_names, self.counts)},
            "files": {HEAD_NPZ: {"sha256": hashlib.sha256(npz).hexdigest(), "bytes": len(npz)}},
            "meta": self.meta,
        }
        _atomic_write(d / HEAD_NPZ, npz)
        _atomic_write(d / HEAD_JSON, (json.dumps(doc, indent=2) + "\n").encode())
        return d / HEAD_JSON

    @classmethod
    def load(cls, directory: str | Path, expected_base_sha256: str) -> "SiteHead":
        """Read a head saved by :meth:`save`; refuse one made for another base model or altered on disk."""
        d = Path(directory)
        jpath, npath = d / HEAD_JSON, d / HEAD_NPZ
        try:
            doc = json.loads(jpath.read_text())
        except OSError as exc:
            raise CalibrationError(f"{jpath}: cannot read: {exc.strerror or exc}") from exc
        except ValueError as exc:
            raise CalibrationError(f"{jpath}: not valid JSON: {exc}") from exc
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise CalibrationError(f"{jpath}: not a site head (format {doc.get('format') if isinstance(doc, dict) else None!r})")
        if doc.get("base_model_sha256") != expected_base_sha256:
            raise CalibrationError(
                f"{jpath}: head was fitted on base model {str(doc.get('base_model_sha256'))[:16]}..., "
                f"the running model is {str(expected_base_sha256)[:16]}...; refit it (edgecsi calibrate)")
        try:
            raw = npath.read_bytes()
        except OSError as exc:
            raise CalibrationError(f"{npath}: cannot read: {exc.strerror or exc}") from exc
        want = doc.get("files", {}).get(HEAD_NPZ, {}).get("sha256")
        if hashlib.sha256(raw).hexdigest() != want:
            raise CalibrationError(f"{npath}: sha256 does not match {jpath.name}")
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            arrays = {k: z[k] for k in ("weights", "bias", "mean", "scale", "seen", "counts")}
        labels = list(doc["labels"])
        if arrays["weights"].shape != (int(doc["embed_dim"]), len(labels)):
            raise CalibrationError(f"{npath}: weights {arrays['weights'].shape} do not match "
                                   f"embed_dim {doc['embed_dim']} x {len(labels)} labels")
        return cls(label_names=labels, method=doc["method"], l2=float(doc["l2"]), temperature=float(doc["temperature"]),
                   alpha=float(doc["alpha"]), alpha_source=str(doc.get("alpha_source", "")), version=int(doc["version"]),
                   created=str(doc["created"]), base_model_sha256=doc["base_model_sha256"], meta=dict(doc.get("meta", {})),
                   **arrays)


# -- fitting ------------------------------------------------------------------------------------
def fit_site_head(embeddings: np.ndarray, labels_idx: np.ndarray, label_names: list[str], *,
                  method: str = "logistic", l2: float | None = None, p_base: np.ndarray | None = None,
                  alpha: float | None = None, max_iter: int = 300) -> SiteHead:
    """Fit a head on site windows' embeddings.

    embeddings  float[window, embed_dim]; labels_idx int[window] into label_names
    method      "logistic" (multinomial, L2) or "ridge" (one-hot least squares, L2)
    l2          regularisation on standardised embeddings (default 1e-2 logistic, 1.0 ridge)
    p_base      the base model's probabilities for the same windows: lets ``alpha`` be chosen by
                cross-validation (else ``alpha`` or 0.5)
    """
    if method not in METHODS:
        raise CalibrationError(f"method must be one of {METHODS}, not {method!r}")
    x = _as_2d(embeddings, None).astype(np.float64)
    y = np.asarray(labels_idx).astype(np.int64).reshape(-1)
    k = len(label_names)
    if len(x) != len(y):
        raise CalibrationError(f"{len(x)} embeddings but {len(y)} labels")
    if len(y) == 0:
        raise CalibrationError("no labelled windows to fit a site head on")
    if y.min() < 0 or y.max() >= k:
        raise CalibrationError(f"label index out of range 0..{k - 1}: {sorted(set(y.tolist()))}")
    lam = float(DEFAULT_L2[method] if l2 is None else l2)
    head = _fit(x, y, k, list(label_names), method, lam, max_iter)
    if alpha is not None:
        head.alpha, head.alpha_source = float(alpha), "given"
    elif p_base is not None:
        chosen = choose_alpha(x, y, k, np.asarray(p_base, np.float64), method, lam, max_iter)
        if chosen is not None:
            head.alpha, head.alpha_source = chosen, "cross-validation"
    return head


def choose_alpha(x: np.ndarray, y: np.ndarray, k: int, p_base: np.ndarray, method: str, l2: float,
                 max_iter: int, folds: int = 5) -> float | None:
    """The blend weight in ALPHA_GRID with the best cross-validated accuracy (ties: lowest log-loss).

    None when fewer than half the labelled classes have 2 windows (nothing to hold out). A class with a
    single window sits in one fold, where the head has not seen it and the blend leaves it to the base.
    """
    counts = np.bincount(y, minlength=k)
    labelled = counts[counts > 0]
    if (labelled >= 2).sum() * 2 < len(labelled):
        return None
    folds = int(min(folds, max(2, int(np.median(labelled)))))
    # Stratified folds: deal each class's windows round-robin.
    fold_of = np.zeros(len(y), np.int64)
    rng = np.random.default_rng(0)
    for c in np.flatnonzero(counts):
        members = rng.permutation(np.flatnonzero(y == c))
        fold_of[members] = np.arange(len(members)) % folds
    p_head = np.zeros_like(p_base)
    seen_of = np.zeros((len(y), k), bool)
    for f in range(folds):
        tr, te = fold_of != f, fold_of == f
        h = _fit(x[tr], y[tr], k, [str(i) for i in range(k)], method, l2, max_iter)
        p_head[te] = h.predict_proba(x[te])
        seen_of[te] = h.seen
    # blend() per window, vectorised: each window was predicted by a head with its own seen labels.
    mass_seen = (p_base * seen_of).sum(axis=1, keepdims=True)
    p_head = np.where(seen_of, p_head * mass_seen, p_base)
    best = None
    for a in ALPHA_GRID:
        p = a * p_base + (1.0 - a) * p_head
        acc = float((p.argmax(1) == y).mean())
        nll = float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())
        key = (acc, -nll)
        if best is None or key > best[0]:
            best = (key, a)
    return float(best[1])


def blend(p_base: np.ndarray, p_head: np.ndarray, a: float, *, seen: np.ndarray | None = None) -> np.ndarray:
    """``a * p_base + (1 - a) * p_head`` per window (rows sum to 1).

    ``seen`` (bool[label], the head's labels with site windows): the head then only redistributes the
    base's probability among the seen labels and the unseen ones keep the base's share.
    """
    pb = np.asarray(p_base, np.float64)
    ph = np.asarray(p_head, np.float64)
    if pb.shape != ph.shape:
        raise CalibrationError(f"p_base {pb.shape} and p_head {ph.shape} differ in shape")
    if not 0.0 <= a <= 1.0:
        raise CalibrationError(f"blend weight a must be in [0, 1], got {a}")
    if seen is not None and not np.all(seen):
        seen = np.asarray(seen, bool)
        mass_seen = pb[..., seen].sum(axis=-1, keepdims=True)
        ph = ph.copy()
        ph[..., seen] = ph[..., seen] * mass_seen
        ph[..., ~seen] = pb[..., ~seen]
    return (a * pb + (1.0 - a) * ph).astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row softmax of ``logits[window, label]`` (the base model's logits -> p_base)."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)


# -- internals ----------------------------------------------------------------------------------
def _fit(x: np.ndarray, y: np.ndarray, k: int, label_names: list[str], method: str, l2: float,
         max_iter: int) -> SiteHead:
    counts = np.bincount(y, minlength=k)
    seen = counts > 0
    cls = np.flatnonzero(seen)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    # Dimensions that barely vary on site (dead ReLUs) would blow up; floor them.
    scale = np.maximum(std, max(1e-6, 0.05 * float(np.median(std)) if std.size else 1e-6))
    z = (x - mean) / scale
    yy = np.searchsorted(cls, y)                       # index among seen classes
    onehot = np.eye(len(cls))[yy]
    temperature = 1.0
    if len(cls) == 1:                                  # one class: nothing to separate
        w, b = np.zeros((x.shape[1], 1)), np.zeros(1)
    elif method == "ridge":
        w, b = _ridge(z, onehot, l2)
        temperature = _fit_temperature(z @ w + b, yy)
    else:
        w, b = _logistic(z, onehot, l2, max_iter)
    weights = np.zeros((x.shape[1], k))
    bias = np.zeros(k)
    weights[:, cls], bias[cls] = w, b
    return SiteHead(label_names=list(label_names), weights=weights.astype(np.float32), bias=bias.astype(np.float32),
                    mean=mean.astype(np.float32), scale=scale.astype(np.float32), seen=seen, counts=counts,
                    method=method, l2=l2, temperature=temperature)


def _logistic(z: np.ndarray, onehot: np.ndarray, l2: float, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression: mean CE + l2/2 |W|^2 (bias free), Nesterov gradient descent."""
    n, d = z.shape
    kk = onehot.shape[1]
    # Step 1/L: the CE Hessian in the logits is <= 1/2 I, so L <= lambda_max(Z'Z/n)/2 + l2 (+1/2 for the bias).
    gram = z.T @ z / n
    lipschitz = 0.5 * (float(np.linalg.eigvalsh(gram)[-1]) + 1.0) + l2
    step = 1.0 / lipschitz
    w = np.zeros((d, kk))
    b = np.zeros(kk)
    w_prev, b_prev = w, b
    for it in range(1, max_iter + 1):
        mom = (it - 1) / (it + 2)
        vw = w + mom * (w - w_prev)
        vb = b + mom * (b - b_prev)
        s = z @ vw + vb
        s -= s.max(axis=1, keepdims=True)
        p = np.exp(s)
        p /= p.sum(axis=1, keepdims=True)
        g = (p - onehot) / n
        gw = z.T @ g + l2 * vw
        gb = g.sum(axis=0)
        w_prev, b_prev = w, b
        w, b = vw - step * gw, vb - step * gb
        if it % 25 == 0 and np.sqrt((gw ** 2).sum() + (gb ** 2).sum()) < 1e-5:
            break
    return w, b


def _ridge(z: np.ndarray, onehot: np.ndarray, l2: float) -> tuple[np.ndarray, np.ndarray]:
    """min |Z W + b - Y|^2 / n + l2 |W|^2 in closed form; the dual (n x n) system when n < d."""
    n, d = z.shape
    target = onehot - onehot.mean(axis=0)              # z is centred, so b = mean of Y
    if n < d:
        alpha = np.linalg.solve(z @ z.T + n * l2 * np.eye(n), target)
        w = z.T @ alpha
    else:
        w = np.linalg.solve(z.T @ z + n * l2 * np.eye(d), z.T @ target)
    return w, onehot.mean(axis=0)


def _fit_temperature(scores: np.ndarray, yy: np.ndarray) -> float:
    """The softmax temperature (a grid) with the lowest CE of ridge scores on the fitting windows."""
    best = (np.inf, 1.0)
    for t in (1.0, 2.0, 5.0, 10.0, 20.0, 50.0):
        s = scores * t
        s = s - s.max(axis=1, keepdims=True)
        logp = s - np.log(np.exp(s).sum(axis=1, keepdims=True))
        nll = float(-logp[np.arange(len(yy)), yy].mean())
        if nll < best[0]:
            best = (nll, t)
    return best[1]


def _softmax_masked(s: np.ndarray, seen: np.ndarray) -> np.ndarray:
    out = np.zeros(s.shape, np.float64)
    if not seen.any():
        return out
    z = s[:, seen].astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    out[:, seen] = e / e.sum(axis=1, keepdims=True)
    return out


def _as_2d(emb: np.ndarray, dim: int | None) -> np.ndarray:
    a = np.asarray(emb)
    if a.ndim == 1:
        a = a[None, :]
    if a.ndim != 2 or (dim is not None and a.shape[1] != dim):
        raise CalibrationError(f"embeddings must be [window, {dim or 'embed_dim'}], got shape {a.shape}")
    return a


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(data)
    os.replace(tmp, path)
