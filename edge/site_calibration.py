"""``edgecsi calibrate``: label windows on site, keep their embeddings, refit the site head.

    report = calibrate("/var/lib/edgecsi/current", [("walk.npz", "walking"), ("sit.npz", "sitting")])

1. Verify the bundle (``load_bundle``: hashes, optional signature) and take its model's sha256: the
   base model every site artefact is tied to.
2. Windows: an ``.npz`` with ``x[window, time, feature]`` (raw, as the model takes it; also accepted
   under ``windows``), optionally ``labels`` (names, one per window) when no label is given; or a capture
   file (any format ``edgecsi.firmware_bridge.read`` sniffs), cut into windows by the bundle's own signal
   pipeline (``edgecsi.edge.pipeline``), every stream of it.
3. Run the bundle model (onnxruntime, one thread), after its repair step if it has one:
   ``embedding`` and ``logits`` per window.
4. Append (embedding, label name) rows to the site store ``site/store.npz`` (refused when it was filled
   by another base model) and refit the head (``edgecsi.edge.calibration``) on the whole store, with
   the blend weight chosen by cross-validation against the base's own probabilities; save
   ``site/head.npz`` + ``site/head.json`` (version + 1). The store keeps the base's probabilities per
   window too, so the blend weight is cross-validated without the windows themselves.

Imports numpy, onnxruntime and edgecsi's edge modules only (no torch).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgecsi.edge.bundle import Bundle, load_bundle
from edgecsi.edge.calibration import CalibrationError, SiteHead, fit_site_head, softmax
from edgecsi.edge.repair import bundle_repair, repair_file

STORE = "store.npz"
SITE_DIR = "site"


@dataclass
class CalibrationReport:
    site_dir: Path
    base_model_sha256: str
    added: dict[str, int]                 # label -> windows added now
    store_counts: dict[str, int]          # label -> windows in the store
    head: SiteHead | None                 # None while fewer than 2 labels have windows
    seconds: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"site_dir": str(self.site_dir), "base_model_sha256": self.base_model_sha256, "added": self.added,
                "store_counts": self.store_counts, "seconds": self.seconds,
                "head": None if self.head is None else {"version": self.head.version, "method": self.head.method,
                                                         "alpha": self.head.alpha, "alpha_source": self.head.alpha_source,
                                                         "n_windows": self.head.n_windows}}


def _file_sha256(bundle: Bundle, name: str) -> str:
    entry = bundle.manifest["files"][name]
    return entry["sha256"] if isinstance(entry, dict) else str(entry)


def base_model_sha256(bundle: Bundle, *, with_repair: bool = True) -> str:
    """What a site head and its store are tied to: the sha256 of the bundle's model file, or, when the
    windows are repaired before the model (a repair step in the bundle, on unless the agent runs with
    ``--no-repair``), the sha256 of that pair -- a head fitted on unrepaired embeddings must not be
    blended with repaired ones, nor the other way round."""
    model = _file_sha256(bundle, bundle.manifest["model"]["file"])
    name = repair_file(bundle.manifest) if with_repair else None
    if name is None:
        return model
    return hashlib.sha256(f"{model}+repair:{_file_sha256(bundle, name)}".encode()).hexdigest()


def embed_windows(bundle: Bundle, x: np.ndarray, *, batch: int = 256,
                  with_repair: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """``(embedding[window, embed_dim], p_base[window, label])`` from the bundle's model, on windows
    repaired first when the bundle has a repair step (as the agent runs it)."""
    from edgecsi.edge.runtime import make_session, run_model

    session = make_session(bundle.model_bytes, threads=1)
    names = [o.name for o in session.get_outputs()]
    if "embedding" not in names:
        raise CalibrationError(f"{bundle.path}: the model has no 'embedding' output (outputs {names}); re-export it")
    repair = bundle_repair(bundle) if with_repair else None
    embs, probs = [], []
    for i in range(0, len(x), batch):
        part = x[i:i + batch]
        out = run_model(session, repair(part) if repair is not None else part)
        embs.append(out["embedding"])
        probs.append(softmax(out["logits"]))
    if not embs:
        return np.zeros((0, 0), np.float32), np.zeros((0, len(bundle.labels)), np.float32)
    return np.concatenate(embs).astype(np.float32), np.concatenate(probs)


def read_windows(path: str | Path, bundle: Bundle) -> tuple[np.ndarray, np.ndarray | None]:
    """``(x[window, time, feature], label names or None)`` from an .npz of windows or a capture file."""
    path = Path(path)
    n_time, n_features = int(bundle.manifest["input"]["n_time"]), int(bundle.manifest["input"]["n_features"])
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                key = "x" if "x" in z else "windows" if "windows" in z else None
                if key is None:
                    raise CalibrationError(f"{path}: no 'x' (or 'windows') array; has {sorted(z.files)}")
                x = np.asarray(z[key], np.float32)
                labels = np.asarray(z["labels"]).astype(str) if "labels" in z else None
        except (OSError, ValueError) as exc:
            raise CalibrationError(f"{path}: cannot read windows: {exc}") from exc
    else:
        x, labels = _capture_windows(path, bundle), None
    if x.ndim == 2 and n_time == 1:
        x = x[:, None, :]
    if x.ndim != 3 or x.shape[2] != n_features:
        raise CalibrationError(f"{path}: windows have shape {x.shape}, the model takes [window, {n_time}, {n_features}]")
    if bundle.manifest["input"].get("time_axis") != "any" and x.shape[1] != n_time:
        raise CalibrationError(f"{path}: windows are {x.shape[1]} long, the model takes exactly {n_time}")
    if labels is not None and len(labels) != len(x):
        raise CalibrationError(f"{path}: {len(labels)} labels for {len(x)} windows")
    return x, labels


def _capture_windows(path: Path, bundle: Bundle) -> np.ndarray:
    from edgecsi.edge.pipeline import build_pipeline, split_streams
    from edgecsi.firmware_bridge.read import read

    config = bundle.pipeline_config
    if not config:
        raise CalibrationError(f"{bundle.path}: the bundle carries no signal pipeline; pass windows as an .npz of x")
    pipeline = build_pipeline(config)
    capture = read(path)
    windows = [pipeline.transform(stream) for b in capture.batches for stream in split_streams(b).values()]
    windows = [w for w in windows if len(w)]
    if not windows:
        raise CalibrationError(f"{path}: no complete window in {capture.n_packets} packets")
    return np.concatenate(windows).astype(np.float32)


def load_store(site_dir: Path, base_sha: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(embeddings[row, embed_dim], p_base[row, label], label names[row])`` of the site store."""
    path = site_dir / STORE
    if not path.exists():
        return np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32), np.zeros(0, str)
    with np.load(path, allow_pickle=False) as z:
        stored_sha = str(z["base_model_sha256"])
        if stored_sha != base_sha:
            raise CalibrationError(f"{path}: filled with base model {stored_sha[:16]}..., the bundle's is {base_sha[:16]}...; "
                                   f"move it away to start a new store")
        return z["embeddings"].astype(np.float32), z["p_base"].astype(np.float32), z["labels"].astype(str)


