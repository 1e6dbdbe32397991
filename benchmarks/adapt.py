"""Time per adaptation method (2 cores) and the gateway calibration path (1 core).

    .venv/bin/python benchmarks/adapt.py [--run RUN_DIR] [--work /tmp/adapt-bench] [--repeats 20]

Case: ESP32-S2, source D1T (published split) -> target D4, 5 labelled windows per class from the
sequence D4/e01_rx_tx, held-out = D4's other three sequences. Each method runs with its default options
(300 steps) and torch on 2 threads (``--threads 1,2`` for both); the table prints the method's training
seconds, the ratio to FC fine-tuning (the cheapest torch method), the total with loading / evaluation /
writing, and held-out accuracy next to source-only.

Gateway calibration: a child process pinned to ONE core (taskset when available, BLAS/OpenMP threads 1)
imports only numpy + onnxruntime, embeds the 5-per-class windows with the exported ONNX model and fits
the numpy head (logistic, blend weight cross-validated); median of ``--repeats`` runs against the 2 s
budget. The machine is shared: numbers are wall-clock and include whatever else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DATASET = "esp32s2_temporal_har_geotecinit"
TARGET, POOL = "day=D4", "sequence=D4/e01_rx_tx"
BUDGET_S = 2.0

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import onnxruntime
from edgecsi.edge.calibration import fit_site_head
from edgecsi.edge.runtime import make_session, run_model
from edgecsi.edge.calibration import softmax
t_import = time.perf_counter() - t0
d = np.load(sys.argv[1])
x, y, labels = d["x"], d["y"], [str(s) for s in d["labels"]]
session = make_session(sys.argv[2], threads=1)
repeats = int(sys.argv[3])
embed_s, fit_s = [], []
for _ in range(repeats):
    t = time.perf_counter()
    out = run_model(session, x)
    embed_s.append(time.perf_counter() - t)
    t = time.perf_counter()
    head = fit_site_head(out["embedding"], y, labels, method="logistic", p_base=softmax(out["logits"]))
    fit_s.append(time.perf_counter() - t)
bad = [m for m in ("torch", "scipy", "sklearn") if m in sys.modules]
print(json.dumps({"import_s": t_import, "embed_s": float(np.median(embed_s)), "fit_s": float(np.median(fit_s)),
                  "fit_max_s": float(np.max(fit_s)), "alpha": head.alpha, "n_windows": int(len(y)),
                  "embed_dim": int(out["embedding"].shape[1]), "heavy_modules": bad}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, default=None, help="a source run of the ESP32-S2 set (trained if absent)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "adapt-bench")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--methods", default="fc,side,ccsa,lmmd,aad")
    ap.add_argument("--threads", type=lambda t: [int(v) for v in t.split(",")], default=[2],
                    help="torch thread counts to time, e.g. 2 or 1,2")
    args = ap.parse_args()

    import torch

    from edgecsi.export.onnx_export import export_onnx
    from edgecsi.training.adapt import TargetSpec, adapt, split_target
    from edgecsi.training.datasets import load
    from edgecsi.training.train import load_run, train

    ws = load(DATASET)
    run = args.run or args.work / "source"
    if not (run / "config.json").exists():
        train("activity", DATASET, "published", "activity_cnn", epochs=40, val_group="sequence", seed=0,
              out_dir=run, progress=False)
    spec = TargetSpec(None, TARGET, POOL, 5, seed=0)

    print(f"adaptation, ESP32-S2 D1T -> D4, 5 labelled windows per class from {POOL}; torch {torch.__version__}, "
          f"{os.cpu_count()} cores visible (shared machine); 'train s' = the method itself, 'total s' = with "
          f"loading the run, evaluation and writing the run directory")
    for threads in args.threads:
        print(f"\n{threads} thread(s)")
        print(f"{'method':8s} {'train s':>8s} {'x fc':>6s} {'total s':>8s} {'accuracy':>9s} {'source-only':>12s} "
              f"{'artefact B':>11s}")
        rows = {}
        for method in args.methods.split(","):
            t = time.perf_counter()
            res = adapt(run, method, spec, out_dir=args.work / "adapted" / method, threads=threads, source=ws,
                        target_set=ws)
            total = time.perf_counter() - t
            seconds = res.config["adaptation"]["method_seconds"]
            rows[method] = seconds
            ratio = seconds / rows["fc"] if rows.get("fc") else float("nan")
            print(f"{method:8s} {seconds:8.2f} {ratio:6.1f} {total:8.2f} {res.accuracy:9.1%} "
                  f"{res.source_only_accuracy:12.1%} {res.config['adaptation']['site_artefact']['bytes']:11d}", flush=True)

    # Gateway calibration on one core: ONNX embeddings + numpy head.
    model, config = load_run(run)
    onnx_path = export_onnx(model, n_time=int(config["input"]["n_time"]), n_features=int(config["input"]["n_features"]),
                            path=args.work / "model.fp32.onnx", dynamic_time=config["input"]["time_axis"] == "any")
    sp = split_target(ws, spec)
    data = args.work / "calib.npz"
    np.savez(data, x=ws.x[sp.labelled], y=ws.y[sp.labelled], labels=np.array(ws.labels))
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cmd = [sys.executable, "-c", CHILD, str(data), str(onnx_path), str(args.repeats)]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    total = r["embed_s"] + r["fit_s"]
    print(f"\ngateway calibration on 1 core ({'taskset -c 0' if shutil.which('taskset') else 'threads=1'}), "
          f"{r['n_windows']} windows (5 per labelled class), embed_dim {r['embed_dim']}, median of {args.repeats}:")
    print(f"  import numpy+onnxruntime+calibration {r['import_s']:.3f} s; ONNX embeddings {r['embed_s'] * 1000:.1f} ms; "
          f"fit (logistic + CV blend weight) {r['fit_s'] * 1000:.1f} ms (max {r['fit_max_s'] * 1000:.1f} ms)")
    print(f"  embed + fit {total:.3f} s = {total / BUDGET_S:.3f} x the {BUDGET_S:.0f} s budget; blend a={r['alpha']}; "
          f"heavy modules loaded: {r['heavy_modules'] or 'none'}")


if __name__ == "__main__":
    main()
