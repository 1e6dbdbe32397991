"""Nexmon CSI captures saved as pcapng (Wireshark / dumpcap / ``tcpdump --pcapng``).

Reads Enhanced, Simple and (obsolete) Packet Blocks of every section, with
each interface's link type and timestamp resolution/offset, and hands the
frames to the same decoder as classic pcap
(:func:`edgecsi.firmware_bridge.formats.nexmon_pcap.decode_frames`). Other
blocks (name resolution, statistics, custom, decryption secrets) are skipped.

Runs of Enhanced Packet Blocks of equal length (a CSI capture is nearly all
of them) are located with one strided numpy comparison, like the pcap reader.
A block whose length field is inconsistent ends the reading (pcapng cannot be
re-synchronised); what was read so far is kept and the problem is counted in
``Capture.bad``.
"""

from __future__ import annotations

import struct

import numpy as np

from edgecsi.errors import BadPackets, ParseError
from edgecsi.firmware_bridge.capture import Capture
from edgecsi.firmware_bridge.formats import nexmon_payload, nexmon_pcap
from edgecsi.firmware_bridge.formats.nexmon_payload import DEFAULT_SCALING, UDP_PORT, record_rejected
from edgecsi.frames import CSIBatch

NAME = "pcapng"

SHB = 0x0A0D0D0A  # Section Header Block; the same bytes in either byte order
IDB = 0x00000001  # Interface Description Block
PB = 0x00000002  # Packet Block (obsolete)
SPB = 0x00000003  # Simple Packet Block
EPB = 0x00000006  # Enhanced Packet Block
_BYTE_ORDER_MAGIC = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}
_OPT_TSRESOL = 9
_OPT_TSOFFSET = 14


def sniff(head: bytes) -> bool:
    return bytes(head[:4]) == b"\x0a\x0d\x0d\x0a"


class _Interface:
    __slots__ = ("linktype", "snaplen", "ticks", "offset")

    def __init__(self, linktype: int, snaplen: int, ticks: float, offset: float) -> None:
        self.linktype = linktype
        self.snaplen = snaplen
        self.ticks = ticks  # timestamp units per second
        self.offset = offset  # seconds added to every timestamp (if_tsoffset)


def _interface(data: bytes, pos: int, length: int, order: str) -> _Interface:
    linktype, _reserved, snaplen = struct.unpack_from(order + "HHI", data, pos + 8)
    ticks, offset = 1e6, 0.0
    opt, end = pos + 16, pos + length - 4
    while opt + 4 <= end:
        code, size = struct.unpack_from(order + "HH", data, opt)
        if code == 0:
            break
        value = data[opt + 4:opt + 4 + size]
        if code == _OPT_TSRESOL and size >= 1:
            # MSB clear: 10**-v seconds per unit; set: 2**-(v & 0x7f).
            ticks = float(2 ** (value[0] & 0x7F)) if value[0] & 0x80 else float(10 ** value[0])
        elif code == _OPT_TSOFFSET and size >= 8:
            offset = float(struct.unpack_from(order + "q", value)[0])
        opt += 4 + size + (-size % 4)
    return _Interface(linktype & 0x0FFFFFFF, snaplen, ticks, offset)


class _Packets:
    """Packet-block fields collected while walking the blocks (numpy arrays per run)."""

    def __init__(self) -> None:
        self.block_off: list[np.ndarray] = []
        self.frame_off: list[np.ndarray] = []
        self.caplen: list[np.ndarray] = []
        self.time: list[np.ndarray] = []
        self.linktype: list[np.ndarray] = []

    def add(self, block_off, frame_off, caplen, time, linktype) -> None:
        self.block_off.append(np.atleast_1d(np.asarray(block_off, dtype=np.int64)))
        self.frame_off.append(np.atleast_1d(np.asarray(frame_off, dtype=np.int64)))
        self.caplen.append(np.atleast_1d(np.asarray(caplen, dtype=np.int64)))
        self.time.append(np.atleast_1d(np.asarray(time, dtype=np.float64)))
        self.linktype.append(np.atleast_1d(np.asarray(linktype, dtype=np.int64)))

    def arrays(self) -> tuple[np.ndarray, ...]:
        if not self.block_off:
            empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0)
            return empty_i, empty_i, empty_i, empty_f, empty_i
        return tuple(np.concatenate(parts) for parts in
                     (self.block_off, self.frame_off, self.caplen, self.time, self.linktype))


