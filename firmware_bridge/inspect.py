"""What is in a capture: format, packets, timing, streams, layouts, RSSI, bad records.

``summarize(capture)`` returns a plain dict (JSON-ready; numpy only) that the
``edgecsi inspect`` command prints; ``render_text`` is its human form.
A *stream* is one (source MAC, core, spatial stream): what a consumer groups
packets by (a Nexmon router sends one UDP per core and stream of each frame).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from edgecsi.firmware_bridge.capture import Capture
from edgecsi.firmware_bridge.read import read as read_capture
from edgecsi.frames import UNKNOWN, mac_to_str


def _finite_stats(values: np.ndarray) -> dict | None:
    v = values[np.isfinite(values)]
    if not v.size:
        return None
    return {"count": int(v.size), "min": float(v.min()), "max": float(v.max()),
            "mean": round(float(v.mean()), 3), "std": round(float(v.std()), 3),
            "median": float(np.median(v))}


def _timing(t: np.ndarray) -> dict:
    """Duration and rate over the finite times (in original packet order)."""
    finite = t[np.isfinite(t)]
    if finite.size < 2:
        return {"time_start": float(finite[0]) if finite.size else None,
                "time_end": float(finite[0]) if finite.size else None,
                "duration_s": 0.0, "rate_hz": None}
    start, end = float(finite.min()), float(finite.max())
    duration = end - start
    return {"time_start": start, "time_end": end, "duration_s": round(duration, 6),
            "rate_hz": round((finite.size - 1) / duration, 3) if duration > 0 else None}


def _counts(values: np.ndarray) -> dict[str, int]:
    keys, counts = np.unique(values, return_counts=True)
    return {("unknown" if int(k) == UNKNOWN else str(int(k))): int(c) for k, c in zip(keys, counts)}


def _column(capture: Capture, name: str) -> np.ndarray:
    """One column over all batches, in original packet order."""
    batches = [b for b in capture.batches if len(b)]
    if not batches:
        return np.zeros(0)
    order = np.argsort(np.concatenate([b.packet_index for b in batches]), kind="stable")
    return np.concatenate([getattr(b, name) for b in batches])[order]


def _layout(batch) -> dict:
    sc = batch.subcarriers.astype(int)
    # A bin that is invalid in every packet is structural (guard, DC, PHY-status word).
    always_invalid = batch.invalid.all(axis=0)
    return {
        "format": batch.format,
        "chip": batch.chip,
        "packets": len(batch),
        "rx": batch.n_rx,
        "tx": batch.n_tx,
        "subcarriers": int(sc.size),
        "subcarrier_range": [int(sc.min()), int(sc.max())] if sc.size else None,
        "valid_subcarriers": int((~always_invalid).sum()),
        "bandwidth_mhz": sorted({int(b) for b in np.unique(batch.bandwidth_mhz)}),
        "extra_columns": sorted(batch.extra),
    }


def _streams(capture: Capture) -> list[dict]:
    batches = [b for b in capture.batches if len(b)]
    if not batches:
        return []
    mac = np.concatenate([b.mac for b in batches])
    core = np.concatenate([b.core for b in batches]).astype(np.int64)
    stream = np.concatenate([b.stream for b in batches]).astype(np.int64)
    t = np.concatenate([b.time for b in batches])
    rssi = np.concatenate([b.rssi for b in batches]).astype(np.float64)
    index = np.concatenate([b.packet_index for b in batches])
    layout = np.concatenate([np.full(len(b), i) for i, b in enumerate(batches)])
    keys = np.stack([mac.astype(np.int64), core, stream], axis=1)
    uniq, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    out = []
    for k in np.argsort(-counts, kind="stable"):
        rows = np.flatnonzero(inverse == k)
        rows = rows[np.argsort(index[rows], kind="stable")]
        m, c, s = (int(x) for x in uniq[k])
        timing = _timing(t[rows])
        rssi_stats = _finite_stats(rssi[rows])
        out.append({
            "mac": mac_to_str(m),
            "core": None if c == UNKNOWN else c,
            "stream": None if s == UNKNOWN else s,
            "packets": int(counts[k]),
            "duration_s": timing["duration_s"],
            "rate_hz": timing["rate_hz"],
            "rssi_mean": None if rssi_stats is None else rssi_stats["mean"],
            "layouts": sorted({int(x) for x in layout[rows]}),
        })
    return out


def summarize(capture: Capture, *, size_bytes: int | None = None, max_examples: int = 5) -> dict:
    """A JSON-ready description of ``capture``."""
    batches = [b for b in capture.batches if len(b)]
    t = _column(capture, "time")
    summary = {
        "source": capture.source,
        "format": capture.format,
        "bytes": size_bytes,
        "packets": capture.n_packets,
        **_timing(t),
        "chips": sorted({b.chip for b in batches}),
        "layouts": [_layout(b) for b in batches],
        "bandwidth_mhz": _counts(_column(capture, "bandwidth_mhz")) if batches else {},
        "channels": _counts(_column(capture, "channel")) if batches else {},
        "streams": _streams(capture),
        "rssi_dbm": _finite_stats(_column(capture, "rssi").astype(np.float64)) if batches else None,
        "noise_dbm": _finite_stats(_column(capture, "noise").astype(np.float64)) if batches else None,
        "bad": capture.bad.as_dict(),
        "bad_total": capture.bad.total,
        "bad_examples": capture.bad.examples[:max_examples],
    }
    return summary


def inspect_file(path: str | os.PathLike, *, format: str | None = None, **read_options) -> dict:
    """Read ``path`` (format detected unless given) and summarize it."""
    capture = read_capture(path, format=format, **read_options)
    return summarize(capture, size_bytes=Path(path).stat().st_size)


def _fmt(value, unit: str = "", digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}{unit}"
    return f"{value}{unit}"


def render_text(summary: dict, *, max_streams: int = 20) -> str:
    """The summary as an aligned human-readable report."""
    lines = [
        f"{summary['source']}",
        f"  format      {summary['format']}  chips: {', '.join(summary['chips']) or '-'}"
        + (f"  ({summary['bytes']:,} bytes)" if summary.get("bytes") is not None else ""),
        f"  packets     {summary['packets']:,}",
        f"  duration    {_fmt(summary['duration_s'], ' s', 3)}   rate {_fmt(summary['rate_hz'], ' pkt/s', 1)}",
        "  bandwidth   " + (", ".join(f"{bw} MHz: {n:,}" for bw, n in summary["bandwidth_mhz"].items()) or "-"),
        "  channels    " + (", ".join(f"{ch}: {n:,}" for ch, n in summary["channels"].items()) or "-"),
    ]
    rssi = summary["rssi_dbm"]
    lines.append("  rssi        " + ("- (not reported by this format)" if rssi is None else
                                     f"mean {rssi['mean']:.1f} dBm  min {rssi['min']:.0f}  max {rssi['max']:.0f}"
                                     f"  std {rssi['std']:.1f}  ({rssi['count']:,} packets)"))
    noise = summary["noise_dbm"]
    if noise is not None:
        lines.append(f"  noise       mean {noise['mean']:.1f} dBm  min {noise['min']:.0f}  max {noise['max']:.0f}")
    lines.append(f"  layouts     {len(summary['layouts'])}")
    for i, lay in enumerate(summary["layouts"]):
        rng = lay["subcarrier_range"]
        lines.append(
            f"    [{i}] {lay['packets']:,} packets  {lay['chip']}  rx {lay['rx']} x tx {lay['tx']}  "
            f"{lay['subcarriers']} subcarriers ({rng[0]}..{rng[1]}), {lay['valid_subcarriers']} with CSI  "
            f"{'/'.join(str(b) for b in lay['bandwidth_mhz'])} MHz")
    streams = summary["streams"]
    lines.append(f"  streams     {len(streams)} (mac / core / spatial stream)")
    for s in streams[:max_streams]:
        lines.append(
            f"    {s['mac']}  core {_fmt(s['core'])}  stream {_fmt(s['stream'])}  {s['packets']:,} packets  "
            f"{_fmt(s['rate_hz'], ' pkt/s', 1)}  rssi {_fmt(s['rssi_mean'], ' dBm', 1)}")
    if len(streams) > max_streams:
        lines.append(f"    ... {len(streams) - max_streams} more")
    if summary["bad_total"]:
        lines.append(f"  bad         {summary['bad_total']:,}: "
                     + ", ".join(f"{reason} {n:,}" for reason, n in summary["bad"].items()))
        for example in summary["bad_examples"]:
            lines.append(f"    {example}")
    else:
        lines.append("  bad         0")
    return "\n".join(lines)
