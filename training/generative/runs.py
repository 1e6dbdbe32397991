"""What the ``edgecsi generative`` commands run: train / apply / export a repair model, cluster a site.

    summary = train_repair_run("esp32s2_temporal_har_geotecinit", "day=D1", out_dir="runs/repair", steps=300)
    x = apply_repair("runs/repair", y)                  # torch, or onnx=True for the exported file
    report = cluster_site("esp32s2_temporal_har_geotecinit", "day=D2", steps=600)

Windows files (``.npz``) hold ``x[window, time, feature]`` float32 (key ``x``; ``y`` labels optional).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class RepairRunSummary:
    run_dir: str
    n_windows: int
    seconds: float
    onnx: str | None
    onnx_max_abs_diff: float | None
    corruption: dict
    check: dict = field(default_factory=dict)   # held-out relative errors when clean windows exist

    def as_dict(self) -> dict:
        return asdict(self)


def select_windows(dataset: str, filters: str | None, *, dataset_options: dict | None = None):
    """A data set's windows, restricted by ``COL=V[+V][,COL=V]`` filters (the adapt CLI's syntax)."""
    from edgecsi.training.adapt.target import parse_filters
    from edgecsi.training.datasets import load

    ws = load(dataset, **(dataset_options or {}))
    return ws.select(**parse_filters(ws, filters)) if filters else ws


def load_windows(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """``(x, y or None)`` from an ``.npz`` windows file."""
    path = Path(path)
    with np.load(path) as z:
        if "x" not in z:
            raise ValueError(f"{path}: no array 'x' (have {sorted(z.files)})")
        x = np.asarray(z["x"], np.float32)
        y = np.asarray(z["y"]) if "y" in z else None
    if x.ndim != 3:
        raise ValueError(f"{path}: x must be [window, time, feature], got shape {x.shape}")
    return x, y


def train_repair_run(dataset: str | None, filters: str | None, *, out_dir: str | Path, corruption: str = "",
                     simulate: bool = True, windows: str | Path | None = None, steps: int = 300, seed: int = 0,
                     holdout: float = 0.2, export: bool = True, threads: int = 1) -> RepairRunSummary:
    """Train a UNIR repair model and write ``out_dir`` (``save_repair`` layout, plus ``repair.onnx``).

    Measurements come from ``windows`` (an .npz of real corrupted windows, missing entries 0; trained on
    as they are) or from a data set: with ``simulate`` its windows are corrupted by ``corruption`` first
    (the clean originals of a held-out ``holdout`` fraction then score the repair, never train it).
    """
    import torch

    from edgecsi.training.generative.corruption import CorruptionConfig, corrupt
    from edgecsi.training.generative.repair_onnx import check_repair_onnx, export_repair_onnx
    from edgecsi.training.generative.unir import UNIRConfig, relative_error, repair, save_repair, train_unir

    torch.set_num_threads(threads)
    cfg = CorruptionConfig.parse(corruption)
    check: dict = {}
    if windows is not None:
        y_meas, _ = load_windows(windows)
        source = {"windows": str(windows)}
        y_train = y_meas
    else:
        if dataset is None:
            raise ValueError("name a data set or a windows file")
        ws = select_windows(dataset, filters)
        source = {"dataset": dataset, "filters": filters}
        x = ws.x
        if not simulate:
            y_train = x
        else:
            rng = np.random.default_rng(seed)
            order = rng.permutation(len(x))
            n_hold = int(round(holdout * len(x)))
            hold, fit = np.sort(order[:n_hold]), np.sort(order[n_hold:])
            y_train, _ = corrupt(x[fit], cfg, seed=seed + 1)
            if n_hold:
                y_hold, keep = corrupt(x[hold], cfg, seed=seed + 2)
                check = {"n_holdout": int(n_hold), "none_all": relative_error(y_hold, x[hold])}
    result = train_unir(y_train, cfg, UNIRConfig(steps=steps), seed=seed)
    if check:
        x_hat = repair(result.model, y_hold)
        check.update({"unir_all": relative_error(x_hat, x[hold]),
                      "unir_missing": relative_error(x_hat, x[hold], ~keep)})
    out = save_repair(result, out_dir, extra={"source": source, "simulated": bool(simulate and windows is None),
                                              "check": check})
    onnx_path = diff = None
    if export:
        onnx_path = export_repair_onnx(result.model, out / "repair.onnx", n_time=y_train.shape[1],
                                       metadata={"corruption": cfg.as_dict()})
        diff = check_repair_onnx(result.model, onnx_path, y_train[:8])
    return RepairRunSummary(str(out), int(len(y_train)), round(result.seconds, 2),
                            None if onnx_path is None else str(onnx_path), diff, cfg.as_dict(), check)


def apply_repair(model_dir: str | Path, y: np.ndarray, *, onnx: bool = False) -> np.ndarray:
    """Repair measurements ``y[w, t, f]`` with the model in ``model_dir`` (its ONNX file with ``onnx``)."""
    if onnx:
        from edgecsi.edge.repair import OnnxRepair

        return OnnxRepair(Path(model_dir) / "repair.onnx")(y)
    from edgecsi.training.generative.unir import load_repair, repair

    model, _ = load_repair(model_dir)
    return repair(model, y)


@dataclass
class ClusterReport:
    n_windows: int
    k: int
    assignments: list[int]
    seconds: float
    scores: dict[str, dict[str, float]] = field(default_factory=dict)   # "aae" / "raw_kmeans" -> nmi, ari, acc

    def as_dict(self) -> dict:
        return asdict(self)


def cluster_site(dataset: str | None, filters: str | None, *, windows: str | Path | None = None, k: int | None = None,
                 steps: int = 600, latent: int = 16, adv_weight: float = 1.0, seed: int = 0,
                 threads: int = 1) -> ClusterReport:
    """Cluster unlabelled windows with AAE codes + k-means; scores against labels (and the raw k-means
    baseline) when the windows have labels. ``k`` defaults to the number of classes present."""
    import torch

    from edgecsi.training.generative.aae import AAEConfig, encode, train_aae
    from edgecsi.training.generative.clustering import cluster_scores, kmeans, raw_features

    torch.set_num_threads(threads)
    if windows is not None:
        x, y = load_windows(windows)
    else:
        if dataset is None:
            raise ValueError("name a data set or a windows file")
        ws = select_windows(dataset, filters)
        x, y = ws.x, (None if ws.is_regression else ws.y)
    if k is None:
        if y is None:
            raise ValueError("no labels to count classes: give k")
        k = int(len(np.unique(y)))
    started = time.time()
    res = train_aae(x, AAEConfig(steps=steps, latent=latent, adv_weight=adv_weight), seed=seed)
    labels = kmeans(encode(res.model, x), k, seed=seed)
    report = ClusterReport(int(len(x)), int(k), labels.tolist(), round(time.time() - started, 2))
    if y is not None:
        report.scores = {"aae": cluster_scores(y, labels),
                         "raw_kmeans": cluster_scores(y, kmeans(raw_features(x), k, seed=seed))}
    return report


__all__ = ["RepairRunSummary", "ClusterReport", "select_windows", "load_windows", "train_repair_run", "apply_repair",
           "cluster_site"]
