"""Errors and bad-packet accounting shared by every reader and source."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


class EdgeCSIError(Exception):
    """Base class of every error edgecsi raises on purpose."""


class ParseError(EdgeCSIError):
    """Input that cannot be read, with where it happened.

    ``where`` is a human-readable location: ``"file.pcap: byte 4120"`` or
    ``"capture.csv: line 17"``; ``reason`` is a short stable token used as the
    key when bad packets are counted (``"truncated"``, ``"bad_magic"``...).
    """

    def __init__(self, reason: str, detail: str = "", *, source: str = "", offset: int | None = None,
                 line: int | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.source = source
        self.offset = offset
        self.line = line
        super().__init__(self._message())

    @property
    def where(self) -> str:
        parts = [self.source or "<input>"]
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.offset is not None:
            parts.append(f"byte {self.offset}")
        return ": ".join(parts)

    def _message(self) -> str:
        text = f"{self.where}: {self.reason}"
        return f"{text}: {self.detail}" if self.detail else text


class UnknownFormatError(ParseError):
    """No reader recognises the input."""


@dataclass
class BadPackets:
    """Counts of skipped input by reason, plus the first few examples for messages."""

    counts: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    max_examples: int = 20

    def add(self, error: ParseError) -> None:
        self.counts[error.reason] += 1
        if len(self.examples) < self.max_examples:
            self.examples.append(str(error))

    def merge(self, other: "BadPackets") -> None:
        self.counts.update(other.counts)
        room = self.max_examples - len(self.examples)
        self.examples.extend(other.examples[:max(room, 0)])

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))
