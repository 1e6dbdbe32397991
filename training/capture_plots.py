"""Look at a capture: CSI amplitude heat map (time x subcarrier) and RSSI over time.

matplotlib is a train-side dependency, imported inside the function with the
Agg backend (no display needed). One stream is drawn (one MAC, core, spatial
stream, rx/tx pair): mixing streams would interleave different channels row by
row. By default the stream with most packets.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgecsi.firmware_bridge.capture import Capture
from edgecsi.frames import UNKNOWN, CSIBatch, mac_to_str


def stream_rows(capture: Capture) -> list[tuple[CSIBatch, np.ndarray, str]]:
    """(batch, rows, label) per (layout, mac, core, stream), most packets first."""
    found = []
    for batch in capture.batches:
        if not len(batch):
            continue
        keys = np.stack([batch.mac.astype(np.int64), batch.core.astype(np.int64),
                         batch.stream.astype(np.int64)], axis=1)
        uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        for k, (mac, core, stream) in enumerate(uniq):
            rows = np.flatnonzero(inverse == k)
            rows = rows[np.argsort(batch.packet_index[rows], kind="stable")]
            label = mac_to_str(int(mac))
            if core != UNKNOWN:
                label += f" core {int(core)}"
            if stream != UNKNOWN:
                label += f" stream {int(stream)}"
            found.append((batch, rows, label))
    found.sort(key=lambda item: -len(item[1]))
    return found


def _edges(centers: np.ndarray) -> np.ndarray:
    """Cell edges around ascending centers (midpoints; the outer cells mirror their neighbour)."""
    if centers.size == 1:
        return np.array([centers[0] - 0.5, centers[0] + 0.5])
    mid = (centers[1:] + centers[:-1]) / 2
    return np.concatenate([[2 * centers[0] - mid[0]], mid, [2 * centers[-1] - mid[-1]]])


def _cells(x: np.ndarray, gap_factor: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Time-axis cell edges and, per cell, the packet it shows (-1: an empty gap cell).

    Each packet fills the time until the next one, but at most ``gap_factor``
    times the typical spacing: a pause in the capture shows as a blank gap
    instead of one packet smeared across it.
    """
    if x.size == 1:
        return np.array([x[0] - 0.5, x[0] + 0.5]), np.array([0])
    step = np.diff(x)
    typical = float(np.median(step[step > 0])) if (step > 0).any() else 1.0
    width = np.minimum(np.append(step, typical), gap_factor * typical)
    edges, columns = [float(x[0])], []
    for i in range(x.size):
        if x[i] > edges[-1]:  # the previous packet ended before this one: a gap cell
            edges.append(float(x[i]))
            columns.append(-1)
        edges.append(max(float(x[i] + width[i]), edges[-1]))
        columns.append(i)
    return np.asarray(edges), np.asarray(columns)


def _blank_fraction(edges: np.ndarray, columns: np.ndarray) -> float:
    widths = np.diff(edges)
    total = float(widths.sum())
    return float(widths[columns < 0].sum()) / total if total > 0 else 0.0


def plot_capture(capture: Capture, path: str | os.PathLike, *, stream: int = 0, rx: int = 0, tx: int = 0,
                 max_packets: int = 4000, title: str | None = None) -> dict:
    """Write a PNG of ``capture``; returns what was drawn (stream label, packets, ...)."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    streams = stream_rows(capture)
    if not streams:
        raise ValueError(f"{capture.source}: no packets to plot")
    if not 0 <= stream < len(streams):
        raise ValueError(f"stream {stream} out of range: the capture has {len(streams)} streams")
    batch, rows, label = streams[stream]
    if not (0 <= rx < batch.n_rx and 0 <= tx < batch.n_tx):
        raise ValueError(f"rx {rx} / tx {tx} out of range for csi of shape {batch.csi.shape[1:3]}")
    if rows.size > max_packets:  # even decimation keeps the time axis honest
        rows = rows[np.linspace(0, rows.size - 1, max_packets).round().astype(int)]

    # amplitude[packet, subcarrier] in dB; bins without a channel estimate are left blank
    amp = np.abs(batch.csi[rows, rx, tx, :]).astype(np.float64)
    with np.errstate(divide="ignore"):
        amp_db = 20 * np.log10(amp)
    amp_db[batch.invalid[rows] | ~np.isfinite(amp_db)] = np.nan
    t = batch.time[rows]
    use_time = bool(np.isfinite(t).all()) and rows.size > 1 and float(np.ptp(t)) > 0
    x = t - t[0] if use_time else np.arange(rows.size, dtype=np.float64)
    x_edges, columns = _cells(x)
    if use_time and _blank_fraction(x_edges, columns) > 0.5:
        # Bursty capture: on a time axis most of the picture would be empty gaps.
        use_time = False
        x = np.arange(rows.size, dtype=np.float64)
        x_edges, columns = _cells(x)
    sc = batch.subcarriers.astype(np.float64)

    fig, (ax_map, ax_rssi) = plt.subplots(2, 1, figsize=(10, 7), sharex=True,
                                          gridspec_kw={"height_ratios": [3, 1]})
    finite = amp_db[np.isfinite(amp_db)]
    vmin, vmax = (np.percentile(finite, [1, 99.5]) if finite.size else (0.0, 1.0))
    image = np.full((len(columns), amp_db.shape[1]), np.nan)
    image[columns >= 0] = amp_db[columns[columns >= 0]]
    mesh = ax_map.pcolormesh(x_edges, _edges(sc), image.T, cmap="viridis", vmin=vmin, vmax=vmax,
                             rasterized=True)
    # An inset colorbar leaves the map as wide as the RSSI panel below, so their time axes line up.
    fig.colorbar(mesh, cax=ax_map.inset_axes([1.01, 0.0, 0.02, 1.0]), label="|CSI| (dB)")
    ax_map.set_ylabel("subcarrier")
    head = title or f"{Path(capture.source).name}  ({capture.format}, {batch.chip})"
    ax_map.set_title(f"{head}\n{label}  rx {rx} tx {tx}  {len(rows):,} packets", fontsize=9)

    rssi = batch.rssi[rows].astype(np.float64)
    if np.isfinite(rssi).any():
        ax_rssi.plot(x, rssi, ".", markersize=2, color="tab:blue")
        ax_rssi.set_ylabel("RSSI (dBm)")
    else:
        ax_rssi.text(0.5, 0.5, "this format reports no RSSI", transform=ax_rssi.transAxes,
                     ha="center", va="center", color="gray")
        ax_rssi.set_yticks([])
    ax_rssi.set_xlabel("time (s)" if use_time else "packet (timing too irregular for a time axis)"
                       if np.isfinite(t).all() and rows.size > 1 else "packet")
    ax_rssi.grid(alpha=0.3)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return {"path": str(path), "stream": label, "packets": int(rows.size), "streams": len(streams),
            "time_axis": use_time, "chip": batch.chip}
