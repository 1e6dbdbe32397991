"""JSON lines on standard output, one event per line, flushed at once."""

from __future__ import annotations

import sys
from typing import TextIO

from edgecsi.edge.events import Event


class StdoutSink:
    name = "stdout"

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def deliver(self, event: Event) -> None:
        self.stream.write(event.to_json() + "\n")
        self.stream.flush()

    def close(self) -> None:
        pass
