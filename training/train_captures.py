"""Train straight from raw capture files: ``[(capture path, label), ...]`` -> a run directory.

    from edgecsi.training.train_captures import train_from_captures
    result = train_from_captures("presence", [("empty1.csv", "empty"), ("walk1.csv", "occupied"), ...],
                                 out_dir="runs/presence", epochs=20)
    result = train_from_captures("activity", [("seq1.csv", None), ...], out_dir=...)   # per-packet labels

A label of ``None`` means "labelled by a column": the capture's ``<stem>.labels.csv`` sidecar (or
``labels_csv``) holds one row per packet and the ``label_column`` names the label (a window takes the
label of the packet at its centre). Captures are read with ``edgecsi.firmware_bridge.read`` (format
detected) and windowed by the gateway's own ``edgecsi.edge.pipeline`` (``from_captures``), whose fitted
config is saved in the run's config.json (``pipeline``) so the gateway rebuilds the same windows.

Default split: whole captures held out (``group-kfold:capture:K:0``, K = min(5, captures)), because
windows of one capture overlap and must never sit on both sides.

A capture list file (for the CLI) has one capture per line: ``path,label`` (or ``path`` alone for a
sidecar-labelled capture); ``#`` starts a comment; relative paths are relative to the list file. A
directory with one sub-directory per label works too (every file inside is a capture of that label).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

from edgecsi.training.train import RunResult, train

LABEL_SUFFIX = ".labels.csv"


def read_capture_list(source: str | Path) -> list[tuple[Path, str | None]]:
    """``(capture path, label or None)`` pairs from a list file or a label-per-sub-directory folder."""
    source = Path(source)
    if source.is_dir():
        items = [(f, d.name) for d in sorted(p for p in source.iterdir() if p.is_dir())
                 for f in sorted(d.iterdir()) if f.is_file() and not f.name.endswith(LABEL_SUFFIX)]
        if not items:
            raise ValueError(f"{source}: no label sub-directories with capture files")
        return items
    items = []
    with open(source, newline="") as fh:
        for line_no, row in enumerate(csv.reader(fh), start=1):
            if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
                continue
            if line_no == 1 and row[0].strip().lower() in ("path", "capture", "file"):
                continue                                  # header line
            path = Path(row[0].strip())
            path = path if path.is_absolute() else source.parent / path
            label = row[1].strip() if len(row) > 1 and row[1].strip() else None
            if not path.exists():
                raise ValueError(f"{source}: line {line_no}: no such capture {path}")
            items.append((path, label))
    if not items:
        raise ValueError(f"{source}: lists no captures")
    return items


def capture_windows(task: str, items: Sequence[tuple[str | Path, str | None]], config, *, label_column: str = "label",
                    labels: Sequence[str] | None = None, read_options: dict | None = None, refit: bool = True):
    """``(WindowSet, fitted PipelineConfig)`` of the captures; the window set's ``meta["captures"]`` says
    how to rebuild it (absolute paths, labels, options), so ``edgecsi export`` of the run can cut the
    same held-out windows again."""
    from edgecsi.training.from_captures import load_capture, windows_from_captures

    items = [(Path(path).resolve(), label) for path, label in items]
    names = [path.name for path, _ in items]
    if len(set(names)) < len(names):  # a label-folder tree may repeat names: say which folder
        names = [f"{path.parent.name}/{path.name}" for path, _ in items]
    captures = [load_capture(path, label=label, label_column=label_column, domains={"file": name},
                             **(read_options or {}))
                for (path, label), name in zip(items, names)]
    ws, fitted = windows_from_captures(captures, config, task=task, name="captures", labels=labels, refit=refit)
    ws.meta["captures"] = {"kind": "captures", "items": [[str(path), label] for path, label in items],
                         "formats": sorted({c.format for c in captures}),
                         "label_column": label_column, "read_options": dict(read_options or {}),
                         "labels": list(ws.labels)}
    return ws, fitted


def recorded_captures(config: dict) -> dict | None:
    """The captures a run was trained from, as :func:`capture_windows` recorded them in
    ``config["dataset"]["captures"]``; None for a run trained on a named data set."""
    record = (config.get("dataset") or {}).get("captures")
    return record if isinstance(record, dict) else None


def run_capture_windows(config: dict, record: dict):
    """The windows of captures recorded in a run (``config["dataset"]["captures"]``), cut again with the
    run's own fitted pipeline."""
    from edgecsi.edge.pipeline.config import PipelineConfig

    missing = [path for path, _ in record["items"] if not Path(path).exists()]
    if missing:
        raise FileNotFoundError(f"the run's captures are gone ({missing[0]}{' ...' if len(missing) > 1 else ''})")
    ws, _ = capture_windows(config["task"], [(path, label) for path, label in record["items"]],
                            PipelineConfig.from_dict(config["pipeline"]), label_column=record.get("label_column", "label"),
                            labels=record.get("labels"), read_options=record.get("read_options"), refit=False)
    return ws


def train_from_captures(task: str, items: Sequence[tuple[str | Path, str | None]], *, out_dir: str | Path,
                        split: str | None = None, model: str | None = None, window: int = 50, hop: int = 25,
                        rate_hz: float = 100.0, label_column: str = "label", labels: Sequence[str] | None = None,
                        pipeline_config=None, read_options: dict | None = None, **train_kwargs) -> RunResult:
    """Read, window and train (``train_kwargs`` go to :func:`edgecsi.training.train.train`).

    pipeline_config  an ``edgecsi.edge.pipeline.PipelineConfig`` to start from (default: amplitude
                     features resampled to ``rate_hz``, windows of ``window`` samples every ``hop``)
    """
    from edgecsi.training.from_captures import default_config

    ws, fitted = capture_windows(task, items, pipeline_config or default_config(rate_hz, window=window, hop=hop),
                                 label_column=label_column, labels=labels, read_options=read_options)
    if split is None:
        n = len(set(ws.domains["capture"].tolist()))
        if n < 2:
            raise ValueError("one capture cannot be split into train and test; give --split (e.g. kfold:5:0)")
        split = f"group-kfold:capture:{min(5, n)}:0"
    train_kwargs.setdefault("val_group", "capture" if len(set(ws.domains["capture"].tolist())) >= 4 else None)
    return train(task, ws, split, model, out_dir=out_dir, pipeline_config=fitted.to_dict(), **train_kwargs)
