"""A capture as plain numpy arrays in one ``.npz`` (for MATLAB/pandas/other tools).

Keys for a one-layout capture (the usual case)::

    csi            complex64[packet, rx, tx, subcarrier]  (natural subcarrier order)
    subcarriers    int16[subcarrier]
    invalid        bool[packet, subcarrier]               True: no channel estimate in this bin
    time mac seq rssi noise channel bandwidth_mhz core stream packet_index   [packet] columns
    extra.<name>   format-specific [packet, ...] columns (ESP32 sig_mode, Nexmon chanspec...)
    format chip source   0-d strings
    bad            0-d JSON string {reason: count}
    n_layouts      0-d int

A capture with several layouts (an ESP32 log mixing legacy and HT frames)
stores each under a prefix ``layout<i>/`` (``layout0/csi``, ``layout1/csi``...);
``packet_index`` restores the original order across them.
"""

from __future__ import annotations

import json
import os

import numpy as np

from edgecsi.firmware_bridge.capture import Capture
from edgecsi.frames import CSIBatch

COLUMNS = ("time", "mac", "seq", "rssi", "noise", "channel", "bandwidth_mhz", "core", "stream", "packet_index")


def batch_arrays(batch: CSIBatch, prefix: str = "") -> dict[str, np.ndarray]:
    arrays = {
        f"{prefix}csi": batch.csi,
        f"{prefix}subcarriers": batch.subcarriers,
        f"{prefix}invalid": batch.invalid,
        f"{prefix}chip": np.array(batch.chip),
    }
    for name in COLUMNS:
        arrays[prefix + name] = getattr(batch, name)
    for name, column in batch.extra.items():
        arrays[f"{prefix}extra.{name}"] = np.asarray(column)
    return arrays


def capture_arrays(capture: Capture) -> dict[str, np.ndarray]:
    """Every array of ``capture`` under the keys described in the module docstring."""
    batches = [b for b in capture.batches if len(b)]
    arrays: dict[str, np.ndarray] = {
        "format": np.array(capture.format),
        "source": np.array(capture.source),
        "bad": np.array(json.dumps(capture.bad.as_dict())),
        "n_layouts": np.array(len(batches)),
    }
    if len(batches) == 1:
        arrays.update(batch_arrays(batches[0]))
    else:
        for i, batch in enumerate(batches):
            arrays.update(batch_arrays(batch, prefix=f"layout{i}/"))
    return arrays


def write_npz(capture: Capture, path: str | os.PathLike, *, compress: bool = False) -> dict[str, tuple]:
    """Write ``capture`` to ``path``; returns {key: shape} of what was written."""
    arrays = capture_arrays(capture)
    (np.savez_compressed if compress else np.savez)(path, **arrays)
    return {k: tuple(v.shape) for k, v in arrays.items()}
