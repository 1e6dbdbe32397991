"""Live CSI sources: UDP, serial, file replay, stdin.

A source yields :class:`edgecsi.frames.CSIBatch` objects (one or a few packets
each; the consumer groups them by stream) and never raises out of iteration
for bad input: bad packets are counted by reason in ``stats().bad`` and
skipped, silence only shows in ``stats()``, an unplugged serial device is
reopened with backoff.

Open one from a URI with :func:`open_source`::

    with open_source("udp://0.0.0.0:5500") as src:
        for batch in src:
            ...
"""

from __future__ import annotations

from typing import Iterator, Protocol, runtime_checkable

from edgecsi.firmware_bridge.sources.stats import SourceStats
from edgecsi.frames import CSIBatch


@runtime_checkable
class Source(Protocol):
    """What every live source offers."""

    uri: str

    def __iter__(self) -> Iterator[CSIBatch]:
        """Batches as they arrive; blocks through silence; ends on close() or end of input."""
        ...

    def read(self, timeout: float | None = ...) -> list[CSIBatch]:
        """One step: wait at most ``timeout`` s, return the batches decoded (maybe none)."""
        ...

    @property
    def finished(self) -> bool:
        """True once a finite input (file, stdin) is used up or the source was closed."""
        ...

    def stats(self) -> SourceStats:
        """A snapshot of the counters; safe to call from another thread."""
        ...

    def close(self) -> None:
        ...


def open_source(uri: str, **options) -> Source:
    """See :func:`edgecsi.firmware_bridge.sources.uri.open_source`."""
    from edgecsi.firmware_bridge.sources.uri import open_source as _open

    return _open(uri, **options)


__all__ = ["Source", "SourceStats", "open_source"]
