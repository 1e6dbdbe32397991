"""Split a byte stream into lines with a bound on how long a line may grow.

A serial port that loses its newline (baud mismatch, a device spewing binary)
would otherwise grow the buffer without end; a line longer than ``max_line``
bytes is dropped whole (up to the next newline) and counted.
"""

from __future__ import annotations

#: Longest ESP32 line seen in practice is ~2.5 kB (612 values); leave room.
DEFAULT_MAX_LINE = 16384


class LineBuffer:
    """Feed bytes, get complete lines (without the ``\\n``; a trailing ``\\r`` is kept)."""

    def __init__(self, max_line: int = DEFAULT_MAX_LINE) -> None:
        if max_line < 1:
            raise ValueError("max_line must be positive")
        self.max_line = max_line
        self.too_long = 0  # lines dropped for exceeding max_line
        self._partial = bytearray()
        self._discarding = False  # inside an over-long line: skip to the next newline

    def feed(self, data: bytes) -> list[bytes]:
        lines: list[bytes] = []
        start = 0
        find = data.find
        while True:
            nl = find(b"\n", start)
            if nl < 0:
                break
            if self._discarding:
                self._discarding = False  # already counted when it overflowed
            else:
                if self._partial:
                    self._partial += data[start:nl]
                    line = bytes(self._partial)
                    self._partial.clear()
                else:
                    line = data[start:nl]
                if len(line) > self.max_line:
                    self.too_long += 1
                else:
                    lines.append(line)
            start = nl + 1
        if not self._discarding and start < len(data):
            self._partial += data[start:]
            if len(self._partial) > self.max_line:
                self._partial.clear()
                self._discarding = True
                self.too_long += 1
        return lines

    def flush(self) -> bytes | None:
        """The unterminated last line at end of input (None if there is none)."""
        if self._discarding or not self._partial:
            self._partial.clear()
            self._discarding = False
            return None
        line = bytes(self._partial)
        self._partial.clear()
        return line

    @property
    def pending(self) -> int:
        """Bytes held for an unterminated line."""
        return len(self._partial)
