"""Stdin source: ESP32 text lines, a live pcap stream, or any capture file piped in.

What arrives is decided from the first bytes (unless ``format`` says):

- a classic pcap header: records are decoded as they come (``tcpdump -U -w -``
  on a Nexmon router piped over ssh), each UDP payload as a Nexmon datagram;
- text: ESP32 ``CSI_DATA`` lines (``idf.py monitor``, ``cat log.csv``);
- anything else: read to the end, then parsed as a whole file
  (``cat capture.dat | ...``) by ``firmware_bridge.read``.
"""

from __future__ import annotations

import os
import select
import sys
import time
from typing import BinaryIO

from edgecsi.errors import ParseError
from edgecsi.firmware_bridge.read import read as read_capture
from edgecsi.firmware_bridge.sources.decoders import TEXT_FORMATS, DatagramDecoder, LineDecoder, looks_like_text
from edgecsi.firmware_bridge.sources.line_buffer import DEFAULT_MAX_LINE, LineBuffer
from edgecsi.firmware_bridge.sources.pcap_stream import PcapStream, is_pcap, udp_payload
from edgecsi.firmware_bridge.sources.polling import POLL_INTERVAL, PollingSource
from edgecsi.firmware_bridge.sources.stats import FINISHED
from edgecsi.frames import CSIBatch

READ_CHUNK = 65536
SNIFF_BYTES = 512
LINES, PCAP, WHOLE_FILE = "lines", "pcap", "file"


class StdinSource(PollingSource):
    """Read CSI from a byte stream (default ``sys.stdin.buffer``)."""

    def __init__(self, stream: BinaryIO | None = None, *, format: str = "auto", chip: str | None = None,
                 port: int | None = None, max_line: int = DEFAULT_MAX_LINE, silence_after: float | None = None,
                 uri: str = "-", **options) -> None:
        super().__init__(uri, silence_after=silence_after)
        self.stream = stream if stream is not None else sys.stdin.buffer
        try:
            self._fd: int | None = self.stream.fileno()
        except (AttributeError, OSError, ValueError):
            self._fd = None  # an in-memory stream: reads never block
        self.format = format
        self.chip = chip
        self.port = port
        self.options = options
        self.lines = LineBuffer(max_line)
        self._counted_too_long = 0
        self._line_no = 0
        self._mode: str | None = self._mode_from_format(format)
        self._head = b""
        self._whole: list[bytes] = []
        self._pcap: PcapStream | None = None
        self._line_decoder: LineDecoder | None = None
        self._datagrams: DatagramDecoder | None = None

    @staticmethod
    def _mode_from_format(format: str) -> str | None:
        if format == "auto":
            return None
        if format in TEXT_FORMATS:
            return LINES
        if format in ("pcap", "nexmon"):
            return PCAP
        return WHOLE_FILE  # a file format name for firmware_bridge.read

    # -- reading -----------------------------------------------------------------
    def _read_chunk(self, timeout: float | None) -> bytes | None:
        """Bytes (b"" at end of input), or None when nothing came within ``timeout``."""
        if self._fd is not None:
            ready, _, _ = select.select([self._fd], [], [], timeout)
            if not ready:
                return None
            return os.read(self._fd, READ_CHUNK)
        reader = getattr(self.stream, "read1", self.stream.read)
        return reader(READ_CHUNK)

    def read(self, timeout: float | None = POLL_INTERVAL) -> list[CSIBatch]:
        if self.finished:
            return []
        try:
            data = self._read_chunk(timeout)
        except (OSError, ValueError) as exc:  # stream closed under us
            self.counters.last_error = f"read: {exc}"
            data = b""
        if data is None:
            return []
        self.counters.bytes += len(data)
        if self._mode is None:
            self._head += data
            head = self._head
            decided = (not data or len(head) >= SNIFF_BYTES or b"\n" in head
                       or (len(head) >= 4 and is_pcap(head)))
            if not decided:
                return []  # not enough to tell yet
            data, self._head = self._head, b""
            self._mode = PCAP if is_pcap(data) else LINES if looks_like_text(data[:SNIFF_BYTES]) else WHOLE_FILE
        if self._mode == LINES:
            out = self._lines(data)
        elif self._mode == PCAP:
            out = self._pcap_records(data)
        else:
            out = self._whole_file(data)
        if not data:
            self.counters.state = FINISHED
        return out

    def _lines(self, data: bytes) -> list[CSIBatch]:
        if self._line_decoder is None:
            self._line_decoder = LineDecoder(self.counters, format=self.format if self.format in TEXT_FORMATS
                                             else "esp32", source="<stdin>")
        lines = self.lines.feed(data) if data else []
        if not data:
            last = self.lines.flush()
            if last is not None:
                lines.append(last)
        while self._counted_too_long < self.lines.too_long:
            self._counted_too_long += 1
            self.counters.count_bad_reason("line_too_long", f"no newline within {self.lines.max_line} bytes",
                                           source="<stdin>")
        out = []
        now = time.time()
        for line in lines:
            self._line_no += 1
            batch = self._line_decoder.decode(line, received=now, line_no=self._line_no)
            if batch is not None:
                out.append(batch)
        if out:
            self.counters.count_packets(sum(len(b) for b in out), now)
        return out

    def _pcap_records(self, data: bytes) -> list[CSIBatch]:
        if self._pcap is None:
            self._pcap = PcapStream(source="<stdin>")
            self._datagrams = DatagramDecoder(self.counters, format="nexmon" if self.format == "nexmon" else "auto",
                                              chip=self.chip, source="<stdin>", **self.options)
        if not data:
            if self._pcap.pending:
                self.counters.count_bad_reason("truncated", f"{self._pcap.pending} bytes of an unfinished record",
                                               source="<stdin>", offset=self._pcap.offset)
            return []
        try:
            records = self._pcap.feed(data)
        except ParseError as exc:  # a corrupt length field: no way to find the next record
            self.counters.count_bad(exc)
            self.counters.last_error = str(exc)
            self.counters.state = FINISHED
            return []
        payloads, times = [], []
        for ts, frame in records:
            try:
                payloads.append(udp_payload(frame, self._pcap.linktype, port=self.port, source="<stdin>"))
                times.append(ts)
            except ParseError as exc:
                self.counters.count_bad(exc)
        if not payloads:
            return []
        return self._datagrams.decode_many(payloads, times, [None] * len(payloads))

    def _whole_file(self, data: bytes) -> list[CSIBatch]:
        if data:
            self._whole.append(data)
            return []
        blob = b"".join(self._whole)
        self._whole = []
        try:
            capture = read_capture(blob, format=None if self.format == "auto" else self.format, **self.options)
        except ParseError as exc:
            self.counters.count_bad(exc)
            self.counters.last_error = str(exc)
            return []
        self.counters.bad.merge(capture.bad)
        batches = [b for b in capture.batches if len(b)]
        if batches:
            self.counters.count_packets(sum(len(b) for b in batches), time.time())
        return batches

    def _release(self) -> None:
        pass  # stdin belongs to the process