def _epb_run(data: bytes, pos: int, length: int, order: str, interfaces: list[_Interface], bad: BadPackets,
             packets: _Packets, source: str, window: int) -> int:
    """Read the run of equal-length EPBs starting at ``pos``; returns how many blocks it covered."""
    size = len(data)
    fits = (size - pos) // length
    check = max(1, min(fits, window))
    u32 = order + "u4"
    types = np.ndarray((check,), dtype=u32, buffer=data, offset=pos, strides=(length,))
    lengths = np.ndarray((check,), dtype=u32, buffer=data, offset=pos + 4, strides=(length,))
    trailers = np.ndarray((check,), dtype=u32, buffer=data, offset=pos + length - 4, strides=(length,))
    differ = np.flatnonzero((types != EPB) | (lengths != length) | (trailers != length))
    count = int(differ[0]) if differ.size else check
    if count == 0:
        return 0
    starts = pos + np.arange(count, dtype=np.int64) * length
    # interface, ts high, ts low, captured length, original length
    fields = nexmon_pcap.windows(np.frombuffer(data, dtype=np.uint8), starts + 8, 20).view(u32)
    iface = fields[:, 0].astype(np.int64)
    caplen = fields[:, 3].astype(np.int64)
    bad_iface = iface >= len(interfaces)
    bad_len = caplen > length - 32
    rejected = bad_iface | bad_len
    if rejected.any():
        record_rejected(bad, "bad_interface", np.flatnonzero(bad_iface),
                        lambda r: f"packet of interface {int(iface[r])}, only {len(interfaces)} described",
                        source=source, offsets=starts)
        record_rejected(bad, "bad_block", np.flatnonzero(bad_len & ~bad_iface),
                        lambda r: f"captured length {int(caplen[r])} exceeds the {length}-byte block",
                        source=source, offsets=starts)
        keep = ~rejected
        starts, iface, caplen, fields = starts[keep], iface[keep], caplen[keep], fields[keep]
    if len(starts):
        ticks = np.array([i.ticks for i in interfaces])[iface]
        offset = np.array([i.offset for i in interfaces])[iface]
        stamp = (fields[:, 1].astype(np.uint64) << np.uint64(32)) | fields[:, 2].astype(np.uint64)
        packets.add(starts, starts + 28, caplen, stamp.astype(np.float64) / ticks + offset,
                    np.array([i.linktype for i in interfaces])[iface])
    return count