def save_store(site_dir: Path, base_sha: str, emb: np.ndarray, p_base: np.ndarray, labels: np.ndarray) -> None:
    """Rows: a window's embedding, the base model's probabilities for it, and its label name."""
    site_dir.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, embeddings=emb.astype(np.float32), p_base=p_base.astype(np.float32), labels=labels.astype(str),
             base_model_sha256=np.array(base_sha))
    tmp = site_dir / f".{STORE}.tmp"
    tmp.write_bytes(buf.getvalue())
    tmp.replace(site_dir / STORE)


def calibrate(bundle_dir: str | Path, items: list[tuple[str | Path, str | None]], *, site_dir: str | Path | None = None,
              method: str = "logistic", l2: float | None = None, trusted_keys: list[bytes] | None = None,
              with_repair: bool = True) -> CalibrationReport:
    """Add labelled windows (``items``: (windows file, label name or None = the file's own labels)) and refit.

    Returns a report; the head is saved under ``site_dir`` (default ``BUNDLE/site``) once at least two
    labels have windows. ``with_repair=False`` for a gateway that runs the agent with ``--no-repair``.
    """
    t0 = time.perf_counter()
    bundle = load_bundle(bundle_dir, trusted_keys=trusted_keys)
    sha = base_model_sha256(bundle, with_repair=with_repair)
    site = Path(site_dir) if site_dir is not None else Path(bundle_dir) / SITE_DIR
    label_names = bundle.labels
    if not label_names:
        raise CalibrationError(f"{bundle_dir}: a regression bundle has no labels to calibrate")
    new_x, new_labels, added = [], [], {}
    for path, label in items:
        x, file_labels = read_windows(path, bundle)
        names = np.full(len(x), label) if label is not None else file_labels
        if names is None:
            raise CalibrationError(f"{path}: give --label (the file has no 'labels' array)")
        unknown = sorted(set(names.tolist()) - set(label_names))
        if unknown:
            raise CalibrationError(f"{path}: label(s) {unknown} not in the bundle's labels {label_names}")
        new_x.append(x)
        new_labels.append(names.astype(str))
        for n in names.tolist():
            added[n] = added.get(n, 0) + 1
    t1 = time.perf_counter()
    if new_x:
        emb_new, p_new = embed_windows(bundle, np.concatenate(new_x), with_repair=with_repair)
    else:
        emb_new, p_new = np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32)
    t2 = time.perf_counter()
    emb_old, p_old, labels_old = load_store(site, sha)
    emb = np.concatenate([emb_old, emb_new]) if len(emb_old) else emb_new
    p_base = np.concatenate([p_old, p_new]) if len(p_old) else p_new
    labels = np.concatenate([labels_old, *new_labels]) if new_labels else labels_old
    save_store(site, sha, emb, p_base, labels)
    counts = {n: int((labels == n).sum()) for n in label_names if (labels == n).any()}
    head = None
    t3 = time.perf_counter()
    if len(counts) >= 2:
        idx = np.array([label_names.index(n) for n in labels.tolist()], np.int64)
        head = fit_site_head(emb, idx, label_names, method=method, l2=l2, p_base=p_base)
        head.meta = {"bundle_version": bundle.version, "bundle_manifest_sha256": bundle.manifest_sha256}
        head.save(site, sha)
    t4 = time.perf_counter()
    return CalibrationReport(site_dir=site, base_model_sha256=sha, added=added, store_counts=counts, head=head,
                             seconds={"read": round(t1 - t0, 3), "embed": round(t2 - t1, 3),
                                      "store": round(t3 - t2, 3), "fit": round(t4 - t3, 3)})


def sha256_file(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def describe_head(site_dir: str | Path) -> dict:
    """head.json of a site directory (for ``edgecsi calibrate --json`` and inspection)."""
    return json.loads((Path(site_dir) / "head.json").read_text())
