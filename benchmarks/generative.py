"""Generative tools on the real data sets: training time (this machine's cores), and each method against its
baseline -- the table in docs/results/generative.md.

    .venv/bin/python benchmarks/generative.py [--out docs/results/generative.md] [--quick] [--only repair,aae,...]

Prints, per method, the seconds its training took (torch threads as given, default 1: on the shared 2-core
machine more threads were slower) and the metric against the baseline; with --out writes the markdown table
plus the per-method details. Per-window repair cost on the gateway path (onnxruntime, 1 thread, batch 1)
is printed against the numpy baselines.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

PARTS = ("repair", "clustering", "augmentation", "bidirectional", "equivariance")


def _repair_latency(model, y: np.ndarray, work: Path) -> dict[str, float]:
    """Median ms per window, batch 1: exported G in onnxruntime vs the numpy baselines."""
    from edgecsi.edge.repair import OnnxRepair
    from edgecsi.training.generative.classical import hampel_repair, interpolate_and_normalise
    from edgecsi.training.generative.repair_onnx import export_repair_onnx

    path = export_repair_onnx(model, work / "repair.onnx", n_time=y.shape[1])
    ort_repair = OnnxRepair(path)
    out = {}
    for name, fn in (("UNIR G, onnxruntime", ort_repair), ("interpolate+gain, numpy", interpolate_and_normalise),
                     ("hampel, numpy", hampel_repair)):
        times = []
        for i in range(min(len(y), 100)):
            t = time.perf_counter()
            fn(y[i:i + 1])
            times.append(time.perf_counter() - t)
        out[name] = 1000 * float(np.median(times))
    out["onnx_bytes"] = float(path.stat().st_size)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, help="write the markdown results here")
    ap.add_argument("--work", type=Path, help="working directory (default: a temporary one)")
    ap.add_argument("--only", default=",".join(PARTS), help=f"comma-separated subset of {PARTS}")
    ap.add_argument("--quick", action="store_true", help="short runs (a smoke test of this script)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--unir-steps", type=int, default=300,
                    help="UNIR training steps (the held-out reconstruction term picks the checkpoint)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    from edgecsi.training.datasets import load
    from edgecsi.training.generative import report
    from edgecsi.training.generative.aae import AAEConfig
    from edgecsi.training.generative.unir import UNIRConfig

    torch.set_num_threads(args.threads)
    parts = [p for p in args.only.split(",") if p]
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"unknown parts {sorted(unknown)}; known: {PARTS}")
    q = args.quick
    work = args.work or Path(tempfile.mkdtemp(prefix="edgecsi-generative-"))
    work.mkdir(parents=True, exist_ok=True)
    ws = load(report.ESP32)
    rows: list[report.Row] = []
    details: dict = {}
    timings: dict[str, float] = {}
    machine = (f"{platform.machine()}, {os.cpu_count()} cores, load avg {os.getloadavg()[0]:.1f}, "
               f"torch {torch.__version__}, {args.threads} torch thread(s)")
    print(machine)

    if "repair" in parts:
        steps = 60 if q else args.unir_steps
        out = report.repair_experiment(work / "repair", unir=UNIRConfig(steps=steps), seed=args.seed, ws=ws,
                                       classifier_epochs=5 if q else 30)
        rows += out.rows
        details["repair"] = out.errors
        timings[f"UNIR repair ({steps} steps, batch 64)"] = out.unir_seconds
        print(f"UNIR: {steps} steps in {out.unir_seconds:.1f} s")
        for name, e in out.errors.items():
            print(f"  {name:52s} rel.err all {e['all']:.3f}  missing {e['missing']:.3f}  accuracy {e['accuracy']:.3f}")
        from edgecsi.training.generative.corruption import CorruptionConfig, corrupt
        from edgecsi.training.generative.unir import train_unir

        y_lat, _ = corrupt(ws.x[:100], CorruptionConfig(), seed=7)
        g = train_unir(y_lat[:32], CorruptionConfig(), UNIRConfig(steps=0)).model
        lat = _repair_latency(g, y_lat, work)
        details["repair_latency_ms"] = lat
        for name, v in lat.items():
            print(f"  {name}: {v:.3f} {'bytes' if name == 'onnx_bytes' else 'ms/window'}")

    if "clustering" in parts:
        started = time.time()
        cfg = AAEConfig(steps=100 if q else 600, latent=16, pool="mean")
        got = report.clustering_experiment(("D2",) if q else ("D2", "D3", "D4"), aae=cfg, seed=args.seed, ws=ws)
        rows += got
        timings[f"AAE clustering ({cfg.steps} steps per site, both variants, all sites)"] = time.time() - started
        for r in got:
            print(f"  {r.method} {r.dataset} {r.metric}: {r.result:.3f} ({r.baseline}) {r.seconds:.1f} s")

    if "augmentation" in parts:
        got = report.augmentation_experiment(per_class=5, synthetic_per_class=20, seed=args.seed, ws=ws,
                                             aae=AAEConfig(steps=100 if q else 800, latent=2, n_classes=ws.n_classes),
                                             epochs=10 if q else 60)
        rows += got
        timings["conditional AAE (augmentation)"] = got[0].seconds or 0.0
        for r in got:
            print(f"  {r.method}: {r.result:.3f} ({r.baseline}) {r.note}")

    if "bidirectional" in parts:
        started = time.time()
        steps = 40 if q else 500
        got = report.bidirectional_experiment(work / "bidir", ("D3",) if q else ("D2", "D3", "D4"), steps=steps,
                                              classifier_epochs=5 if q else 30, seed=args.seed, ws=ws)
        rows += got
        for r in got:
            timings[f"bidirectional {r.dataset} ({steps} steps)"] = r.seconds or 0.0
            print(f"  {r.dataset}: {r.result:.3f} ({r.baseline}; {r.note}) {r.seconds:.1f} s")
        print(f"  bidirectional total {time.time() - started:.1f} s (with controls)")

    if "equivariance" in parts:
        got = report.equivariance_experiment(seed=args.seed, ws=ws)
        rows += got
        for r in got:
            print(f"  {r.metric}: blurpool {r.result:.4f} vs {r.baseline}")

    print("\ntraining time, seconds on this machine:")
    for name, secs in timings.items():
        print(f"  {name:70s} {secs:8.1f}")
    table = report.markdown_table(rows)
    print("\n" + table)
    if args.out:
        write_markdown(args.out, table, details, timings, machine)
        print(f"\nwrote {args.out}")


def write_markdown(path: Path, table: str, details: dict, timings: dict, machine: str) -> None:
    lines = ["# Generative tools: results on real data", "",
             f"Written by `benchmarks/generative.py` ({time.strftime('%Y-%m-%d')}; {machine}).", "",
             table, "", "## Training time", "", "| run | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in timings.items()]
    if "repair" in details:
        lines += ["", "## Repair, every method (ESP32-S2 D1E, corrupted)", "",
                  "| method | rel. error, all | rel. error, missing | activity accuracy |", "|---|---|---|---|"]
        lines += [f"| {k} | {v['all']:.3f} | {v['missing']:.3f} | {v['accuracy']:.3f} |"
                  for k, v in details["repair"].items()]
    if "repair_latency_ms" in details:
        lat = details["repair_latency_ms"]
        lines += ["", "Per-window repair cost (batch 1, median of 100, ms): " +
                  ", ".join(f"{k} {v:.3f}" for k, v in lat.items() if k != "onnx_bytes") +
                  f"; repair.onnx {lat['onnx_bytes'] / 1024:.0f} kB."]
    lines.append("")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
