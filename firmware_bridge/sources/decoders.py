"""Turn one text line or one datagram into CSI, choosing the format per record.

Live inputs mix things: an ESP32 serial port prints its boot log before the
``CSI_DATA`` lines, a UDP port may receive Nexmon payloads from a router and
ESP32 lines from a board. These decoders pick the parser per record (Nexmon
magic vs text; esp-csi's quoted JSON array vs ESP32-CSI-Tool's bracket list),
count what they cannot use in the source's counters, and never raise for bad
input.
"""

from __future__ import annotations

import time
from types import ModuleType

import numpy as np

from edgecsi.errors import ParseError
from edgecsi.firmware_bridge import formats
from edgecsi.firmware_bridge.sources.stats import SourceCounters
from edgecsi.frames import CSIBatch

#: Names accepted for ``format=`` on live sources.
TEXT_FORMATS = {
    "esp32": None,  # either ESP32 text format, chosen per line
    "esp32-csi-tool": "esp32_csi_tool",
    "esp-csi": "esp_csi",
}
DATAGRAM_FORMATS = {"auto", "nexmon", *TEXT_FORMATS}

NEXMON_MAGIC = b"\x11\x11"  # both header layouts start with it (2 or 4 bytes of 0x11)
CSI_TAG = b"CSI_DATA"
# A line may carry a little junk before the tag (a log prefix, the tail of a
# line cut by a reset); look for the tag this far in.
_TAG_SEARCH = 64
_TEXT_SNIFF = 256  # bytes of a datagram looked at to call it text
_PRINTABLE = bytes(range(32, 127)) + b"\t\n\r"


def looks_like_text(head: bytes) -> bool:
    """Mostly printable ASCII, as a serial log or CSV line is."""
    if not head:
        return False
    unprintable = len(head.translate(None, _PRINTABLE))
    return unprintable <= 0.05 * len(head)


def _module(name: str) -> ModuleType:
    try:
        return formats.load(name)
    except ModuleNotFoundError as exc:
        if exc.name == f"edgecsi.firmware_bridge.formats.{name}":
            raise RuntimeError(f"format module {name!r} is not available in this build") from exc
        raise


class LineDecoder:
    """ESP32 text lines (ESP32-CSI-Tool or esp-csi) -> one-packet batches."""

    def __init__(self, counters: SourceCounters, *, format: str = "esp32", source: str = "") -> None:
        if format not in TEXT_FORMATS:
            raise ValueError(f"unknown line format {format!r}; known: {', '.join(TEXT_FORMATS)}")
        self.counters = counters
        self.source = source or counters.uri
        forced = TEXT_FORMATS[format]
        self._forced = _module(forced) if forced else None
        self._tool: ModuleType | None = None
        self._esp_csi: ModuleType | None = None

    def _pick(self, line: bytes) -> ModuleType:
        if self._forced is not None:
            return self._forced
        # esp-csi prints the values as one quoted JSON array: ..., "[1,2,...]"
        if b'"[' in line:
            if self._esp_csi is None:
                self._esp_csi = _module("esp_csi")
            return self._esp_csi
        if self._tool is None:
            self._tool = _module("esp32_csi_tool")
        return self._tool

    def decode(self, line: bytes, *, received: float | None, line_no: int | None = None,
               source: str | None = None) -> CSIBatch | None:
        """The packet on this line, or None (not CSI, or bad: counted either way)."""
        tag = line.find(CSI_TAG, 0, _TAG_SEARCH)
        if tag < 0:
            if line.strip():
                self.counters.ignored_lines += 1  # boot log, header row, prompt
            return None
        if tag:
            line = line[tag:]
        try:
            parser = self._pick(line)
        except RuntimeError as exc:  # that format's module is not in this build
            self.counters.count_bad(ParseError("unsupported_format", str(exc), source=source or self.source,
                                               line=line_no))
            return None
        try:
            return parser.parse_line(line.rstrip(b"\r\n"), received=received,
                                     source=source or self.source, line_no=line_no)
        except ParseError as exc:
            self.counters.count_bad(exc)
        except (ValueError, IndexError, TypeError, UnicodeDecodeError) as exc:
            # A parser bug must not stop a live source; count it like bad input.
            self.counters.count_bad(ParseError("parser_error", f"{type(exc).__name__}: {exc}",
                                               source=source or self.source, line=line_no))
        return None


