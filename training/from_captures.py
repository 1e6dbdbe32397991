"""Training windows from raw captures, labelled per file or per packet, through the gateway's own pipeline.

The same :mod:`edgecsi.edge.pipeline` code that runs on the gateway turns each capture's
streams into ``x[window, time, feature]``; the fitted pipeline config (layout,
anti-aliasing taps, normalisation) goes into the run directory and from there into the
bundle, so the agent rebuilds exactly this pipeline.

Labels:
- per file: ``LabelledCapture(path, label="walking")``;
- per packet: a label column, one entry per packet in capture order
  (``packet_labels``), e.g. read from a ``<capture>.labels.csv`` sidecar with a
  ``label`` column. A window takes the label of the packet nearest its centre.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from edgecsi.edge.pipeline.config import PipelineConfig
from edgecsi.edge.pipeline.pipeline import Pipeline
from edgecsi.edge.pipeline.streams import split_streams
from edgecsi.firmware_bridge import read
from edgecsi.frames import CSIBatch
from edgecsi.training.datasets.base import WindowSet
from edgecsi.training.filter_design import with_lowpass


@dataclass
class LabelledCapture:
    """One capture and its labels; ``domain`` ends up as a column (room, day, session...)."""

    batch: CSIBatch
    source: str
    label: str | None = None
    packet_labels: np.ndarray | None = None  # str[packet], in packet_index order
    domains: dict[str, str] = field(default_factory=dict)
    format: str = ""  # the reader that parsed it (``Capture.format``)


def read_labels_csv(path: str | Path, column: str = "label") -> np.ndarray:
    """The ``column`` of a CSV sidecar as a string array (one row per packet)."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or column not in reader.fieldnames:
            raise ValueError(f"{path}: no column {column!r} (have {reader.fieldnames})")
        return np.array([row[column] for row in reader], dtype=str)


def load_capture(path: str | Path, *, label: str | None = None, labels_csv: str | Path | None = None,
                 domains: dict[str, str] | None = None, label_column: str = "label",
                 **read_options) -> LabelledCapture:
    """Read a capture; labels from ``label`` (whole file) or the ``label_column`` of a per-packet CSV
    (default sidecar: ``<capture stem>.labels.csv`` when it exists)."""
    path = Path(path)
    capture = read(path, **read_options)
    if len(capture.batches) != 1:
        # Several layouts (e.g. HT and legacy frames): keep the dominant one.
        capture.batches.sort(key=len, reverse=True)
    batch = capture.batches[0]
    packet_labels = None
    sidecar = Path(labels_csv) if labels_csv else path.with_name(path.stem + ".labels.csv")
    if label is None and sidecar.exists():
        every = read_labels_csv(sidecar, label_column)
        if len(every) != capture.n_packets:
            raise ValueError(f"{sidecar}: {len(every)} labels for {capture.n_packets} packets in {path} "
                             f"({capture.bad.total} bad records skipped)")
        packet_labels = every[batch.packet_index]
    elif label is None:
        raise ValueError(f"{path}: no label given and no sidecar {sidecar.name}")
    return LabelledCapture(batch=batch, source=str(path), label=label, packet_labels=packet_labels,
                           domains=dict(domains or {}), format=capture.format)


def default_config(rate_hz: float = 100.0, window: int = 50, hop: int = 25) -> PipelineConfig:
    from edgecsi.edge.pipeline.config import ResampleConfig, WindowConfig

    return with_lowpass(PipelineConfig(resample=ResampleConfig(rate_hz=rate_hz),
                                       window=WindowConfig(length=window, hop=hop)))


def windows_from_captures(captures: Sequence[LabelledCapture], config: PipelineConfig, *, task: str,
                          name: str = "captures", labels: Sequence[str] | None = None, refit: bool = True
                          ) -> tuple[WindowSet, PipelineConfig]:
    """Fit the pipeline on ``captures`` and cut labelled windows from every stream of each.

    Returns the windows (domain columns: ``capture``, ``stream`` and each capture's
    ``domains``) and the fitted config to save with the model. The windows are the pipeline's
    output with that fitted config (standardised when ``config.normalise.enabled``), exactly
    what the gateway's pipeline will produce from the same packets.

    ``refit=False`` cuts windows with ``config`` exactly as given (a trained run's fitted
    config): a new site's captures must go through the pipeline the model was trained with,
    as they will on its gateway.
    """
    if config.resample.taps is None:
        config = with_lowpass(config)
    pipeline = Pipeline(config).fit([c.batch for c in captures]) if refit else Pipeline(config)
    fitted = pipeline.config
    xs, ys, cols = [], [], {"capture": [], "stream": []}
    domain_keys = sorted({k for c in captures for k in c.domains})
    for k in domain_keys:
        cols[k] = []
    window_s = fitted.window.length / fitted.resample.rate_hz
    for cap in captures:
        for key, stream in split_streams(cap.batch).items():
            ends, x = pipeline.transform_timed(stream)
            if len(x) == 0:
                continue
            if cap.packet_labels is not None:
                order = np.argsort(stream.time, kind="stable")
                times = stream.time[order]
                stream_labels = _labels_for(cap, stream)[order]
                centre = ends - window_s / 2
                nearest = np.clip(np.searchsorted(times, centre), 0, len(times) - 1)
                window_labels = stream_labels[nearest]
            else:
                window_labels = np.full(len(x), cap.label)
            xs.append(x)
            ys.append(window_labels)
            cols["capture"] += [cap.source] * len(x)
            cols["stream"] += [str(key)] * len(x)
            for k in domain_keys:
                cols[k] += [cap.domains.get(k, "")] * len(x)
    if not xs:
        raise ValueError("no capture is long enough for one window")
    y_text = np.concatenate(ys)
    label_names = list(labels) if labels else sorted(set(y_text.tolist()))
    index = {l: i for i, l in enumerate(label_names)}
    unknown = sorted(set(y_text.tolist()) - set(index))
    if unknown:
        raise ValueError(f"labels {unknown} are not among {label_names}")
    ws = WindowSet(name=name, task=task, x=np.concatenate(xs).astype(np.float32),
                   y=np.array([index[l] for l in y_text], dtype=np.int64), labels=label_names,
                   domains={k: np.asarray(v) for k, v in cols.items()},
                   meta={"features": ", ".join(pipeline.feature_names()[:3]) + ", ...",
                         "rate_hz": fitted.resample.rate_hz, "source": "captures"})
    return ws, fitted


def _labels_for(cap: LabelledCapture, stream: CSIBatch) -> np.ndarray:
    """Per-packet labels of one stream (a row subset of the capture's batch)."""
    order = np.argsort(cap.batch.packet_index, kind="stable")
    rows = order[np.searchsorted(cap.batch.packet_index[order], stream.packet_index)]
    return cap.packet_labels[rows]
