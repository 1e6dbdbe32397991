"""The adaptation acceptance grid: method x data set x labelled windows per class, and its table.

    .venv/bin/python -m edgecsi.training.adapt.report --work /tmp/adapt --out docs/results/adaptation.md

For each protocol a source run is trained once (cached under ``WORK/runs``) and exported once to an
int8 bundle (the gateway path); then every (target, labelled pool, level, method) cell runs ``adapt``
and the numpy site head (``edgecsi.edge.calibration``) is fitted on the bundle's ONNX embeddings of the
very same labelled windows. Every number is accuracy on held-out target windows: the target minus the
whole labelled pool, never a labelled window. Results are appended to ``WORK/grid.jsonl`` as they come
(a rerun skips cells already there), and the markdown table is written from that file.

Protocols (``PROTOCOLS``):
  esp32s2   source D1T (published) -> targets D2, D3, D4; labelled pool = ONE sequence of the target
            day (results averaged over an rx->tx and a tx->rx sequence); test = the day's other 3
  intel     bedroom -> meeting room and back; pool = repetitions 1-5 in the target room; test = 6-21
  ivanet    days 02-18 (published Dataset A) -> days 21-23; pool = one collection period of day 21
            (d21_p02, all 8 positions); test = days 21-23 minus that period
Levels: 0 / 1 / 5 / all windows per class from the pool. fc, side and ccsa need labels (0 = n/a);
lmmd and aad are unsupervised at 0 and use the labelled windows when there are some.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

LEVELS: tuple[int | None, ...] = (0, 1, 5, None)
METHOD_ORDER = ("fc", "side", "ccsa", "lmmd", "aad")
GATEWAY = "gateway"


@dataclass(frozen=True)
class TargetCase:
    name: str                 # column title ("D2", "bed->meeting")
    base: str                 # key of the source run in Protocol.sources
    target: str               # target filters
    pools: tuple[str, ...]    # labelled pools; the cell is the mean over them


@dataclass(frozen=True)
class SourceRun:
    task: str
    split: str
    model: str
    train_kw: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Protocol:
    key: str
    title: str
    dataset: str
    sources: dict[str, SourceRun]
    targets: tuple[TargetCase, ...]
    published: str = ""


PROTOCOLS: dict[str, Protocol] = {p.key: p for p in (
    Protocol(
        "esp32s2", "ESP32-S2 temporal HAR (source D1 -> later days; pool = one sequence)",
        "esp32s2_temporal_har_geotecinit",
        {"d1": SourceRun("activity", "published", "activity_cnn", {"epochs": 40, "val_group": "sequence"})},
        tuple(TargetCase(day, "d1", f"day={day}", (f"sequence={day}/e01_rx_tx", f"sequence={day}/e01_tx_rx"))
              for day in ("D2", "D3", "D4")),
        "source-only published: D2 40.4%, D3 39.2%, D4 22.4% (IPIN 2023)"),
    Protocol(
        "intel", "Intel 5300 HAR, two rooms (pool = repetitions 1-5 of the target room)",
        "intel5300_har_2env_5person",
        {"bedroom": SourceRun("activity", "by:room:bedroom:meetingroom", "activity_cnn",
                              {"epochs": 30, "val_group": "person", "hp": {"downsample": 4}}),
         "meetingroom": SourceRun("activity", "by:room:meetingroom:bedroom", "activity_cnn",
                                  {"epochs": 30, "val_group": "person", "hp": {"downsample": 4}})},
        (TargetCase("bed->meet", "bedroom", "room=meetingroom", ("repetition=1+2+3+4+5",)),
         TargetCase("meet->bed", "meetingroom", "room=bedroom", ("repetition=1+2+3+4+5",))),
        "no published cross-room figure; own RF sanity 21.4% / 27.4%"),
    Protocol(
        "ivanet", "iVANET CSI-IPS, days 02-18 -> 21-23 (pool = period d21_p02)",
        "ivanet_csi_ips_2020_21",
        {"a": SourceRun("localization", "published", "cnn1d", {"epochs": 15, "max_train_windows": 20000})},
        (TargetCase("d21-23", "a", "day=21+22+23", ("session=d21_p02",)),),
        "published (i-vector injection): 75.5% -> 80.6%"),
)}


def level_name(level: int | None) -> str:
    return "all" if level is None else str(level)


def source_run(work: Path, proto: Protocol, key: str) -> Path:
    """The cached source run directory (trained on first use)."""
    from edgecsi.training.train import train

    run = work / "runs" / f"{proto.key}_{key}"
    if (run / "config.json").exists():
        return run
    s = proto.sources[key]
    train(s.task, proto.dataset, s.split, s.model, seed=0, out_dir=run, progress=False, **s.train_kw)
    return run


def source_bundle(work: Path, run: Path) -> Path:
    """The run exported like a deployment (int8 unless refused), cached."""
    from edgecsi.export.export_run import export_run

    bundle = work / "bundles" / run.name
    if not (bundle / "manifest.json").exists():
        export_run(run, bundle, allow_fp32_fallback=True, bundle_version=1)
    return bundle


def run_grid(work: Path, protocols: list[str], methods: tuple[str, ...] = METHOD_ORDER,
             levels: tuple[int | None, ...] = LEVELS, options: dict | None = None, threads: int = 2) -> Path:
    """Run every missing cell, appending one JSON line per (protocol, target, pool, level, method)."""
    from edgecsi.edge.bundle import load_bundle
    from edgecsi.edge.site_calibration import base_model_sha256, embed_windows
    from edgecsi.training.adapt import TargetSpec, adapt, split_target
    from edgecsi.training.adapt.run import METHODS
    from edgecsi.training.datasets import load as load_dataset
    from edgecsi.edge.calibration import fit_site_head

    work.mkdir(parents=True, exist_ok=True)
    out = work / "grid.jsonl"
    done = {_key(r) for r in read_grid(out)}
    for pkey in protocols:
        proto = PROTOCOLS[pkey]
        ws = load_dataset(proto.dataset)
        for case in proto.targets:
            run = source_run(work, proto, case.base)
            bundle = load_bundle(source_bundle(work, run))
            onnx_cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
            for pool in case.pools:
                for level in levels:
                    spec = TargetSpec(None, case.target, pool, level, seed=0)
                    split = split_target(ws, spec)
                    for method in (*methods, GATEWAY):
                        row = {"protocol": pkey, "target": case.name, "pool": pool, "level": level_name(level),
                               "method": method}
                        if _key(row) in done:
                            continue
                        needs = METHODS[method].needs_labels if method in METHODS else True
                        if needs and (level == 0 or len(split.labelled) == 0):
                            continue
                        t0 = time.perf_counter()
                        if method == GATEWAY:
                            row.update(_gateway_cell(bundle, ws, split, onnx_cache, base_model_sha256(bundle),
                                                     fit_site_head, embed_windows))
                        else:
                            res = adapt(run, method, spec, out_dir=work / "adapted" / pkey / case.name
                                        / pool.replace("/", "_").replace("=", "-") / level_name(level) / method,
                                        options=(options or {}).get(method), threads=threads, source=ws, target_set=ws)
                            row.update(accuracy=res.accuracy, source_only=res.source_only_accuracy,
                                       n_labelled=res.config["adaptation"]["n_labelled"],
                                       n_test=res.config["adaptation"]["n_test"],
                                       artefact_bytes=res.config["adaptation"]["site_artefact"]["bytes"])
                        row["seconds"] = round(time.perf_counter() - t0, 2)
                        with out.open("a") as f:
                            f.write(json.dumps(row) + "\n")
                        print(json.dumps(row), flush=True)
    return out


def _gateway_cell(bundle, ws, split, cache, sha, fit_site_head, embed_windows) -> dict:
    """The numpy head on ONNX embeddings of the labelled windows, scored on the held-out ones."""
    from edgecsi.edge.calibration import blend

    def embedded(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = hashlib.sha256(idx.tobytes()).hexdigest()
        if key not in cache:
            cache[key] = embed_windows(bundle, ws.x[idx])
        return cache[key]

    emb_l, p_l = embedded(split.labelled)
    emb_t, p_t = embedded(split.test)
    t0 = time.perf_counter()
    head = fit_site_head(emb_l, ws.y[split.labelled], ws.labels, method="logistic", p_base=p_l)
    fit_s = time.perf_counter() - t0
    p = blend(p_t, head.predict_proba(emb_t), head.alpha, seen=head.seen)
    y = ws.y[split.test]
    return {"accuracy": float((p.argmax(1) == y).mean()), "source_only": float((p_t.argmax(1) == y).mean()),
            "n_labelled": int(len(split.labelled)), "n_test": int(len(split.test)), "fit_seconds": round(fit_s, 4),
            "alpha": head.alpha, "artefact_bytes": int(head.weights.nbytes + head.bias.nbytes + head.mean.nbytes
                                                       + head.scale.nbytes), "base_model_sha256": sha}


def read_grid(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _key(row: dict) -> tuple:
    return (row["protocol"], row["target"], row["pool"], row["level"], row["method"])


def cell_means(rows: list[dict]) -> dict[tuple, dict]:
    """Mean accuracy (and source-only) over pools per (protocol, target, level, method)."""
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["protocol"], r["target"], r["level"], r["method"]), []).append(r)
    return {k: {"accuracy": float(np.mean([r["accuracy"] for r in v])),
                "source_only": float(np.mean([r["source_only"] for r in v])), "n": len(v),
                "seconds": float(np.mean([r["seconds"] for r in v]))} for k, v in groups.items()}


def source_only(rows: list[dict], protocol: str, target: str) -> float | None:
    """The torch base model on the held-out windows, mean over pools (the test set does not depend on
    the level). The gateway rows carry their own source-only: the int8 ONNX base."""
    vals = {r["pool"]: r["source_only"] for r in rows
            if r["protocol"] == protocol and r["target"] == target and r["method"] != GATEWAY}
    return float(np.mean(list(vals.values()))) if vals else None


def markdown(rows: list[dict]) -> str:
    """The results tables (one per protocol) and the beats-source-only summary."""
    means = cell_means(rows)
    names = {"fc": "FC fine-tuning (torch, head only)", "side": "side-tuning", "ccsa": "semantic alignment (CCSA)",
             "lmmd": "LMMD (DSAN)", "aad": "AAD (ADDA + KD, T=20)", GATEWAY: "gateway numpy head (ONNX int8 emb.)"}
    lines = []
    for proto in PROTOCOLS.values():
        if not any(r["protocol"] == proto.key for r in rows):
            continue
        levels = [level_name(lv) for lv in LEVELS]
        lines += [f"### {proto.title}", "", f"Published: {proto.published}.", ""]
        header = ["method"] + [f"{t.name} / {lv}" for t in proto.targets for lv in levels]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        src = ["source-only (torch)"]
        for t in proto.targets:
            v = source_only(rows, proto.key, t.name)
            src += ["" if v is None else f"{100 * v:.1f}"] * len(levels)
        lines.append("| " + " | ".join(src) + " |")
        for method in (*METHOD_ORDER, GATEWAY):
            cells = [names[method]]
            for t in proto.targets:
                for lv in levels:
                    m = means.get((proto.key, t.name, lv, method))
                    cells.append("—" if m is None else f"{100 * m['accuracy']:.1f}")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["### Does each method beat source-only?", "",
              "Mean over the protocol's targets at 5 labelled windows per class (lmmd, aad: also at 0, "
              "their unsupervised setting), in accuracy points against the method's own base model on the same "
              "held-out windows (the gateway head: the int8 ONNX base).", "",
              "| method | " + " | ".join(p.key for p in PROTOCOLS.values()) + " | data sets beaten |",
              "|---|" + "---|" * (len(PROTOCOLS) + 1)]
    for method in (*METHOD_ORDER, GATEWAY):
        cells, wins = [], 0
        for proto in PROTOCOLS.values():
            level = "5"
            deltas = []
            for t in proto.targets:
                m = means.get((proto.key, t.name, level, method))
                if m is not None:                    # against the method's own base on the same windows
                    deltas.append(m["accuracy"] - m["source_only"])
            if not deltas:
                cells.append("—")
                continue
            d = float(np.mean(deltas))
            extra = ""
            if method in ("lmmd", "aad"):
                d0 = [means[(proto.key, t.name, "0", method)]["accuracy"] - means[(proto.key, t.name, "0", method)]["source_only"]
                      for t in proto.targets if (proto.key, t.name, "0", method) in means]
                if d0:
                    extra = f" (0/class {100 * float(np.mean(d0)):+.1f})"
            wins += d > 0
            cells.append(f"{100 * d:+.1f}{extra}")
        lines.append(f"| {names[method]} | " + " | ".join(cells) + f" | {wins} of {len(PROTOCOLS)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/adapt"))
    ap.add_argument("--protocols", default=",".join(PROTOCOLS))
    ap.add_argument("--methods", default=",".join(METHOD_ORDER))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--table-only", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="write the markdown tables here")
    args = ap.parse_args(argv)
    if not args.table_only:
        run_grid(args.work, args.protocols.split(","), tuple(m for m in args.methods.split(",") if m),
                 threads=args.threads)
    table = markdown(read_grid(args.work / "grid.jsonl"))
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)


if __name__ == "__main__":
    main()
