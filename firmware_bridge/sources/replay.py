"""Replay a capture file (any format ``firmware_bridge.read`` knows) as a live source.

``speed=1`` keeps the recorded packet spacing, ``speed=2`` plays twice as
fast, ``speed=0`` as fast as the consumer takes it. Packets keep their recorded
``time`` column; only the pacing follows the wall clock. Spacing comes from
that column in original packet order: a missing time counts as
``1/default_rate`` and a step backwards (an ESP32 microsecond clock wrapping,
a reboot) as no wait, so a replay never stalls.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from edgecsi.firmware_bridge.capture import Capture
from edgecsi.firmware_bridge.read import read as read_capture
from edgecsi.firmware_bridge.sources.polling import POLL_INTERVAL, PollingSource
from edgecsi.firmware_bridge.sources.stats import FINISHED
from edgecsi.frames import CSIBatch

DEFAULT_CHUNK = 256  # rows per yielded batch at speed 0


class ReplaySource(PollingSource):
    """Yield the packets of ``path`` paced like the recording (scaled by ``speed``)."""

    def __init__(self, path: str | os.PathLike, *, speed: float = 1.0, format: str | None = None,
                 loop: bool = False, chunk: int = DEFAULT_CHUNK, default_rate: float = 100.0,
                 silence_after: float | None = None, uri: str | None = None, **read_options) -> None:
        super().__init__(uri or f"file:{path}?speed={speed:g}", silence_after=silence_after)
        if speed < 0:
            raise ValueError("speed must be >= 0 (0 = as fast as possible)")
        self.path = Path(path)
        self.speed = float(speed)
        self.loop = bool(loop)
        self.chunk = max(1, int(chunk))
        self.capture: Capture = read_capture(self.path, format=format, **read_options)
        self.counters.bad.merge(self.capture.bad)
        self.counters.bytes = self.path.stat().st_size
        self._plan(default_rate)
        self._pos = 0
        self._start = time.monotonic()
        self.loops = 0

    def _plan(self, default_rate: float) -> None:
        """Original packet order as (batch, row) plus the replay offset of each packet."""
        batches = [b for b in self.capture.batches if len(b)]
        self._batches = batches
        if not batches:
            self._which = self._row = self._offset = np.zeros(0, dtype=np.int64)
            self._run_start = np.zeros(0, dtype=bool)
            return
        which = np.concatenate([np.full(len(b), i, dtype=np.int64) for i, b in enumerate(batches)])
        row = np.concatenate([np.arange(len(b), dtype=np.int64) for b in batches])
        order = np.argsort(np.concatenate([b.packet_index for b in batches]), kind="stable")
        self._which, self._row = which[order], row[order]
        t = np.concatenate([b.time for b in batches])[order]
        step = np.diff(t)
        step[~np.isfinite(step)] = 1.0 / default_rate
        step = np.clip(step, 0.0, None)
        offset = np.concatenate([[0.0], np.cumsum(step)])
        self._offset = offset / self.speed if self.speed > 0 else np.zeros_like(offset)
        # A run is rows of one batch in consecutive order; each yielded batch is a slice of one run.
        run_start = np.ones(len(order), dtype=bool)
        run_start[1:] = (self._which[1:] != self._which[:-1]) | (self._row[1:] != self._row[:-1] + 1)
        self._run_start = run_start

    @property
    def n_packets(self) -> int:
        return int(self._which.shape[0])

    def _emit(self, end: int) -> list[CSIBatch]:
        """Batches for packets [pos, end), split at run boundaries."""
        out = []
        pos = self._pos
        cuts = np.flatnonzero(self._run_start[pos + 1:end]) + pos + 1
        for a, b in zip([pos, *cuts.tolist()], [*cuts.tolist(), end]):
            r0 = int(self._row[a])
            out.append(self._batches[int(self._which[a])].select(slice(r0, r0 + (b - a))))
        self._pos = end
        self.counters.count_packets(end - pos, time.time())
        return out

    def read(self, timeout: float | None = POLL_INTERVAL) -> list[CSIBatch]:
        if self.finished:
            return []
        n = self.n_packets
        if self._pos >= n:
            if self.loop and n:
                self.loops += 1
                self._pos = 0
                self._start = time.monotonic()
            else:
                self.counters.state = FINISHED
                return []
        if self.speed == 0:
            return self._emit(min(n, self._pos + self.chunk))
        elapsed = time.monotonic() - self._start
        due = int(np.searchsorted(self._offset, elapsed, side="right"))
        if due <= self._pos:
            wait = float(self._offset[self._pos]) - elapsed
            if timeout is not None:
                wait = min(wait, timeout)
            if self._closed.wait(max(wait, 0.0)):
                return []
            elapsed = time.monotonic() - self._start
            due = int(np.searchsorted(self._offset, elapsed, side="right"))
            if due <= self._pos:
                return []
        return self._emit(min(due, n, self._pos + 16 * self.chunk))

    def _release(self) -> None:
        pass

