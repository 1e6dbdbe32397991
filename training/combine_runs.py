"""Average trained runs into one run: ``edgecsi combine RUN RUN ... --out RUN``.

The members may be different models (e.g. a ``motion_cnn`` on centred CSI and one on the raw levels,
the best Intel 5300 leave-one-person-out result in docs/results/training.md). They must have been
trained for the same task, labels, input, signal pipeline, data and split, so the averaged model
is judged on the same held-out windows and ``edgecsi export`` treats it like any other run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Sequence

from edgecsi.training.models import combine
from edgecsi.training.train import RunResult, evaluate, load_run, plot_confusions, save_weights

#: What every member must share (config.json keys; ``input`` without the model's own ``time_axis``).
_SAME = ("task", "target", "labels", "outputs", "input", "pipeline", "dataset", "split", "class_coords")


def _shared(config: dict, key: str):
    value = config.get(key)
    return {k: v for k, v in value.items() if k != "time_axis"} if key == "input" and isinstance(value, dict) else value


def combine_runs(run_dirs: Sequence[str | Path], out_dir: str | Path, *, evaluate_test: bool = True) -> RunResult:
    """One run whose model outputs the mean of the runs' models (logits / values), written to ``out_dir``.

    ``evaluate_test``: reload the runs' data and split and measure the combined model on every test set
    (the members' own test metrics are listed next to it); off, or when the data cannot be reloaded,
    metrics.json says why instead."""
    from edgecsi.training.adapt.run import file_sha256

    dirs = [Path(d) for d in run_dirs]
    out = Path(out_dir)
    if len(dirs) < 2:
        raise ValueError("combine needs at least two runs")
    if any(out.resolve() == d.resolve() for d in dirs) or (out / "config.json").exists():
        raise ValueError(f"{out}: is one of the runs or already holds a run; write the combined run elsewhere")
    loaded = [load_run(d) for d in dirs]
    first = loaded[0][1]
    members = []
    for d, (_, config) in zip(dirs, loaded):
        if config.get("adaptation"):
            raise ValueError(f"{d}: an adapted run; combine the base runs, then adapt the combined run")
        for key in _SAME:
            if _shared(config, key) != _shared(first, key):
                raise ValueError(f"{d}: its {key!r} differs from {dirs[0]}'s; only runs trained for the same task, "
                                 f"data, split and pipeline can be combined")
        try:
            m = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").exists() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"{d / 'metrics.json'}: not JSON ({exc})") from exc
        members.append({"run": str(d.resolve()), "model": config["model"]["name"], "hp": config["model"].get("hp", {}),
                        "seed": config.get("training", {}).get("seed"),
                        "model_sha256": file_sha256(d / "model.safetensors"), "test": m.get("test", {})})
    model = combine([m for m, _ in loaded])
    config = {**first, "model": model.arch(), "input": {**first["input"], "time_axis": model.time_axis},
              "training": {"combined_from": members, "best_epoch": None,
                           "how": "outputs averaged (edgecsi.training.models.combine)"},
              "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    metrics: dict = {"task": first["task"], "target": first["target"], "test": {}, "members": members}
    if evaluate_test:
        try:
            metrics["test"] = _test_metrics(model, first)
        except (ValueError, FileNotFoundError, OSError) as exc:
            metrics["not_evaluated"] = f"could not reload the runs' data: {exc}"
    else:
        metrics["not_evaluated"] = "evaluation switched off"

    out.mkdir(parents=True, exist_ok=True)
    save_weights(out, model)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if first["target"] == "class":
        plot_confusions(out, metrics["test"], first["labels"], f"combined x{len(dirs)}")
    return RunResult(run_dir=out, model=model, config=config, metrics=metrics)


def _test_metrics(model, config: dict) -> dict:
    import numpy as np

    from edgecsi.training.adapt.run import run_split, run_windows
    from edgecsi.training.datasets import DatasetNotFound

    try:
        ws = run_windows(config)
    except DatasetNotFound as exc:
        raise ValueError(str(exc)) from exc
    sp = run_split(config, ws)
    recorded = config["split"].get("n_test") or {}
    got = {name: int(len(idx)) for name, idx in sp.tests().items()}
    if recorded and got != recorded:
        raise ValueError(f"split {sp.name!r} now gives test sets {got}, the runs recorded {recorded}")
    coords = np.asarray(config["class_coords"], np.float64) if config.get("class_coords") else None
    return {name: evaluate(model, ws, idx, config["target"], coords) for name, idx in sp.tests().items()}
