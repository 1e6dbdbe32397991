"""Nexmon CSI captures in classic pcap files (``tcpdump -w`` on the Nexmon host).

Each record is one Ethernet (or Linux cooked, or raw IP) frame carrying an
IPv4/UDP datagram to port 5500 whose payload is decoded by
:mod:`edgecsi.firmware_bridge.formats.nexmon_payload`.

- All four pcap magics (little/big endian, micro/nanosecond timestamps).
- Link types 1 (Ethernet, with or without one 802.1Q tag), 113 (Linux SLL,
  ``tcpdump -i any``), 276 (Linux SLL2), 101/228 (raw IPv4).
- The UDP length, not the record length, decides the payload: ~1-3 % of
  frames carry 4*k padding bytes after the datagram (nexmon_csi issue #279);
  they are kept (the MATLAB reader and CSIKit drop them).
- Records that are not IPv4/UDP to the CSI port, or whose payload is not a
  Nexmon payload, are counted in ``Capture.bad`` by reason and skipped; so is a
  truncated last record.

Speed: record headers are located with numpy (runs of equal-length records
are found with one strided comparison each) and all payloads of one length
are decoded together, so no Python code runs per packet.
"""

from __future__ import annotations

import struct
from dataclasses import replace

import numpy as np
from numpy.lib.stride_tricks import as_strided, sliding_window_view

from edgecsi.errors import BadPackets, ParseError
from edgecsi.firmware_bridge.capture import Capture
from edgecsi.firmware_bridge.formats import nexmon_payload
from edgecsi.firmware_bridge.formats.nexmon_payload import DEFAULT_SCALING, UDP_PORT, record_rejected
from edgecsi.frames import CSIBatch, concat

NAME = "nexmon-pcap"

#: First four file bytes -> (byte order, timestamp fraction ticks per second).
MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e6),
    b"\xa1\xb2\xc3\xd4": (">", 1e6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e9),
    b"\xa1\xb2\x3c\x4d": (">", 1e9),
}
GLOBAL_HEADER_LEN = 24
RECORD_HEADER_LEN = 16

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_LINUX_SLL2 = 276
LINKTYPES = {
    LINKTYPE_ETHERNET: "Ethernet",
    LINKTYPE_RAW: "raw IP",
    LINKTYPE_LINUX_SLL: "Linux cooked (SLL)",
    LINKTYPE_IPV4: "raw IPv4",
    LINKTYPE_LINUX_SLL2: "Linux cooked v2 (SLL2)",
}

# Link + IPv4 (with options) + UDP headers all lie within this many bytes of a frame's start.
_HEADER_WINDOW = 128

_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_VLAN = (0x8100, 0x88A8)

# Frame-level rejection reasons, in the order they are checked.
_FRAME_REASONS = ("truncated_frame", "not_ipv4", "bad_ip_header", "not_udp", "ip_fragment",
                  "wrong_port", "bad_udp_length")


def sniff(head: bytes) -> bool:
    return bytes(head[:4]) in MAGICS


def windows(buf: np.ndarray, offsets: np.ndarray, width: int) -> np.ndarray:
    """uint8[len(offsets), width]: the bytes at each offset, zero-filled past the end of ``buf``."""
    offsets = np.asarray(offsets, dtype=np.int64)
    size = buf.shape[0]
    inside = offsets <= size - width
    if inside.all():
        return sliding_window_view(buf, width)[offsets]
    out = np.zeros((len(offsets), width), dtype=np.uint8)
    if inside.any():
        out[inside] = sliding_window_view(buf, width)[offsets[inside]]
    # Only the last few offsets get here: copy the tail into a zero-padded scratch buffer.
    start = max(0, size - width)
    tail = np.zeros(size - start + width, dtype=np.uint8)
    tail[:size - start] = buf[start:]
    out[~inside] = sliding_window_view(tail, width)[offsets[~inside] - start]
    return out


#: Records longer than this are taken as a damaged length field (snaplen is 262144 in practice).
MAX_RECORD = 262144
#: A resynchronisation candidate's timestamp must lie this close to the last good one (seconds).
_RESYNC_TIME_WINDOW = 86400


