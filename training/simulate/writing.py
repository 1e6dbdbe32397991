"""A simulation on disk: the capture in the chip's own file format plus a labels sidecar.

``x.pcap`` (Nexmon chips) or ``x.csv`` (ESP32 serial lines) is written by the
firmware_bridge writers, so it reads back through ``edgecsi.firmware_bridge.read``
like a real capture. Next to it:

- ``x.labels.csv``: one row per packet in file order: ``packet_index, time, seq``
  and the label columns (empty cell = NaN);
- ``x.labels.json``: the run's metadata (scenario, parameters, label vocabularies,
  scene, doorway passes).
"""

from __future__ import annotations

import csv
import importlib
import json
from pathlib import Path

import numpy as np

from edgecsi.training.simulate.simulator import SimResult

ESP32_LINE_FORMATS = ("esp32-csi-tool", "esp-csi")
_INDEX_COLUMNS = ("packet_index", "time", "seq")


def sidecar_paths(out_path: str | Path) -> tuple[Path, Path]:
    """(labels CSV, metadata JSON) next to ``out_path``: ``x.pcap`` -> ``x.labels.csv``, ``x.labels.json``."""
    out = Path(out_path)
    return out.with_suffix(".labels.csv"), out.with_suffix(".labels.json")


def _writer(module: str):
    try:
        return importlib.import_module(f"edgecsi.firmware_bridge.writers.{module}")
    except ModuleNotFoundError as exc:
        if exc.name != f"edgecsi.firmware_bridge.writers.{module}":
            raise
        raise RuntimeError(f"the writer edgecsi.firmware_bridge.writers.{module} is not available in this build") from None


def capture_bytes(result: SimResult, suffix: str, *, lines: str = "esp32-csi-tool") -> bytes:
    """The capture file's bytes for an output ending in ``suffix`` (".pcap", ".csv", ".txt")."""
    chip = result.chip
    suffix = suffix.lower()
    if chip.batch_format == "nexmon":
        if suffix != ".pcap":
            raise ValueError(f"{chip.fmt} captures are pcap files; use a .pcap output, not {suffix!r}")
        # New-layout header: the PHY-status words the simulator put in bins 0..2 belong to it.
        return _writer("nexmon").write_pcap(result.batch, layout="new")
    if suffix not in (".csv", ".txt"):
        raise ValueError(f"{chip.fmt} captures are serial text lines; use a .csv or .txt output, not {suffix!r}")
    if lines not in ESP32_LINE_FORMATS:
        raise ValueError(f"lines must be one of {ESP32_LINE_FORMATS}, got {lines!r}")
    writer = _writer("esp32_lines")
    if lines == "esp32-csi-tool":
        # Current firmware: real_timestamp carries the time.
        return writer.csi_tool_text(result.batch, real_time=True).encode("ascii")
    # esp-csi prints only the device's µs clock; append the host time as a logging script does.
    return writer.esp_csi_text(result.batch, host_time=True).encode("ascii")


def write_labels(result: SimResult, out_path: str | Path) -> tuple[Path, Path]:
    """Write the labels sidecar (CSV + JSON) for a capture at ``out_path``; returns their paths."""
    csv_path, json_path = sidecar_paths(out_path)
    b = result.batch
    order = np.argsort(b.packet_index, kind="stable")
    names = list(result.labels)
    with open(csv_path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow([*_INDEX_COLUMNS, *names])
        cols = [b.packet_index, b.time, b.seq, *(result.labels[k] for k in names)]
        for i in order:
            out.writerow([_cell(c[i]) for c in cols])
    meta = dict(result.meta, columns={name: str(np.asarray(c).dtype) for name, c in zip([*_INDEX_COLUMNS, *names], cols)})
    json_path.write_text(json.dumps(meta, indent=1, default=_json_default) + "\n")
    return csv_path, json_path


def _cell(v) -> str:
    if isinstance(v, (float, np.floating)):
        # numpy prints the shortest text that reads back to the same value of its dtype
        return "" if np.isnan(v) else str(v)
    return str(int(v))


def _json_default(v):
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


def read_labels(path: str | Path) -> tuple[dict[str, np.ndarray], dict]:
    """Labels of a simulated capture: (columns, metadata). ``path`` is the capture or its ``.labels.csv``."""
    path = Path(path)
    if path.name.endswith(".labels.csv"):
        csv_path = path
        json_path = path.with_name(path.name[: -len(".csv")] + ".json")
    else:
        csv_path, json_path = sidecar_paths(path)
    meta = json.loads(json_path.read_text()) if json_path.exists() else {}
    dtypes = meta.get("columns", {})
    with open(csv_path, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    columns: dict[str, np.ndarray] = {}
    for j, name in enumerate(header):
        dtype = np.dtype(dtypes.get(name, "float64"))
        if dtype.kind == "f":
            columns[name] = np.array([float(r[j]) if r[j] else np.nan for r in body], dtype=dtype)
        else:
            columns[name] = np.array([int(r[j]) for r in body], dtype=dtype)
    return columns, meta


def write_simulation(result: SimResult, out_path: str | Path, *, lines: str = "esp32-csi-tool") -> dict[str, Path]:
    """Write the capture (format chosen by the chip and ``out_path``'s suffix) and its labels sidecar.

    ``lines`` picks the ESP32 serial line format (``"esp32-csi-tool"`` or ``"esp-csi"``).
    Returns the paths written: ``capture``, ``labels``, ``meta``.
    """
    out = Path(out_path)
    data = capture_bytes(result, out.suffix, lines=lines)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(data)
    labels, meta = write_labels(result, out)
    return {"capture": out, "labels": labels, "meta": meta}
