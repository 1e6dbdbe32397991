"""``adapt(run_dir, method, target, out_dir=...)``: a base run + a new site -> an adapted run directory.

The adapted run directory follows the run contract of ``edgecsi.training.train`` (so ``load_run`` and
``export_run`` take it unchanged) with these additions:

``config.json["adaptation"]``  method, its options, ``base_run``, ``base_model_sha256`` (sha256 of the
                               base run's model.safetensors), the target spec and the labelled windows
                               (indices into the target data set), what was trained, the per-site
                               artefact, seconds
``config.json["dataset"]``     the TARGET data set; ``split`` describes the target windows: ``n_train``
                               = labelled windows, ``n_test`` = held-out target windows
``metrics.json``               ``test``: the adapted model on the held-out target windows (never the
                               labelled ones); ``source_only``: the base model on the same windows;
                               ``train``: on the labelled windows
``site.safetensors``           the per-site artefact: only the tensors that differ from the base run
                               (fc: the head; side: side network + head + alpha)

The base run directory is only read.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from edgecsi.training.adapt.aad import AADConfig, adapt_aad
from edgecsi.training.adapt.ccsa import CCSAConfig, adapt_ccsa
from edgecsi.training.adapt.fc_finetune import FCConfig, adapt_fc
from edgecsi.training.adapt.lmmd import LMMDConfig, adapt_lmmd
from edgecsi.training.adapt.method import MethodResult, as_dict, configure
from edgecsi.training.adapt.side_tuning import SideConfig, adapt_side
from edgecsi.training.adapt.target import TargetSpec, TargetSplit, adapt_data, split_target
from edgecsi.training.datasets import DATASETS, WindowSet
from edgecsi.training.datasets import load as load_dataset


@dataclass(frozen=True)
class Method:
    name: str
    config: type
    fn: Callable[..., MethodResult]
    needs_labels: bool
    description: str


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("fc", FCConfig, adapt_fc, True, "FC fine-tuning: body frozen, head trained on the site's windows"),
    Method("side", SideConfig, adapt_side, True, "side-tuning: frozen base + distilled side network, blended"),
    Method("ccsa", CCSAConfig, adapt_ccsa, True, "semantic alignment (CCSA/AdapLoc): CE + contrastive pairs"),
    Method("lmmd", LMMDConfig, adapt_lmmd, False, "LMMD (DSAN): subdomain alignment with target pseudo-labels"),
    Method("aad", AADConfig, adapt_aad, False, "AAD: adversarial target encoder + distillation, T=20"),
)}


@dataclass
class AdaptResult:
    run_dir: Path
    model: torch.nn.Module
    config: dict
    metrics: dict

    @property
    def accuracy(self) -> float:
        return float(next(iter(self.metrics["test"].values()))["accuracy"])

    @property
    def source_only_accuracy(self) -> float:
        return float(next(iter(self.metrics["source_only"].values()))["accuracy"])

    def summary(self) -> str:
        a = self.config["adaptation"]
        t = a["target"]
        where = ":".join(part for part in (t.get("dataset") or "", t["target"]) if part) or "the base run's data"
        return (f"{self.run_dir}: {a['method']} on {where}{' minus ' + t['pool'] if t.get('pool') else ''} "
                f"({a['n_labelled']} labelled windows): accuracy {self.accuracy:.1%} "
                f"(source-only {self.source_only_accuracy:.1%}) on {a['n_test']} held-out windows")


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run_windows(config: dict) -> WindowSet:
    """A run's data reloaded: its named data set, or the captures it was trained from, cut again."""
    from edgecsi.training.train_captures import recorded_captures, run_capture_windows

    desc = config.get("dataset") or {}
    record = recorded_captures(config)
    if record is not None:
        ws, what = run_capture_windows(config, record), "captures"
    elif not desc.get("name") or desc["name"] == "captures":
        raise ValueError("the run does not name a reloadable data set or the captures it came from")
    else:
        ws, what = load_dataset(desc["name"], **desc.get("options", {})), f"data set {desc['name']}"
    if desc.get("x_shape") and list(ws.x.shape) != list(desc["x_shape"]):
        # e.g. a run trained on a selection of the windows (ws.select(...)): its split indices would point
        # at other windows of the reloaded set, training windows among them.
        raise ValueError(f"the run's {what} now gives windows {list(ws.x.shape)}, the run recorded "
                         f"{desc['x_shape']}; the data changed or the run used a selection of it")
    return ws