def scan_records(data: bytes, byteorder: str, *, max_record: int = MAX_RECORD
                 ) -> tuple[np.ndarray, list[tuple[str, int, str]]]:
    """Offsets of the complete records after the global header, and the problems met as
    (reason, offset, detail): a truncated last record, or a damaged record header.

    Walks the records in runs: from each record, the following records are
    assumed to have the same length and that is checked with one strided numpy
    comparison; the first record that differs starts the next run. A capture
    whose records all have one length is located in a handful of numpy calls.

    A record header whose length is impossible (over ``max_record``, or past the
    end of the file while a later plausible record exists) is skipped: the
    reader searches on for the next position holding a plausible record header
    (sane lengths, timestamp within a day of the last good record) followed by
    another one or by the end of the file, so one damaged length does not lose
    the rest of the capture.
    """
    size = len(data)
    header_at = struct.Struct(byteorder + "IIII").unpack_from
    starts: list[np.ndarray] = []
    problems: list[tuple[str, int, str]] = []
    pos = GLOBAL_HEADER_LEN
    window = 64
    last_sec: int | None = None
    trust_orig = True  # cleared if a writer stores orig_len < incl_len on purpose
    while pos + RECORD_HEADER_LEN <= size:
        sec, _frac, incl, orig = header_at(data, pos)
        stride = RECORD_HEADER_LEN + incl
        fits = incl <= max_record and pos + stride <= size
        if not fits or (trust_orig and orig < incl):
            resume = _resync(data, pos + 1, byteorder, max_record, last_sec)
            if resume is None and fits:
                trust_orig = False  # nothing better follows: the odd orig_len is the file's habit
            elif resume is None:
                if incl <= max_record:
                    problems.append(("truncated", pos, f"last record needs {stride} bytes, {size - pos} left"))
                else:
                    problems.append(("bad_record_header", pos, f"record length {incl}; no later record found"))
                break
            else:
                problems.append(("bad_record_header", pos, f"record length {incl} (original {orig}); skipped "
                                                           f"{resume - pos} bytes to the next plausible record"))
                pos = resume
                continue
        last_sec = sec
        fits = (size - pos) // stride
        count = 1
        if fits > 1:
            check = min(fits, window)
            lengths = np.ndarray((check,), dtype=byteorder + "u4", buffer=data, offset=pos + 8, strides=(stride,))
            differ = np.flatnonzero(lengths != incl)
            count = int(differ[0]) if differ.size else check
            # Double the look-ahead while records stay uniform; start small again after a change.
            window = 2 * check if count == check else 64
        starts.append(np.arange(pos, pos + count * stride, stride, dtype=np.int64))
        pos += count * stride
    else:
        if pos < size:
            problems.append(("truncated", pos, f"{size - pos} bytes left, less than a record header"))
    return _concat_offsets(starts), problems


def _plausible(data: bytes, first: int, count: int, byteorder: str, max_record: int,
               last_sec: int | None) -> np.ndarray:
    """bool[count]: does a believable record header start at each of first .. first+count-1?"""
    def field(k: int) -> np.ndarray:  # unaligned u32 at every byte offset, zero copy
        return np.ndarray((count,), dtype=byteorder + "u4", buffer=data, offset=first + 4 * k, strides=(1,)
                          ).astype(np.int64)

    incl, orig = field(2), field(3)
    ends = np.arange(first, first + count, dtype=np.int64) + RECORD_HEADER_LEN + incl
    # A frame shorter than an IPv4 header cannot carry CSI; requiring 20 bytes also keeps runs of
    # zero bytes from reading as empty records.
    ok = (incl >= 20) & (incl <= max_record) & (orig >= incl) & (field(1) < 1_000_000_000) & (ends <= len(data))
    if last_sec is not None:
        ok &= np.abs(field(0) - last_sec) <= _RESYNC_TIME_WINDOW
    return ok


