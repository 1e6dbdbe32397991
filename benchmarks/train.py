"""Training time per epoch of every registered model, on real windows, with 1 and 2 torch threads.

    .venv/bin/python benchmarks/train.py            # prints a table
    .venv/bin/python benchmarks/train.py --epochs 5 --models activity_cnn mlp

Each model trains through ``edgecsi.training.train.train`` (the real code path: AdamW, batch 64) on the
data its task uses; the number is the median wall time of one training pass over the training windows
(``history["epoch_seconds"]``, evaluation excluded). Baseline: fitting the RBF SVM baseline on the same
windows once (``ratio`` = one epoch / one SVM fit). The machine's 2 cores are shared, so numbers vary
with the load; compare ratios, not absolute seconds, between runs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import numpy as np
import torch

from edgecsi.training.datasets import load
from edgecsi.training.models import MODELS

# Model -> (data set, loader options, split spec, extra hp); the data each model is meant for.
WORKLOADS = {
    "activity_cnn": ("esp32s2_temporal_har_geotecinit", {}, "published", {}),
    "cnn_bilstm": ("esp32s2_temporal_har_geotecinit", {}, "published", {}),
    "presence_cnn": ("esp32s2_temporal_har_geotecinit", {}, "published", {}),
    "object_cnn": ("esp32s2_temporal_har_geotecinit", {}, "published", {}),
    "side_tuned": ("esp32s2_temporal_har_geotecinit", {}, "published", {}),
    "cnn1d": ("esp32_wical_crowd_2rooms_3days", {"task": "localization", "rooms": ["small"]}, "published", {}),
    "mlp": ("esp32_wical_crowd_2rooms_3days", {"task": "localization", "rooms": ["small"]}, "published", {}),
    "count_dnn": ("esp32_wical_crowd_2rooms_3days", {"task": "counting", "rooms": ["small"]}, "published", {}),
}
TASK_OF = {"esp32s2_temporal_har_geotecinit": "activity"}


def measure(model: str, epochs: int, threads: int) -> dict:
    from edgecsi.training.train import train

    data, options, split, hp = WORKLOADS[model]
    ws = load(data, **options)
    task = options.get("task", TASK_OF.get(data, "activity"))
    with tempfile.TemporaryDirectory() as tmp:
        r = train(task, ws, split, model, hp=hp, epochs=epochs, seed=0, out_dir=tmp, patience=0,
                  val_fraction=0.0, threads=threads, progress=False)
    secs = r.history["epoch_seconds"]
    return {"epoch_s": float(np.median(secs[1:] if len(secs) > 1 else secs)), "n_train": r.config["split"]["n_train"],
            "params": sum(p.numel() for p in r.model.parameters()), "shape": tuple(ws.x.shape[1:]), "ws": ws,
            "split": split, "target": r.config["target"]}


def svm_fit_seconds(ws, split: str, target: str) -> float:
    from edgecsi.training.baselines import run_baseline
    from edgecsi.training.split_spec import resolve_split

    sp = resolve_split(ws, split)
    start = time.perf_counter()
    # val_fraction=0 -> one fit at the default C, no grid: the cost of one SVM fit.
    run_baseline("svm" if target == "class" else "svr", ws, sp, val_fraction=0.0)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--models", nargs="*", default=[m for m in MODELS if m in WORKLOADS])
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}; epochs timed: {args.epochs} (median of all but the first)")
    print(f"{'model':<14} {'input [t, f]':<13} {'windows':>7} {'params':>8} {'1 thread s/ep':>14} "
          f"{'2 threads s/ep':>15} {'SVM fit s':>10} {'epoch/SVM':>10}")
    svm_cache: dict = {}
    for model in args.models:
        one = measure(model, args.epochs, 1)
        two = measure(model, args.epochs, 2)
        key = (WORKLOADS[model][0], str(WORKLOADS[model][1]), one["target"])
        if key not in svm_cache:
            svm_cache[key] = svm_fit_seconds(one["ws"], one["split"], one["target"])
        svm = svm_cache[key]
        print(f"{model:<14} {str(list(one['shape'])):<13} {one['n_train']:>7} {one['params']:>8} "
              f"{one['epoch_s']:>14.3f} {two['epoch_s']:>15.3f} {svm:>10.2f} {one['epoch_s'] / svm:>10.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