def capture_target(config: dict, listing: str | Path) -> WindowSet:
    """A new site's captures (a capture list file or a folder per label) cut by the base run's own
    fitted pipeline, labelled with the base run's classes."""
    from edgecsi.edge.pipeline.config import PipelineConfig
    from edgecsi.training.train_captures import capture_windows, read_capture_list, recorded_captures

    if not config.get("pipeline"):
        raise ValueError("the base run carries no signal-pipeline config: its windows cannot be cut from captures")
    # Read and label the site's captures the way the base run's own captures were (if it had any).
    base = recorded_captures(config) or {}
    ws, _ = capture_windows(config["task"], read_capture_list(listing), PipelineConfig.from_dict(config["pipeline"]),
                            labels=config["labels"], refit=False, label_column=base.get("label_column", "label"),
                            read_options=base.get("read_options"))
    return ws


def is_capture_listing(name: str | None) -> bool:
    return bool(name) and name not in DATASETS and Path(name).exists()


def run_split(config: dict, ws: WindowSet):
    """The run's recorded split (its spec, or a published split's name) resolved on ``ws``."""
    from edgecsi.training.split_spec import resolve_split

    return resolve_split(ws, config["split"].get("spec") or config["split"]["name"])


def source_windows(config: dict, ws: WindowSet | None = None) -> tuple[WindowSet, np.ndarray]:
    """The base run's data set and the indices of its training split (what the base learnt from)."""
    if ws is None:
        ws = run_windows(config)
    return ws, np.asarray(run_split(config, ws).train, np.int64)