def _resync(data: bytes, start: int, byteorder: str, max_record: int, last_sec: int | None) -> int | None:
    """The first offset >= start where a plausible record begins and is followed by another
    plausible record or by the end of the data (searched in chunks, vectorised)."""
    size = len(data)
    last_start = size - RECORD_HEADER_LEN  # the last offset a record header fits at
    chunk = 1 << 16
    for first in range(start, last_start + 1, chunk):
        count = min(chunk, last_start + 1 - first)
        for at in (first + np.flatnonzero(_plausible(data, first, count, byteorder, max_record, last_sec))).tolist():
            following = at + RECORD_HEADER_LEN + struct.unpack_from(byteorder + "I", data, at + 8)[0]
            if following == size or (following <= last_start and bool(
                    _plausible(data, following, 1, byteorder, max_record, last_sec)[0])):
                return at
    return None


def _concat_offsets(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _at(hdr: np.ndarray, rows: np.ndarray, col: np.ndarray | int) -> np.ndarray:
    """hdr[row, col[row]] (a plain column when col is one number, the usual case)."""
    if np.ndim(col) == 0:
        return hdr[:, int(col)]
    return hdr[rows, col]


def _u16be(hdr: np.ndarray, rows: np.ndarray, col: np.ndarray | int) -> np.ndarray:
    return (_at(hdr, rows, col).astype(np.int64) << 8) | _at(hdr, rows, col + 1)


def _uniform(values: np.ndarray) -> np.ndarray | int:
    """One number when all values are equal (so columns can be sliced, not gathered)."""
    return int(values[0]) if len(values) and bool(np.all(values == values[0])) else values


def _link_layer(hdr: np.ndarray, rows: np.ndarray, linktype: int) -> tuple[np.ndarray, np.ndarray]:
    """(ethertype, offset of the IP header) per frame; ethertype 0x0800 means IPv4."""
    n = hdr.shape[0]
    if linktype == LINKTYPE_ETHERNET:
        ethertype = _u16be(hdr, rows, 12)
        tagged = (ethertype == _ETHERTYPE_VLAN[0]) | (ethertype == _ETHERTYPE_VLAN[1])
        ethertype = np.where(tagged, _u16be(hdr, rows, 16), ethertype)
        return ethertype, np.where(tagged, 18, 14)
    if linktype == LINKTYPE_LINUX_SLL:
        return _u16be(hdr, rows, 14), np.full(n, 16)
    if linktype == LINKTYPE_LINUX_SLL2:
        return _u16be(hdr, rows, 0), np.full(n, 20)
    # Raw IP: the version nibble says what it is.
    version = hdr[:, 0] >> 4
    return np.where(version == 4, _ETHERTYPE_IPV4, 0), np.zeros(n, dtype=np.int64)


def check_linktype(linktype: int, *, source: str, offset: int) -> None:
    if linktype not in LINKTYPES:
        known = ", ".join(f"{k} ({v})" for k, v in LINKTYPES.items())
        raise ParseError("unsupported_linktype",
                         f"link type {linktype} cannot carry Nexmon UDP frames here; supported: {known}",
                         source=source, offset=offset)


def decode_frames(
    buf: np.ndarray,
    frame_off: np.ndarray,
    caplen: np.ndarray,
    time: np.ndarray,
    record: np.ndarray,
    linktype: int,
    *,
    bad: BadPackets,
    source: str = "",
    record_off: np.ndarray | None = None,
    port: int | None = UDP_PORT,
    **payload_opts,
) -> list[CSIBatch]:
    """Decode captured frames of one link type into batches.

    ``buf``: the whole input as uint8; ``frame_off``/``caplen``: where each
    frame's captured bytes are (inside ``buf``); ``time``: seconds; ``record``: each frame's ordinal, put in
    ``packet_index`` (renumbered by :func:`assemble`); ``record_off``: offsets for
    messages (default ``frame_off``). Skipped frames are counted in ``bad``.
    """
    n = len(frame_off)
    if n == 0:
        return []
    frame_off = np.asarray(frame_off, dtype=np.int64)
    caplen = np.asarray(caplen, dtype=np.int64)
    where = frame_off if record_off is None else np.asarray(record_off, dtype=np.int64)
    rows = np.arange(n)
    hdr = windows(buf, frame_off, _HEADER_WINDOW)  # [frame, byte] header bytes

    ethertype, l3 = _link_layer(hdr, rows, linktype)
    l3 = _uniform(l3)
    vhl = _at(hdr, rows, l3)
    ihl = (vhl & 0x0F).astype(np.int64) * 4
    l4 = l3 + _uniform(ihl)
    udp_len = _u16be(hdr, rows, l4 + 4)
    checks = (
        caplen < l3 + 20,
        (ethertype != _ETHERTYPE_IPV4) | ((vhl >> 4) != 4),
        ihl < 20,
        _at(hdr, rows, l3 + 9) != 17,
        (_u16be(hdr, rows, l3 + 6) & 0x3FFF) != 0,
        np.zeros(n, dtype=bool) if port is None else (_u16be(hdr, rows, l4 + 2) != port),
        udp_len < 8,
    )
    # Checked after the header checks so that a short frame reports what is wrong with it.
    short = (caplen < l4 + 8) | (caplen < l4 + udp_len)
    failed = np.stack(checks + (short,))  # [check, frame]
    if not failed.any():  # the usual capture: every frame is a CSI datagram
        return _decode_payload_groups(buf, frame_off + l4 + 8, udp_len - 8, np.arange(n), time, record,
                                      bad=bad, source=source, **payload_opts)
    status = np.zeros(n, dtype=np.int8)  # 0 = fine, k = failed check k
    for code, fails in enumerate(failed[:-1], start=1):
        status[(status == 0) & fails] = code
    status[(status == 0) & short] = 1

    details = {
        "truncated_frame": lambda r: (f"frame of {caplen[r]} captured bytes ends inside its IPv4/UDP headers "
                                      f"or UDP datagram"),
        "not_ipv4": lambda r: f"not an IPv4 packet (ethertype 0x{int(ethertype[r]):04x})",
        "bad_ip_header": lambda r: f"IPv4 header length {int(ihl[r])} < 20",
        "not_udp": lambda r: f"IP protocol {int(_at(hdr, rows, l3 + 9)[r])}, not UDP",
        "ip_fragment": lambda r: "IPv4 fragment (Nexmon datagrams are never fragmented)",
        "wrong_port": lambda r: f"UDP to port {int(_u16be(hdr, rows, l4 + 2)[r])}, not {port}",
        "bad_udp_length": lambda r: f"UDP length {int(udp_len[r])} < 8",
    }
    for code, reason in enumerate(_FRAME_REASONS, start=1):
        record_rejected(bad, reason, np.flatnonzero(status == code), details[reason], source=source, offsets=where)

    ok = np.flatnonzero(status == 0)
    payload_off = frame_off[ok] + (l4 if np.ndim(l4) == 0 else l4[ok]) + 8
    return _decode_payload_groups(buf, payload_off, udp_len[ok] - 8, ok, time, record, bad=bad, source=source,
                                  **payload_opts)


def _decode_payload_groups(buf: np.ndarray, payload_off: np.ndarray, payload_len: np.ndarray, frames: np.ndarray,
                           time: np.ndarray, record: np.ndarray, *, bad: BadPackets, source: str,
                           **payload_opts) -> list[CSIBatch]:
    """Decode the payloads at ``payload_off`` (of frames ``frames``), one call per payload length."""
    if len(payload_len) == 0:
        return []
    same = bool(np.all(payload_len == payload_len[0]))
    batches: list[CSIBatch] = []
    for length in ([payload_len[0]] if same else np.unique(payload_len)):
        sel = frames if same else frames[payload_len == length]
        offsets = payload_off if same else payload_off[payload_len == length]
        payloads = _gather(buf, offsets, int(length))
        decoded = nexmon_payload.decode_payloads(payloads, time=time[sel], record=record[sel], **payload_opts)
        decoded.record_bad(bad, source=source, offsets=offsets)
        batches.extend(decoded.batches)
    return batches


def _gather(buf: np.ndarray, offsets: np.ndarray, length: int) -> np.ndarray:
    """uint8[packet, length] payload rows: a zero-copy strided view when the offsets are
    evenly spaced (the usual capture), else a copy."""
    if length == 0:
        return np.zeros((len(offsets), 0), dtype=np.uint8)
    if len(offsets) > 1:
        step = offsets[1] - offsets[0]
        if step >= length and bool(np.all(np.diff(offsets) == step)):
            return as_strided(buf[offsets[0]:], shape=(len(offsets), length), strides=(int(step), 1),
                              writeable=False)
    return sliding_window_view(buf, length)[offsets]


def assemble(format_name: str, source: str, batches: list[CSIBatch], bad: BadPackets) -> Capture:
    """Merge batches of one layout, sort rows into capture order and number the accepted
    packets 0..n-1 in ``packet_index`` (the readers put record ordinals there)."""
    batches = [b for b in batches if len(b)]
    if not batches:
        return Capture(format=format_name, source=source, batches=[], bad=bad)
    if len(batches) == 1 and bool(np.all(np.diff(batches[0].packet_index) > 0)):  # the usual capture
        only = batches[0]
        return Capture(format=format_name, source=source, bad=bad,
                       batches=[replace(only, packet_index=np.arange(len(only), dtype=np.int64))])
    ordinals = np.sort(np.concatenate([b.packet_index for b in batches]))
    groups: dict[tuple, list[CSIBatch]] = {}
    for b in batches:
        groups.setdefault(b.layout_key, []).append(b)
    merged = []
    for group in groups.values():
        batch = concat(group)
        order = np.argsort(batch.packet_index, kind="stable")
        if np.any(order != np.arange(len(order))):
            batch = batch.select(order)
        merged.append(replace(batch, packet_index=np.searchsorted(ordinals, batch.packet_index).astype(np.int64)))
    merged.sort(key=lambda b: int(b.packet_index[0]))
    return Capture(format=format_name, source=source, batches=merged, bad=bad)


def read(data: bytes, *, source: str = "", chip: str | None = None, scaling: str = DEFAULT_SCALING,
         swap_iq: bool = False, mask_pilots: bool = False, port: int | None = UDP_PORT) -> Capture:
    """A whole classic pcap capture of Nexmon CSI UDPs.

    ``chip`` overrides the chip id in the payloads (needed for junk ids of old
    firmware); ``scaling``: ``"autoscale"`` (default, equals the official MATLAB
    reader), ``"exact"`` or ``"none"`` for packed-float chips (see
    :mod:`nexmon_payload`); ``swap_iq`` swaps real/imag (legacy int16
    firmware stored imag first); ``mask_pilots`` also flags pilots invalid;
    ``port`` is the CSI UDP destination port (None: any). Raises
    :class:`ParseError` only when the input is not a readable pcap file.
    """
    nexmon_payload.check_options(chip=chip, scaling=scaling)
    data = bytes(data)
    if len(data) < GLOBAL_HEADER_LEN:
        raise ParseError("truncated", f"{len(data)} bytes, shorter than the 24-byte pcap header",
                         source=source, offset=0)
    magic = data[:4]
    if magic not in MAGICS:
        raise ParseError("bad_magic", f"pcap magic expected, file starts {magic.hex(' ')}", source=source, offset=0)
    byteorder, ticks = MAGICS[magic]
    network = struct.unpack_from(byteorder + "I", data, 20)[0]
    linktype = network & 0x0FFFFFFF  # the top bits may carry FCS information
    check_linktype(linktype, source=source, offset=20)

    bad = BadPackets()
    rec_off, problems = scan_records(data, byteorder)
    for reason, offset, detail in problems:
        bad.add(ParseError(reason, detail, source=source, offset=offset))
    buf = np.frombuffer(data, dtype=np.uint8)
    fields = windows(buf, rec_off, RECORD_HEADER_LEN).view(byteorder + "u4")  # ts_sec, frac, incl, orig
    time = fields[:, 0].astype(np.float64) + fields[:, 1].astype(np.float64) / ticks
    batches = decode_frames(buf, rec_off + RECORD_HEADER_LEN, fields[:, 2].astype(np.int64), time,
                            np.arange(len(rec_off), dtype=np.int64), linktype, bad=bad, source=source,
                            record_off=rec_off, port=port, chip=chip, scaling=scaling, swap_iq=swap_iq,
                            mask_pilots=mask_pilots)
    return assemble(NAME, source, batches, bad)
