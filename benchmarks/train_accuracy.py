"""Held-out accuracy of the model zoo and the baselines on every real data set, vs the published figures.

    .venv/bin/python benchmarks/train_accuracy.py                 # all protocols -> docs/results/training.md
    .venv/bin/python benchmarks/train_accuracy.py esp32s2_har wical --no-write
    .venv/bin/python benchmarks/train_accuracy.py --runs /tmp/runs   # keep every run directory

Protocols are defined in edgecsi.training.experiments. One torch thread (the cores are shared).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from edgecsi.training.experiments import PROTOCOLS, markdown_table, run_protocol

REPO = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("protocols", nargs="*", choices=[*PROTOCOLS, []], help="default: all")
    ap.add_argument("--runs", default=None, help="keep run directories here")
    ap.add_argument("--out", default=str(REPO / "docs" / "results" / "training.md"))
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    names = args.protocols or list(PROTOCOLS)
    rows, timing = [], {}
    for name in names:
        r, seconds = run_protocol(name, Path(args.runs) / name if args.runs else None)
        rows += r
        timing[name] = seconds
        print(f"{name}: {seconds:.0f} s", file=sys.stderr, flush=True)
        print(markdown_table(r), flush=True)
    table = markdown_table(rows)
    print("\n" + table)
    print("\nseconds per protocol: " + ", ".join(f"{k} {v:.0f}" for k, v in timing.items()) +
          f"; total {sum(timing.values()):.0f}")
    if not args.no_write:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        header = out.read_text().split("<!-- table -->")[0] if out.exists() else "# Training results\n\n"
        stamp = (f"Measured {time.strftime('%Y-%m-%d')} with torch {torch.__version__}, 1 thread, "
                 f"{platform.processor() or platform.machine()}; protocols: {', '.join(names)}; "
                 f"seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in timing.items()) + ".")
        out.write_text(header + "<!-- table -->\n" + stamp + "\n\n" + table + "\n")
        out.with_suffix(".json").write_text(json.dumps([asdict(r) for r in rows], indent=1, default=float))
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
