"""Train one model on one split of one data set and write a self-describing run directory.

    from edgecsi.training.train import train, load_run
    result = train("activity", "esp32s2_temporal_har_geotecinit", "published", "activity_cnn",
                   epochs=40, seed=0, out_dir="runs/har")
    model, config = load_run("runs/har")

RUN-DIRECTORY CONTRACT (the export code depends on it; change only additively)
-----------------------------------------------------------------------------
``<run_dir>/model.safetensors``  the model's full ``state_dict`` (weights, BatchNorm statistics and the
                                 ``input_mean``/``input_std`` buffers), written with safetensors.
                                 Never a pickle.
``<run_dir>/config.json``        ``format``: "edgecsi-run/1"
                                 ``task``: activity | localization | counting | presence | concealed
                                 ``target``: "class" (logits over ``labels``) | "value" (one number,
                                     e.g. people count) | "coords" (x, y in metres)
                                 ``model``: ``CSIModel.arch()`` = {name, n_features, n_time, n_outputs,
                                     hp, embed_dim, time_axis}; ``build_from_arch(config["model"])``
                                     rebuilds the architecture
                                 ``labels``: class names (index = output column) or [] for regression
                                 ``outputs``: {"kind": "logits" | "values", "names": [...]}
                                 ``input``: {"layout": "x[batch, time, feature] float32 ...",
                                     "n_time", "n_features", "dtype", "features" (what a feature is),
                                     "time_axis": "fixed" | "any"}
                                 ``normalisation``: per-feature ``input_mean``/``input_std`` (already
                                     inside the model: feed it raw pipeline output) and, for regression,
                                     ``target_mean``/``target_std`` (already folded into ``head``: the
                                     model outputs real units)
                                 ``pipeline``: the signal-pipeline config the windows were made with
                                     (``edgecsi.edge.pipeline`` config dict) or null for data-set windows
                                 ``class_coords``: [class][x, y] metres for localization classes, or null
                                 ``dataset`` {name, options, n_windows, x_shape, license}
                                 ``split`` {name, spec (the string given, or null for a Split object),
                                     n_train, n_val, val_source, n_test}
                                 ``training`` (epochs, epochs_run, best_epoch, seed, lr, augment, ...)
``<run_dir>/metrics.json``       {"test": {test name: metrics}, "val": metrics, "train": metrics, ...};
                                 metrics as in ``edgecsi.training.metrics`` -- held-out only under "test"
``<run_dir>/confusion.png``      confusion matrix of the main test set (classification); one
                                 ``confusion_<test>.png`` per extra test set
``<run_dir>/learning_curve.png`` loss per epoch (train, validation) and the validation metric
``<run_dir>/history.json``       the per-epoch numbers behind the learning curve (train_loss, val_loss,
                                 val_metric, epoch_seconds)

``load_run(run_dir) -> (model, config)``: the model in eval mode with its weights, ``config`` the dict
above. The model takes ``x[batch, time, feature]`` float32 and returns ``[batch, n_outputs]``;
``model.embed(x)`` gives the embedding before ``model.head``.

Validation (early stopping, best-epoch choice) only ever uses TRAINING data: the split's own ``val``
part when it has one, else a held-out part of ``split.train`` (whole groups of ``val_group`` when given,
else a class-stratified random fraction). Test sets are evaluated once, after training.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgecsi.training.augment import Augment
from edgecsi.training.datasets import DATASETS, WindowSet
from edgecsi.training.datasets import load as load_dataset
from edgecsi.training.datasets.splits import Split
from edgecsi.training.metrics import classification_metrics, coords_metrics, headline, value_metrics
from edgecsi.training.models import DEFAULT_MODEL, INPUT_LAYOUT, CSIModel, build_from_arch, build_model
from edgecsi.training.holdout import (class_coords, resolve_target, stratified_subsample, targets, validation_part,
                                     with_known_coords)
from edgecsi.training.split_spec import resolve_split

RUN_FORMAT = "edgecsi-run/1"


@dataclass
class RunResult:
    """What ``train`` returns; everything in it is also in ``run_dir``."""

    run_dir: Path
    model: CSIModel
    config: dict
    metrics: dict
    history: dict = field(default_factory=dict)

    @property
    def test_metrics(self) -> dict:
        """Metrics of the main (first) test set."""
        return next(iter(self.metrics["test"].values()))

    def summary(self) -> str:
        combined = self.config["training"].get("combined_from")
        how = f"{len(combined)} runs averaged" if combined else f"best epoch {self.config['training']['best_epoch']}"
        lines = [f"{self.run_dir}: {self.config['model']['name']} on {self.config['dataset']['name']} "
                 f"[{self.config['split']['name']}], {how}"]
        for name, m in self.metrics["test"].items():
            lines.append(f"  test {name}: {headline(m)}")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
def train(task: str, dataset: "str | WindowSet", split: "str | Split | None", model: str | None = None, *,
          epochs: int = 30, seed: int = 0, out_dir: str | Path, hp: dict | None = None,
          target: str = "auto", batch_size: int = 64, lr: float = 1e-3, weight_decay: float = 1e-4,
          patience: int = 8, val_fraction: float = 0.15, val_group: str | None = None,
          max_train_windows: int | None = None, dataset_options: dict | None = None,
          augment: "dict | bool | None" = None, pipeline_config: dict | None = None, threads: int | None = None,
          progress: bool = True) -> RunResult:
    """Train ``model`` (a registry name; None = the task's default) for ``task`` on ``dataset``.

    dataset            a data-set id (loaded with ``dataset_options``) or a ready :class:`WindowSet`
    split              a :class:`Split`, a spec string (see ``split_spec``), or None = "published"
    target             "class", "value" (regress ``y``), "coords" (regress ``ws.coords``), or "auto"
                       (class unless the set is a regression set)
    hp                 model hyper-parameters (override the family defaults)
    val_group          domain column whose whole groups are held out for validation (e.g. "sequence"
                       so overlapping windows of one recording never sit on both sides)
    max_train_windows  class-stratified random subsample of the training part (large fingerprint sets)
    augment            training-time augmentation (``edgecsi.training.augment.Augment`` fields, True =
                       defaults for CSI streams)
    threads            torch threads (default 1: on shared cores more threads were far slower)
    pipeline_config    saved verbatim in config.json (windows made from raw captures)
    Returns a :class:`RunResult`; writes the run directory described at the top of this module.
    """
    started = time.time()
    # One thread by default: on shared cores two threads ran an epoch 15x slower than one (spin-waits).
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads or 1)
    try:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)

        ws, dataset_desc = _resolve_dataset(task, dataset, dataset_options)
        sp = resolve_split(ws, split)
        sp.check_disjoint()
        target = resolve_target(ws, target)
        train_idx, val_idx, val_source = validation_part(ws, sp, val_fraction, val_group, rng)
        if target == "coords":
            train_idx, val_idx = with_known_coords(ws, train_idx), with_known_coords(ws, val_idx)
        if max_train_windows and len(train_idx) > max_train_windows:
            train_idx = stratified_subsample(ws, train_idx, max_train_windows, rng, target)
        if len(train_idx) == 0:
            raise ValueError(f"{ws.name} [{sp.name}]: no training windows")

        x_all = ws.x
        y_all = targets(ws, target)
        n_outputs = ws.n_classes if target == "class" else (1 if target == "value" else 2)
        name = model or DEFAULT_MODEL.get(task)
        if name is None:
            raise ValueError(f"no default model for task {task!r}; name one of the registry")
        net = build_model(name, n_features=ws.x.shape[2], n_time=ws.x.shape[1], n_outputs=n_outputs, **(hp or {}))

        mean, std = _input_stats(x_all, train_idx)
        net.set_input_stats(mean, std)
        t_mean = t_std = None
        if target != "class":
            t = y_all[train_idx].reshape(len(train_idx), -1)
            t_mean, t_std = t.mean(axis=0), np.maximum(t.std(axis=0), 1e-6)

        aug = Augment.parse(augment)
        history, best_epoch = _fit(net, x_all, y_all, train_idx, val_idx, target=target, t_mean=t_mean, t_std=t_std,
                                   epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay,
                                   patience=patience, rng=rng, progress=progress, desc=f"{name} {ws.name}",
                                   augment=aug, seed=seed)
        if target != "class":
            _fold_target_scale(net.head, t_mean, t_std)
        net.eval()

        rp_coords = class_coords(ws, train_idx) if target == "class" else None
        metrics: dict[str, Any] = {"task": task, "target": target, "test": {}}
        for test_name, idx in sp.tests().items():
            metrics["test"][test_name] = evaluate(net, ws, idx, target, rp_coords)
        if len(val_idx):
            metrics["val"] = evaluate(net, ws, val_idx, target, rp_coords)
        metrics["train"] = evaluate(net, ws, train_idx, target, rp_coords)
        metrics["best_epoch"] = best_epoch
        metrics["epochs_run"] = len(history["train_loss"])

        config = {
            "format": RUN_FORMAT,
            "task": task,
            "target": target,
            "model": net.arch(),
            "labels": list(ws.labels) if target == "class" else [],
            "outputs": {"kind": "logits" if target == "class" else "values",
                        "names": _output_names(task, target, ws.labels)},
            "input": {"layout": INPUT_LAYOUT, "n_time": int(ws.x.shape[1]), "n_features": int(ws.x.shape[2]),
                      "dtype": "float32", "features": ws.meta.get("features", ""), "time_axis": net.time_axis},
            "normalisation": {"input_mean": mean.tolist(), "input_std": std.tolist(), "inside_model": True,
                              "target_mean": None if t_mean is None else t_mean.tolist(),
                              "target_std": None if t_std is None else t_std.tolist(),
                              "target_folded_into_head": t_mean is not None},
            "pipeline": pipeline_config,
            "class_coords": None if rp_coords is None else rp_coords.tolist(),
            "dataset": dataset_desc,
            "split": {"name": sp.name, "spec": split if isinstance(split, str) or split is None else None,
                      "n_train": int(len(train_idx)), "n_val": int(len(val_idx)), "val_source": val_source,
                      "n_test": {k: int(len(v)) for k, v in sp.tests().items()}},
            "training": {"epochs": epochs, "epochs_run": len(history["train_loss"]), "best_epoch": best_epoch,
                         "seed": seed, "batch_size": batch_size, "lr": lr, "weight_decay": weight_decay,
                         "patience": patience, "val_fraction": val_fraction, "val_group": val_group,
                         "max_train_windows": max_train_windows, "optimizer": "AdamW + cosine",
                         "augment": None if aug is None else aug.as_dict(),
                         "loss": "cross-entropy" if target == "class" else "smooth-L1 on standardised targets",
                         "torch": torch.__version__, "threads": torch.get_num_threads(),
                         "seconds": round(time.time() - started, 2)},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        _write_run(out, net, config, metrics, history, ws, sp)
        return RunResult(run_dir=out, model=net, config=config, metrics=metrics, history=history)
    finally:
        torch.set_num_threads(previous_threads)   # leave the caller's setting as it was


def load_run(run_dir: str | Path) -> tuple[CSIModel, dict]:
    """Rebuild the model of a run directory (eval mode, weights loaded) and return it with its config."""
    from safetensors.torch import load_file

    run_dir = Path(run_dir)
    config = json.loads((run_dir / "config.json").read_text())
    if config.get("format") != RUN_FORMAT:
        raise ValueError(f"{run_dir / 'config.json'}: not an edgecsi run (format {config.get('format')!r})")
    model = build_from_arch(config["model"])
    state = load_file(str(run_dir / "model.safetensors"))
    model.load_state_dict(state, strict=True)
    return model.eval(), config


# ---------------------------------------------------------------------------------------------
def predict(model: nn.Module, x: np.ndarray, *, batch: int = 4096) -> np.ndarray:
    """Model outputs for ``x[window, time, feature]`` in eval mode, in chunks (bounded memory)."""
    model.eval()
    outs = []
    with torch.inference_mode():
        for i in range(0, len(x), batch):
            outs.append(model(torch.from_numpy(np.ascontiguousarray(x[i:i + batch], dtype=np.float32))).numpy())
    return np.concatenate(outs) if outs else np.zeros((0, getattr(model, "n_outputs", 1)), np.float32)


def evaluate(model: nn.Module, ws: WindowSet, idx: np.ndarray, target: str,
             rp_coords: np.ndarray | None = None) -> dict:
    """Metrics of ``model`` on windows ``idx`` of ``ws`` (see ``edgecsi.training.metrics``)."""
    out = predict(model, ws.x[idx])
    if target == "class":
        true_coords = ws.coords[idx] if (rp_coords is not None and ws.coords is not None) else None
        return classification_metrics(ws.y[idx], out.argmax(axis=1), ws.n_classes, rp_coords, true_coords)
    if target == "value":
        return value_metrics(ws.y[idx], out[:, 0])
    return coords_metrics(ws.coords[idx], out)


# ---------------------------------------------------------------------------------------------
def _resolve_dataset(task: str, dataset, options: dict | None) -> tuple[WindowSet, dict]:
    options = dict(options or {})
    if isinstance(dataset, WindowSet):
        ws = dataset
    else:
        info = DATASETS.get(dataset)
        if info is not None and len(info.tasks) > 1 and "task" not in options:
            options["task"] = task
        ws = load_dataset(dataset, **options)
    if ws.task != task:
        raise ValueError(f"{ws.name} holds task {ws.task!r}, not {task!r}")
    return ws, dataset_description(ws, options)


def dataset_description(ws: WindowSet, options: dict) -> dict:
    """``config["dataset"]`` of a run on ``ws``: what reloads it (name and loader options, or the captures
    it was cut from) and what the reload must give back (``x_shape``)."""
    desc = {"name": ws.name, "options": options, "n_windows": len(ws),
            "x_shape": list(ws.x.shape), "license": ws.meta.get("license", "")}
    if isinstance(ws.meta.get("captures"), dict):  # windows cut from captures: how to cut them again (export)
        desc["captures"] = ws.meta["captures"]
    return desc


def _input_stats(x: np.ndarray, idx: np.ndarray, max_windows: int = 20000) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std over windows and time of the training part (float64 accumulation)."""
    if len(idx) > max_windows:
        idx = np.sort(np.random.default_rng(0).choice(idx, max_windows, replace=False))
    sample = idx
    flat = x[sample].reshape(-1, x.shape[2]).astype(np.float64)
    return flat.mean(axis=0), np.maximum(flat.std(axis=0), 1e-6)


def _output_names(task: str, target: str, labels: list[str]) -> list[str]:
    if target == "class":
        return list(labels)
    if target == "value":
        return ["count"] if task == "counting" else ["value"]
    return ["x_m", "y_m"]


def _fold_target_scale(head: nn.Linear, mean: np.ndarray, std: np.ndarray) -> None:
    """head(z)*std + mean folded into the Linear, so the saved/exported model outputs real units."""
    with torch.no_grad():
        s = torch.as_tensor(std, dtype=torch.float32)
        m = torch.as_tensor(mean, dtype=torch.float32)
        head.weight.mul_(s[:, None])
        head.bias.mul_(s).add_(m)


def _fit(net: CSIModel, x: np.ndarray, y: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray, *, target: str,
         t_mean, t_std, epochs: int, batch_size: int, lr: float, weight_decay: float, patience: int,
         rng: np.random.Generator, progress: bool, desc: str, augment: "Augment | None" = None,
         seed: int = 0) -> tuple[dict, int]:
    from tqdm.auto import tqdm

    classify = target == "class"
    loss_fn = nn.CrossEntropyLoss() if classify else nn.SmoothL1Loss()
    yt = torch.from_numpy(y if classify else ((y - t_mean) / t_std).astype(np.float32))
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)) if x.dtype != np.float32 else torch.from_numpy(x)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs))
    history = {"train_loss": [], "val_loss": [], "val_metric": [], "metric": "accuracy" if classify else "MAE",
               "epoch_seconds": []}
    best = (math.inf, 0)
    best_state = None
    stale = 0
    gen = torch.Generator().manual_seed(seed)
    bar = tqdm(range(1, epochs + 1), desc=desc, unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        net.train()
        tick = time.perf_counter()
        order = rng.permutation(train_idx)
        total, count = 0.0, 0
        for i in range(0, len(order), batch_size):
            b = order[i:i + batch_size]
            if len(b) < 2:                        # BatchNorm needs 2 windows in training mode
                continue
            b = torch.from_numpy(b)
            opt.zero_grad(set_to_none=True)
            xb = xt[b] if augment is None else augment(xt[b], net.input_std, gen)
            loss = loss_fn(net(xb), yt[b])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(b)
            count += len(b)
        sched.step()
        history["epoch_seconds"].append(round(time.perf_counter() - tick, 4))   # the training pass only
        history["train_loss"].append(total / max(count, 1))
        if len(val_idx):
            v_loss, v_metric = _val_scores(net, xt, yt, val_idx, loss_fn, classify, t_std)
            history["val_loss"].append(v_loss)
            history["val_metric"].append(v_metric)
            if v_loss < best[0] - 1e-6:
                best, stale = (v_loss, epoch), 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                stale += 1
            bar.set_postfix(loss=f"{history['train_loss'][-1]:.3f}", val=f"{v_loss:.3f}", metric=f"{v_metric:.3f}")
            if patience and stale >= patience:
                break
        else:
            best = (history["train_loss"][-1], epoch)
            bar.set_postfix(loss=f"{history['train_loss'][-1]:.3f}")
    bar.close()
    if best_state is not None:
        net.load_state_dict(best_state)
    return history, best[1]


def _val_scores(net, xt, yt, idx, loss_fn, classify: bool, t_std) -> tuple[float, float]:
    net.eval()
    with torch.inference_mode():
        losses, hits, abs_err, n = 0.0, 0.0, 0.0, 0
        for i in range(0, len(idx), 4096):
            b = torch.from_numpy(idx[i:i + 4096])
            out = net(xt[b])
            losses += float(loss_fn(out, yt[b])) * len(b)
            if classify:
                hits += float((out.argmax(1) == yt[b]).sum())
            else:
                abs_err += float(((out - yt[b]).abs() * torch.as_tensor(t_std, dtype=torch.float32)).mean(1).sum())
            n += len(b)
    return losses / n, (hits if classify else abs_err) / n


# ---------------------------------------------------------------------------------------------
def _write_run(out: Path, net: CSIModel, config: dict, metrics: dict, history: dict, ws: WindowSet, sp: Split) -> None:
    from edgecsi.training.plots import plot_learning_curve

    save_weights(out, net)
    (out / "config.json").write_text(json.dumps(config, indent=2, default=_plain))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=_plain))
    (out / "history.json").write_text(json.dumps(history, indent=2))
    plot_learning_curve(history, out / "learning_curve.png", metrics.get("best_epoch"), history.get("metric", ""))
    if config["target"] == "class":
        plot_confusions(out, metrics["test"], ws.labels, ws.name)


def save_weights(out: Path, net: CSIModel) -> None:
    """``out/model.safetensors``, what :func:`load_run` reads back."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(out / "model.safetensors"), metadata={"format": RUN_FORMAT, "model": net.name})


def plot_confusions(out: Path, tests: dict, labels, what: str) -> None:
    """One confusion-matrix PNG per test set (``confusion.png`` for the first)."""
    from edgecsi.training.plots import plot_confusion

    for i, (name, m) in enumerate(tests.items()):
        fname = "confusion.png" if i == 0 else f"confusion_{_safe(name)}.png"
        plot_confusion(m["confusion"], labels, out / fname, title=f"{what} [{name}] acc {m['accuracy']:.1%}")


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
