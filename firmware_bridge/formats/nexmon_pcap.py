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


def scan_records(data: bytes, byteorder: str) -> tuple[np.ndarray, int | None]:
    """Offsets of the complete records after the global header, and the offset of a truncated
    last record (None when the file ends cleanly).

    Walks the records in runs: from each record, the following records are
    assumed to have the same length and that is checked with one strided numpy
    comparison; the first record that differs starts the next run. A capture
    whose records all have one length is located in a handful of numpy calls.
    """
    size = len(data)
    incl_at = struct.Struct(byteorder + "I").unpack_from
    starts: list[np.ndarray] = []
    pos = GLOBAL_HEADER_LEN
    window = 64
    while pos + RECORD_HEADER_LEN <= size:
        incl = incl_at(data, pos + 8)[0]
        stride = RECORD_HEADER_LEN + incl
        if pos + stride > size:
            return _concat_offsets(starts), pos
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
    return _concat_offsets(starts), (pos if pos < size else None)


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
    rec_off, truncated_at = scan_records(data, byteorder)
    if truncated_at is not None:
        record_rejected(bad, "truncated", np.zeros(1, dtype=np.int64),
                        lambda _r: f"last record needs more bytes than the {len(data) - truncated_at} left",
                        source=source, offsets=np.array([truncated_at]))
    buf = np.frombuffer(data, dtype=np.uint8)
    fields = windows(buf, rec_off, RECORD_HEADER_LEN).view(byteorder + "u4")  # ts_sec, frac, incl, orig
    time = fields[:, 0].astype(np.float64) + fields[:, 1].astype(np.float64) / ticks
    batches = decode_frames(buf, rec_off + RECORD_HEADER_LEN, fields[:, 2].astype(np.int64), time,
                            np.arange(len(rec_off), dtype=np.int64), linktype, bad=bad, source=source,
                            record_off=rec_off, port=port, chip=chip, scaling=scaling, swap_iq=swap_iq,
                            mask_pilots=mask_pilots)
    return assemble(NAME, source, batches, bad)
