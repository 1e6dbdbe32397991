"""Serial source: ESP32 CSI text lines from a USB-serial port, surviving unplug.

When the port fails (USB cable pulled, board reset re-enumerating the device)
the source closes it, says ``disconnected`` in its stats and tries to reopen
the same path with exponential backoff; a successful reopen counts as a
reconnect. A udev symlink (``/dev/serial/by-id/...``) makes the path stable
across re-enumeration.
"""

from __future__ import annotations

import select
import time

import serial

from edgecsi.firmware_bridge.sources.decoders import LineDecoder
from edgecsi.firmware_bridge.sources.line_buffer import DEFAULT_MAX_LINE, LineBuffer
from edgecsi.firmware_bridge.sources.polling import POLL_INTERVAL, PollingSource
from edgecsi.firmware_bridge.sources.stats import DISCONNECTED, OPEN
from edgecsi.errors import EdgeCSIError
from edgecsi.frames import CSIBatch

#: ESP32-CSI-Tool and esp-csi both default to this rate.
DEFAULT_BAUD = 921600
READ_CHUNK = 65536


class SerialOpenError(EdgeCSIError):
    """The port could not be opened at start (and ``wait`` was not asked for)."""


class SerialSource(PollingSource):
    """Read ESP32 ``CSI_DATA`` lines from ``port``.

    ``wait=False`` (default) raises :class:`SerialOpenError` when the port cannot
    be opened at start, so a wrong path is seen at once; ``wait=True`` keeps
    retrying (a gateway started before the board is plugged in). After the
    first open, failures are never raised: the port is reopened with backoff
    from ``backoff_min`` up to ``backoff_max`` seconds.
    """

    def __init__(self, port: str, baud: int = DEFAULT_BAUD, *, format: str = "esp32",
                 max_line: int = DEFAULT_MAX_LINE, wait: bool = False, backoff_min: float = 0.1,
                 backoff_max: float = 5.0, silence_after: float | None = None, uri: str | None = None) -> None:
        super().__init__(uri or f"serial://{port}?baud={baud}", silence_after=silence_after)
        self.port_path = port
        self.baud = int(baud)
        self.backoff_min = float(backoff_min)
        self.backoff_max = float(backoff_max)
        self.decoder = LineDecoder(self.counters, format=format, source=port)
        self.lines = LineBuffer(max_line)
        self._counted_too_long = 0
        self._line_no = 0
        self._port: serial.Serial | None = None
        self._backoff = self.backoff_min
        self._next_attempt = 0.0
        if not self._try_open() and not wait:
            raise SerialOpenError(f"{port}: cannot open serial port: {self.counters.last_error}")

    # -- port lifecycle ----------------------------------------------------------
    def _try_open(self) -> bool:
        try:
            # timeout=0: reads return what is there; waiting is done with select.
            port = serial.Serial(self.port_path, self.baud, timeout=0)
        except (serial.SerialException, OSError, ValueError) as exc:
            self.counters.state = DISCONNECTED
            self.counters.last_error = f"open: {exc}"
            self._next_attempt = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, self.backoff_max)
            return False
        was_open_before = self.counters.disconnects > 0
        self._port = port
        self._backoff = self.backoff_min
        self.counters.state = OPEN
        if was_open_before:
            self.counters.reconnects += 1
        # A new connection starts a new line stream: the tail of the old one is junk.
        self.lines = LineBuffer(self.lines.max_line)
        self._counted_too_long = 0
        return True

    def _lost(self, exc: Exception) -> None:
        self.counters.disconnects += 1
        self.counters.state = DISCONNECTED
        self.counters.last_error = f"read: {exc}"
        try:
            self._port.close()
        except Exception:  # the device is gone; closing may fail in any way
            pass
        self._port = None
        self._backoff = self.backoff_min
        self._next_attempt = time.monotonic() + self._backoff

    @property
    def connected(self) -> bool:
        return self._port is not None

    # -- reading -----------------------------------------------------------------
    def read(self, timeout: float | None = POLL_INTERVAL) -> list[CSIBatch]:
        if self.finished:
            return []
        wait = POLL_INTERVAL if timeout is None else max(0.0, timeout)
        if self._port is None:
            delay = self._next_attempt - time.monotonic()
            if delay > 0:
                self._closed.wait(min(delay, wait))
                return []
            if not self._try_open() or self.finished:
                return []
        port = self._port
        try:
            ready, _, _ = select.select([port.fd], [], [], wait)
            if not ready:
                return []
            data = port.read(min(max(port.in_waiting, 1), READ_CHUNK))
        except (serial.SerialException, OSError, TypeError, ValueError) as exc:
            if not self.finished:
                self._lost(exc)
            return []
        return self._decode(data)

    def _decode(self, data: bytes) -> list[CSIBatch]:
        counters = self.counters
        counters.bytes += len(data)
        lines = self.lines.feed(data)
        if self.lines.too_long != self._counted_too_long:
            for _ in range(self.lines.too_long - self._counted_too_long):
                counters.count_bad_reason("line_too_long", f"no newline within {self.lines.max_line} bytes",
                                          source=self.port_path)
            self._counted_too_long = self.lines.too_long
        out = []
        now = time.time()
        for line in lines:
            self._line_no += 1
            batch = self.decoder.decode(line, received=now, line_no=self._line_no)
            if batch is not None:
                out.append(batch)
        if out:
            counters.count_packets(sum(len(b) for b in out), now, self.port_path)
        return out

    def _release(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            except Exception:  # closing a vanished device may fail in any way
                pass
            self._port = None