def read(data: bytes, *, source: str = "", chip: str | None = None, scaling: str = DEFAULT_SCALING,
         swap_iq: bool = False, mask_pilots: bool = False, port: int | None = UDP_PORT) -> Capture:
    """A whole pcapng capture of Nexmon CSI UDPs; options as :func:`nexmon_pcap.read`."""
    nexmon_payload.check_options(chip=chip, scaling=scaling)
    data = bytes(data)
    size = len(data)
    if size < 12 or not sniff(data):
        raise ParseError("bad_magic", f"pcapng section header expected, file starts {data[:4].hex(' ')}",
                         source=source, offset=0)
    bad = BadPackets()
    packets = _Packets()
    interfaces: list[_Interface] = []
    order = "<"
    pos = 0
    window = 64
    while pos + 12 <= size:
        if data[pos:pos + 4] == b"\x0a\x0d\x0d\x0a":
            bom = data[pos + 8:pos + 12]
            if bom not in _BYTE_ORDER_MAGIC:
                if pos == 0:
                    raise ParseError("bad_magic", f"pcapng byte-order magic expected, got {bom.hex(' ')}",
                                     source=source, offset=8)
                _stop(bad, "bad_block", pos, f"section header with byte-order magic {bom.hex(' ')}", source)
                break
            order = _BYTE_ORDER_MAGIC[bom]
            interfaces = []
        btype, length = struct.unpack_from(order + "II", data, pos)
        if length < 12 or length % 4:
            _stop(bad, "bad_block", pos, f"block length {length} (a multiple of 4, >= 12 expected)", source)
            break
        if pos + length > size:
            _stop(bad, "truncated", pos, f"block of {length} bytes, {size - pos} left", source)
            break
        if struct.unpack_from(order + "I", data, pos + length - 4)[0] != length:
            _stop(bad, "bad_block", pos, "block length and trailing length differ", source)
            break
        if btype == EPB and length >= 32:
            count = _epb_run(data, pos, length, order, interfaces, bad, packets, source, window)
            window = 2 * window if count == window else 64
            pos += count * length
            continue
        if btype in (EPB, PB) and length < 32:
            _skip(bad, "bad_block", pos, f"packet block of {length} bytes, shorter than its 32-byte header", source)
        elif btype == IDB and length >= 20:
            interfaces.append(_interface(data, pos, length, order))
        elif btype == SPB and length >= 16:
            if not interfaces:
                _skip(bad, "bad_interface", pos, "simple packet block before any interface description", source)
            else:
                orig = struct.unpack_from(order + "I", data, pos + 8)[0]
                iface = interfaces[0]
                caplen = min(orig, length - 16, iface.snaplen or orig)
                packets.add(pos, pos + 12, caplen, np.nan, iface.linktype)
        elif btype == PB and length >= 32:
            iface_id, _drops, hi, lo, caplen, _orig = struct.unpack_from(order + "HHIIII", data, pos + 8)
            if iface_id >= len(interfaces):
                _skip(bad, "bad_interface", pos, f"packet of interface {iface_id}, only {len(interfaces)} described",
                      source)
            elif caplen > length - 32:
                _skip(bad, "bad_block", pos, f"captured length {caplen} exceeds the {length}-byte block", source)
            else:
                iface = interfaces[iface_id]
                packets.add(pos, pos + 28, caplen, ((hi << 32) | lo) / iface.ticks + iface.offset, iface.linktype)
        pos += length
    else:
        if pos < size:
            _stop(bad, "truncated", pos, f"{size - pos} bytes left, less than a block header", source)

    block_off, frame_off, caplen, time, linktype = packets.arrays()
    record = np.arange(len(block_off), dtype=np.int64)
    buf = np.frombuffer(data, dtype=np.uint8)
    batches: list[CSIBatch] = []
    for lt in np.unique(linktype):
        sel = np.flatnonzero(linktype == lt)
        if int(lt) not in nexmon_pcap.LINKTYPES:
            record_rejected(bad, "unsupported_linktype", sel,
                            lambda _r, lt=int(lt): f"interface link type {lt} cannot carry Nexmon UDP frames here",
                            source=source, offsets=block_off)
            continue
        batches += nexmon_pcap.decode_frames(buf, frame_off[sel], caplen[sel], time[sel], record[sel], int(lt),
                                             bad=bad, source=source, record_off=block_off[sel], port=port, chip=chip,
                                             scaling=scaling, swap_iq=swap_iq, mask_pilots=mask_pilots)
    return nexmon_pcap.assemble(NAME, source, batches, bad)


def _skip(bad: BadPackets, reason: str, pos: int, detail: str, source: str) -> None:
    bad.add(ParseError(reason, detail, source=source, offset=pos))


def _stop(bad: BadPackets, reason: str, pos: int, detail: str, source: str) -> None:
    bad.add(ParseError(reason, detail + "; reading stopped here", source=source, offset=pos))