def adapt(run_dir: str | Path, method: str, target: TargetSpec, *, out_dir: str | Path,
          options: dict[str, Any] | None = None, max_source: int | None = 4000, max_unlabelled: int | None = 4000,
          threads: int | None = None, seed: int = 0, source: WindowSet | None = None,
          target_set: WindowSet | None = None) -> AdaptResult:
    """Adapt the run in ``run_dir`` to ``target`` with ``method`` and write ``out_dir`` (see module doc).

    options       the method's config fields (``FCConfig``, ``SideConfig`` ...), strings converted
    max_source    class-stratified cap on source windows; max_unlabelled: random cap on target windows
    threads       torch threads (default 1)
    source / target_set  already loaded data sets (saves reloading in experiment loops)
    """
    from edgecsi.training.train import dataset_description, evaluate, load_run

    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    m = METHODS[method]
    cfg = configure(m.config, options)
    started = time.time()
    # One thread by default: these are small models on small batches, and on a shared 2-core machine
    # two torch threads ran 10-100x slower than one (benchmarks/adapt.py, docs/results/adaptation.md).
    torch.set_num_threads(threads or 1)
    run_dir, out = Path(run_dir), Path(out_dir)
    if out.resolve() == run_dir.resolve():
        raise ValueError(f"{out}: the adapted run must not overwrite the base run")
    base, config = load_run(run_dir)
    if config["target"] != "class":
        raise ValueError(f"{run_dir}: adaptation needs a classification run (target 'class', got {config['target']!r})")
    base_sha = file_sha256(run_dir / "model.safetensors")

    src_ws, src_idx = source_windows(config, source)
    tgt_options = _target_options(config, target)
    tgt_ws = target_set if target_set is not None else _target_set(config, target, tgt_options, src_ws)
    if list(tgt_ws.labels) != list(config["labels"]):
        raise ValueError(f"target {tgt_ws.name} labels {tgt_ws.labels} differ from the base run's {config['labels']}")
    split = split_target(tgt_ws, target)
    data = adapt_data(src_ws, src_idx, tgt_ws, split, max_source=max_source, max_unlabelled=max_unlabelled, seed=seed)

    t_method = time.time()
    result = m.fn(base, data, cfg, seed=seed)
    method_seconds = time.time() - t_method
    model = result.model.eval()
    test_name = f"{tgt_ws.name}:{target.target}" + (f" minus {target.pool}" if target.pool else "")
    metrics = {"task": config["task"], "target": "class",
               "test": {test_name: evaluate(model, tgt_ws, split.test, "class")},
               "source_only": {test_name: evaluate(base, tgt_ws, split.test, "class")}}
    if len(split.labelled):
        metrics["train"] = evaluate(model, tgt_ws, split.labelled, "class")

    new_config = dict(config)
    new_config["model"] = model.arch()
    new_config["input"] = {**config["input"], "time_axis": model.time_axis}
    new_config["dataset"] = dataset_description(tgt_ws, tgt_options)   # export cuts its held-out windows again
    new_config["split"] = {"name": f"adapt:{test_name}", "spec": None, "n_train": int(len(split.labelled)),
                           "n_val": 0, "val_source": "none", "n_test": {test_name: int(len(split.test))}}
    new_config["training"] = {"method": method, "options": as_dict(cfg), "seed": seed, "threads": torch.get_num_threads(),
                              "torch": torch.__version__, "seconds": round(time.time() - started, 2),
                              "method_seconds": round(method_seconds, 2)}
    new_config["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    _write(out, run_dir, base, model, new_config, metrics, result, target, split, data, base_sha, time.time() - started)
    return AdaptResult(run_dir=out, model=model, config=new_config, metrics=metrics)


def _target_options(config: dict, target: TargetSpec) -> dict:
    """Loader options of the target set: the spec's, else the base run's when it is the same data set."""
    if target.dataset_options is not None:
        return dict(target.dataset_options)
    if is_capture_listing(target.dataset):
        return {}
    same = target.dataset is None or target.dataset == config["dataset"]["name"]
    return dict(config["dataset"].get("options", {})) if same else {}


def _target_set(config: dict, target: TargetSpec, options: dict, src_ws: WindowSet) -> WindowSet:
    if is_capture_listing(target.dataset):
        return capture_target(config, target.dataset)
    name = target.dataset or config["dataset"]["name"]
    if name == src_ws.name and options == dict(config["dataset"].get("options", {})):
        return src_ws
    return load_dataset(name, **options)


def heldout_windows(config: dict, *, max_windows: int = 2000, max_calibration: int = 256,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(calibration x, held-out x, held-out y) of an adapted run: the site's pool calibrates int8,
    the held-out target windows check parity (what ``export_run`` needs for an adapted run)."""
    a = config["adaptation"]
    spec = TargetSpec.from_dict(a["target"])
    ws = run_windows(config)
    split = split_target(ws, spec)
    rng = np.random.default_rng(seed)
    test = split.test if len(split.test) <= max_windows else np.sort(rng.choice(split.test, max_windows, replace=False))
    calib = split.pool if len(split.pool) <= max_calibration else np.sort(
        rng.choice(split.pool, max_calibration, replace=False))
    return ws.x[calib], ws.x[test], ws.y[test].astype(np.int64)


def _write(out: Path, run_dir: Path, base: torch.nn.Module, model: torch.nn.Module, config: dict, metrics: dict,
           result: MethodResult, target: TargetSpec, split: TargetSplit, data, base_sha: str, seconds: float) -> None:
    from safetensors.torch import save_file

    from edgecsi.training.plots import plot_confusion

    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    site = _site_tensors(base, model)
    meta = {"format": "edgecsi-run/1", "model": config["model"]["name"], "base_model_sha256": base_sha}
    save_file(state, str(out / "model.safetensors"), metadata=meta)
    save_file(site, str(out / "site.safetensors"), metadata={**meta, "artefact": "per-site tensors"})
    config["adaptation"] = {
        "format": "edgecsi-adaptation/1",
        "method": config["training"]["method"],
        "options": config["training"]["options"],
        "base_run": str(run_dir.resolve()),
        "base_model_sha256": base_sha,
        "base_model": base.arch(),
        "target": target.as_dict(),
        "labelled_windows": split.labelled.tolist(),
        "n_labelled": int(len(split.labelled)),
        "n_unlabelled_seen": int(len(data.x_unlabelled)),
        "n_source_seen": int(len(data.x_source)),
        "n_test": int(len(split.test)),
        "trainable": result.trainable,
        "notes": result.notes,
        "site_artefact": {"file": "site.safetensors", "bytes": (out / "site.safetensors").stat().st_size,
                          "tensors": sorted(site), "parameters": int(sum(v.numel() for v in site.values())),
                          "sha256": file_sha256(out / "site.safetensors")},
        "seconds": round(seconds, 2),
        "method_seconds": config["training"]["method_seconds"],
    }
    (out / "config.json").write_text(json.dumps(config, indent=2, default=_plain))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=_plain))
    (out / "history.json").write_text(json.dumps(result.history, indent=2))
    for name, m in metrics["test"].items():
        plot_confusion(m["confusion"], config["labels"], out / "confusion.png",
                       title=f"{config['adaptation']['method']} {name} acc {m['accuracy']:.1%}")


def _site_tensors(base: torch.nn.Module, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The adapted model's tensors that are not bit-identical to a base tensor of the same name.

    For a side-tuned model the base lives under ``base.``; its tensors are compared with the base's.
    """
    base_state = base.state_dict()
    out = {}
    for name, value in model.state_dict().items():
        ref_name = name[len("base."):] if name.startswith("base.") else name
        ref = base_state.get(ref_name)
        if ref is None or ref.shape != value.shape or not torch.equal(ref, value):
            out[name] = value.detach().contiguous().clone()
    return out


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
