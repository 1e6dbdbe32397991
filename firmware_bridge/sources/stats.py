"""What a live source has seen: packets, bytes, bad input by reason, silence, reconnects.

A source updates one :class:`SourceCounters` from its reading thread; ``stats()``
hands out a :class:`SourceStats` snapshot that another thread (the agent's status
endpoint, a test) may keep and print without racing the reader.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field

from edgecsi.errors import BadPackets, ParseError

#: Seconds without a good packet after which an open source reports itself silent.
DEFAULT_SILENCE_AFTER = 2.0

# Source states. "silent" is derived at snapshot time from the last packet time.
OPEN = "open"
SILENT = "silent"
DISCONNECTED = "disconnected"
FINISHED = "finished"  # finite input (file, stdin) fully read
CLOSED = "closed"


@dataclass(frozen=True)
class SourceStats:
    """A snapshot of one source's counters (times are ``time.time()`` seconds)."""

    uri: str
    state: str
    packets: int  # CSI packets yielded (rows of the batches)
    bytes: int  # raw input bytes read (datagrams, serial bytes, file bytes)
    bad: BadPackets  # skipped input by reason (a copy)
    ignored_lines: int  # text that is not CSI (boot log, header rows): expected, not an error
    started: float
    last_packet_time: float | None  # wall clock when the last good packet arrived
    silent_since: float | None  # set while no packet came for ``silence_after`` seconds
    silent_seconds: float  # 0.0 unless silent
    reconnects: int  # successful reopens after an unplug / read error
    disconnects: int
    last_error: str
    kernel_drops: int | None  # datagrams the kernel dropped (socket buffer full); None when unknown
    peers: dict[str, int]  # packets per sender (UDP) or device path (serial)

    @property
    def bad_total(self) -> int:
        return self.bad.total

    def as_dict(self) -> dict:
        """JSON-ready view."""
        return {
            "uri": self.uri,
            "state": self.state,
            "packets": self.packets,
            "bytes": self.bytes,
            "bad": self.bad.as_dict(),
            "bad_total": self.bad.total,
            "bad_examples": list(self.bad.examples),
            "ignored_lines": self.ignored_lines,
            "started": self.started,
            "last_packet_time": self.last_packet_time,
            "silent_since": self.silent_since,
            "silent_seconds": self.silent_seconds,
            "reconnects": self.reconnects,
            "disconnects": self.disconnects,
            "last_error": self.last_error,
            "kernel_drops": self.kernel_drops,
            "peers": dict(self.peers),
        }


@dataclass
class SourceCounters:
    """Mutable counters owned by one source; only that source's reader writes them."""

    uri: str
    silence_after: float = DEFAULT_SILENCE_AFTER
    state: str = OPEN
    packets: int = 0
    bytes: int = 0
    bad: BadPackets = field(default_factory=BadPackets)
    ignored_lines: int = 0
    started: float = field(default_factory=time.time)
    last_packet_time: float | None = None
    reconnects: int = 0
    disconnects: int = 0
    last_error: str = ""
    kernel_drops: int | None = None
    peers: dict[str, int] = field(default_factory=dict)
    # Guards the containers (bad, peers) against a snapshot taken from another thread.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_bad(self, error: ParseError) -> None:
        with self.lock:
            self.bad.add(error)

    def count_bad_reason(self, reason: str, detail: str = "", **where) -> None:
        self.count_bad(ParseError(reason, detail, source=where.pop("source", self.uri), **where))

    def count_packets(self, n: int, now: float, peer: str | None = None) -> None:
        self.packets += n
        self.last_packet_time = now
        if peer is not None:
            with self.lock:
                self.peers[peer] = self.peers.get(peer, 0) + n

    def snapshot(self, now: float | None = None) -> SourceStats:
        now = time.time() if now is None else now
        with self.lock:
            bad = copy.deepcopy(self.bad)
            peers = dict(self.peers)
        state = self.state
        silent_since = None
        silent_seconds = 0.0
        if state in (OPEN, DISCONNECTED):
            quiet_from = self.last_packet_time if self.last_packet_time is not None else self.started
            if now - quiet_from >= self.silence_after:
                state = SILENT if state == OPEN else state
                silent_since = quiet_from
                silent_seconds = now - quiet_from
        return SourceStats(
            uri=self.uri,
            state=state,
            packets=self.packets,
            bytes=self.bytes,
            bad=bad,
            ignored_lines=self.ignored_lines,
            started=self.started,
            last_packet_time=self.last_packet_time,
            silent_since=silent_since,
            silent_seconds=silent_seconds,
            reconnects=self.reconnects,
            disconnects=self.disconnects,
            last_error=self.last_error,
            kernel_drops=self.kernel_drops,
            peers=peers,
        )
