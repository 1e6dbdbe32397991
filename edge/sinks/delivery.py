"""Deliver events from the event log to one sink, in order, resuming after outages."""

from __future__ import annotations

import threading
import time
from typing import Protocol

from edgecsi.edge.event_log import EventLog
from edgecsi.edge.events import Event


class Sink(Protocol):
    name: str

    def deliver(self, event: Event) -> None:
        """Send one event; raise any exception if it was not acknowledged."""

    def close(self) -> None: ...


class Delivery:
    """A thread that moves a sink's cursor forward through the event log."""

    def __init__(self, log: EventLog, sink: Sink, *, backoff: tuple[float, float] = (0.2, 10.0)) -> None:
        self.log = log
        self.sink = sink
        self.backoff_min, self.backoff_max = backoff
        self.delivered = 0
        self.failures = 0
        self.last_error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"deliver-{sink.name}", daemon=True)

    def start(self) -> "Delivery":
        self._thread.start()
        return self

    @property
    def pending(self) -> int:
        return self.log.pending(self.sink.name)

    def _run(self) -> None:
        delay = self.backoff_min
        cursor = self.log.cursor(self.sink.name)
        while not self._stop.is_set():
            batch = self.log.after(cursor, limit=100)
            if not batch:
                self.log.wait_after(cursor, timeout=0.5)
                continue
            for event in batch:
                if self._stop.is_set():
                    return
                try:
                    self.sink.deliver(event)
                except Exception as exc:  # any failure: keep the event, retry later
                    self.failures += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    self._stop.wait(delay)
                    delay = min(delay * 2, self.backoff_max)
                    break
                delay = self.backoff_min
                cursor = int(event.id)
                self.log.set_cursor(self.sink.name, cursor)
                self.delivered += 1

    def drain(self, timeout: float) -> bool:
        """Wait until everything logged so far is delivered."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.pending == 0:
                return True
            time.sleep(0.02)
        return self.pending == 0

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self.sink.close()

    def stats(self) -> dict:
        return {"sink": self.sink.name, "delivered": self.delivered, "failures": self.failures,
                "pending": self.pending, "last_error": self.last_error}
