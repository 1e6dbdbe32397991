"""Packet times from the sensor's own clock instead of the host's receive time.

An ESP32 stamps each CSI packet with ``local_timestamp`` (µs since boot, u32, wraps
every ~71.6 min). Serial and UDP deliver lines in bursts, so host receive times bunch
packets together; the resampler then sees a distorted signal. Training read the device
clock from files, so the gateway uses it too: per transmitter, the device time is
unwrapped and anchored to the host time of the stream's first packet (event times stay
wall-clock-like), and re-anchored when the device reboots (its clock jumps back).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from edgecsi.frames import CSIBatch

WRAP_S = 2**32 / 1e6
FIELD = "local_timestamp"


class DeviceClock:
    """One per stream. ``apply(batch)`` returns the batch with ``time`` on the device clock."""

    def __init__(self) -> None:
        self._anchor_host: float | None = None
        self._anchor_dev = 0.0
        self._last_raw: float | None = None
        self._wraps = 0

    def apply(self, batch: CSIBatch) -> CSIBatch:
        raw_us = batch.extra.get(FIELD)
        if raw_us is None or len(batch) == 0 or np.any(np.asarray(raw_us) < 0):
            return batch
        raw = np.asarray(raw_us, dtype=np.float64) / 1e6
        out = np.empty_like(raw)
        host = np.asarray(batch.time, dtype=np.float64)
        for i, r in enumerate(raw):  # a handful of packets per call; state carries across calls
            if self._last_raw is not None and r < self._last_raw:
                if self._last_raw - r > WRAP_S / 2:
                    self._wraps += 1  # u32 µs counter wrapped
                else:
                    self._anchor_host = None  # went back by less than half a wrap: a reboot
            if self._anchor_host is None:
                self._wraps = 0
                self._anchor_host = host[i] if np.isfinite(host[i]) else 0.0
                self._anchor_dev = r
            self._last_raw = r
            out[i] = self._anchor_host + (r + self._wraps * WRAP_S - self._anchor_dev)
        return replace(batch, time=out)