class DatagramDecoder:
    """UDP payloads -> batches: Nexmon payloads, or datagrams of ESP32 lines.

    :meth:`decode_many` takes what one wake-up drained from a socket (or one
    chunk of a pcap stream) and decodes the Nexmon payloads of each length in
    one vectorised call, so a burst costs about as much as one packet; text
    datagrams go line by line (text that is not CSI counts as ignored
    lines, like a boot log on a serial port). Packets are counted per peer in the counters.
    """

    def __init__(self, counters: SourceCounters, *, format: str = "auto", chip: str | None = None,
                 source: str = "", **nexmon_options) -> None:
        if format not in DATAGRAM_FORMATS:
            raise ValueError(f"unknown datagram format {format!r}; known: {', '.join(sorted(DATAGRAM_FORMATS))}")
        self.counters = counters
        self.format = format
        self.source = source or counters.uri
        self.chip = chip
        self.nexmon_options = nexmon_options
        self._nexmon = _module("nexmon_payload") if format in ("auto", "nexmon") else None
        self._bulk = getattr(self._nexmon, "decode_payloads", None)
        if self._nexmon is not None and hasattr(self._nexmon, "check_options"):
            self._nexmon.check_options(chip=chip, **{k: v for k, v in nexmon_options.items() if k == "scaling"})
        text_format = "esp32" if format in ("auto", "nexmon") else format
        self._lines = None if format == "nexmon" else LineDecoder(counters, format=text_format, source=self.source)
        self.datagrams = 0

    def _is_nexmon(self, payload: bytes) -> bool:
        return self._nexmon is not None and (self._lines is None or payload[:2] == NEXMON_MAGIC)

    def decode(self, payload: bytes, *, received: float | None, source: str | None = None,
               peer: str | None = None) -> list[CSIBatch]:
        return self.decode_many([payload], [received], [peer], source=source)

    def decode_many(self, payloads: list[bytes], times: list[float | None], peers: list[str | None],
                    *, source: str | None = None) -> list[CSIBatch]:
        where = source or self.source
        self.datagrams += len(payloads)
        now = time.time()
        out: list[CSIBatch] = []
        nexmon_rows: dict[int, list[int]] = {}  # payload length -> indexes into payloads
        for i, payload in enumerate(payloads):
            if self._is_nexmon(payload):
                nexmon_rows.setdefault(len(payload), []).append(i)
            elif self._lines is not None and looks_like_text(payload[:_TEXT_SNIFF]):
                got = 0
                seen = self.counters.ignored_lines + self.counters.bad.total
                for line in payload.split(b"\n"):
                    batch = self._lines.decode(line, received=times[i], source=where)
                    if batch is not None:
                        out.append(batch)
                        got += len(batch)
                if got:
                    self.counters.count_packets(got, now, peers[i])
                elif self.counters.ignored_lines + self.counters.bad.total == seen:
                    self.counters.ignored_lines += 1  # blank text: still accounted for
            else:
                self.counters.count_bad(ParseError(
                    "unknown_datagram", f"{len(payload)} bytes, neither a Nexmon payload nor text "
                    f"(starts {payload[:8].hex()})", source=where, offset=0))
        for rows in nexmon_rows.values():
            out.extend(self._nexmon_group([payloads[i] for i in rows], [times[i] for i in rows],
                                          [peers[i] for i in rows], where, now))
        return out

    def _nexmon_group(self, payloads: list[bytes], times: list[float | None], peers: list[str | None],
                      where: str, now: float) -> list[CSIBatch]:
        """Payloads of one length -> batches; rejected ones counted."""
        counters = self.counters
        if self._bulk is None or len(payloads) == 1:
            out = []
            for payload, t, peer in zip(payloads, times, peers):
                try:
                    batch = self._nexmon.parse_datagram(payload, received=t, chip=self.chip, source=where,
                                                        **self.nexmon_options)
                except ParseError as exc:
                    counters.count_bad(exc)
                    continue
                except (ValueError, IndexError, TypeError) as exc:
                    counters.count_bad(ParseError("parser_error", f"{type(exc).__name__}: {exc}",
                                                  source=where, offset=0))
                    continue
                out.append(batch)
                counters.count_packets(len(batch), now, peer)
            return out
        block = np.frombuffer(b"".join(payloads), dtype=np.uint8).reshape(len(payloads), -1)
        stamp = np.array([np.nan if t is None else t for t in times], dtype=np.float64)
        try:
            decoded = self._bulk(block, time=stamp, chip=self.chip, **self.nexmon_options)
        except (ValueError, IndexError, TypeError) as exc:
            counters.count_bad_reason("parser_error", f"{type(exc).__name__}: {exc}", source=where, offset=0)
            return []
        accepted = np.ones(len(payloads), dtype=bool)
        with counters.lock:
            decoded.record_bad(counters.bad, source=where)
        for rejected in decoded.rejected:
            accepted[rejected.rows] = False
        by_peer: dict[str | None, int] = {}
        for peer, ok in zip(peers, accepted.tolist()):
            if ok:
                by_peer[peer] = by_peer.get(peer, 0) + 1
        for peer, n in by_peer.items():
            counters.count_packets(n, now, peer)
        return list(decoded.batches)

