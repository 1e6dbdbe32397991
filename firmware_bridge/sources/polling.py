"""The shared loop of every live source: ``read(timeout)`` steps, iteration on top.

A concrete source implements ``read(timeout) -> list[CSIBatch]``: wait at most
``timeout`` seconds for input, return what it decoded (possibly nothing). This
base turns that into an iterator that survives silence, stops on ``close()``
(from any thread, within one poll interval) or at the end of a finite input,
and is a context manager.
"""

from __future__ import annotations

import threading
from typing import Iterator

from edgecsi.firmware_bridge.sources.stats import CLOSED, FINISHED, SourceCounters, SourceStats
from edgecsi.frames import CSIBatch

#: Longest a blocked iteration waits before checking for ``close()``.
POLL_INTERVAL = 0.25


class PollingSource:
    """Base for sources; subclasses set ``self.counters`` and implement ``read``/``_release``."""

    counters: SourceCounters

    def __init__(self, uri: str, *, silence_after: float | None = None) -> None:
        self.uri = uri
        self.counters = SourceCounters(uri=uri)
        if silence_after is not None:
            self.counters.silence_after = float(silence_after)
        self._closed = threading.Event()

    # -- what subclasses provide -------------------------------------------------
    def read(self, timeout: float | None = POLL_INTERVAL) -> list[CSIBatch]:
        """Wait up to ``timeout`` s for input; the batches it held (maybe none)."""
        raise NotImplementedError

    def _release(self) -> None:
        """Free the OS resources (socket, port, file)."""

    # -- shared behaviour --------------------------------------------------------
    @property
    def finished(self) -> bool:
        """True once a finite input is exhausted or the source was closed."""
        return self._closed.is_set() or self.counters.state == FINISHED

    def __iter__(self) -> Iterator[CSIBatch]:
        while not self.finished:
            batches = self.read(POLL_INTERVAL)
            yield from batches

    def stats(self) -> SourceStats:
        return self.counters.snapshot()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self.counters.state != FINISHED:
            self.counters.state = CLOSED
        self._release()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"
