"""Classic pcap read incrementally, for a live ``tcpdump -U -w - udp port 5500 | edgecsi ...`` pipe.

The file readers in ``formats/`` take a whole file; this one takes bytes as they
come and returns complete records, so CSI from a router's tcpdump can be
consumed while it runs. ``udp_payload`` digs the UDP payload out of a frame
(Ethernet, Linux cooked v1/v2, raw IP; IPv4/IPv6), trusting the UDP length
rather than the capture length (Nexmon frames carry zero padding, spec 3.1).
"""

from __future__ import annotations

import struct

from edgecsi.errors import ParseError

GLOBAL_HEADER = 24
RECORD_HEADER = 16
#: A record longer than this means a corrupt stream (records are at most a snaplen, 256 KiB by default).
MAX_RECORD = 1 << 20

_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_RAW_ALT = 12  # DLT_RAW on some BSDs
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276
ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
ETH_VLAN = (0x8100, 0x88A8)
IPPROTO_UDP = 17


def is_pcap(head: bytes) -> bool:
    return head[:4] in _MAGICS


class PcapStream:
    """Feed bytes of a classic pcap stream; get ``(timestamp, frame)`` records back."""

    def __init__(self, source: str = "<pcap stream>") -> None:
        self.source = source
        self.linktype: int | None = None
        self.offset = 0  # stream offset of the first byte in the buffer
        self._buf = bytearray()
        self._endian = "<"
        self._tick = 1e-6
        self._record: struct.Struct | None = None

    def feed(self, data: bytes) -> list[tuple[float, bytes]]:
        """Records completed by ``data``; raises ParseError on a corrupt stream (cannot resync)."""
        self._buf += data
        out: list[tuple[float, bytes]] = []
        pos = 0
        buf = self._buf
        if self.linktype is None:
            if len(buf) < GLOBAL_HEADER:
                return out
            magic = bytes(buf[:4])
            if magic not in _MAGICS:
                raise ParseError("bad_magic", f"not a classic pcap stream (magic {magic.hex()})",
                                 source=self.source, offset=0)
            self._endian, self._tick = _MAGICS[magic]
            self.linktype = struct.unpack_from(self._endian + "I", buf, 20)[0] & 0x0FFFFFFF
            self._record = struct.Struct(self._endian + "IIII")
            pos = GLOBAL_HEADER
        record = self._record
        while len(buf) - pos >= RECORD_HEADER:
            sec, frac, incl, _orig = record.unpack_from(buf, pos)
            if incl > MAX_RECORD:
                raise ParseError("corrupt_record", f"record length {incl} > {MAX_RECORD}",
                                 source=self.source, offset=self.offset + pos)
            end = pos + RECORD_HEADER + incl
            if end > len(buf):
                break
            out.append((sec + frac * self._tick, bytes(buf[pos + RECORD_HEADER:end])))
            pos = end
        if pos:
            del buf[:pos]
            self.offset += pos
        return out

    @property
    def pending(self) -> int:
        return len(self._buf)


def udp_payload(frame: bytes, linktype: int, *, port: int | None = None, source: str = "",
                offset: int | None = None) -> bytes:
    """The UDP payload of one captured frame (optionally only to destination ``port``)."""
    def bad(reason: str, detail: str) -> ParseError:
        return ParseError(reason, detail, source=source, offset=offset)

    if linktype == LINKTYPE_ETHERNET:
        if len(frame) < 14:
            raise bad("truncated", f"{len(frame)}-byte Ethernet frame")
        ethertype = int.from_bytes(frame[12:14], "big")
        ip = 14
        while ethertype in ETH_VLAN and len(frame) >= ip + 4:
            ethertype = int.from_bytes(frame[ip + 2:ip + 4], "big")
            ip += 4
    elif linktype == LINKTYPE_LINUX_SLL:
        if len(frame) < 16:
            raise bad("truncated", f"{len(frame)}-byte cooked frame")
        ethertype, ip = int.from_bytes(frame[14:16], "big"), 16
    elif linktype == LINKTYPE_LINUX_SLL2:
        if len(frame) < 20:
            raise bad("truncated", f"{len(frame)}-byte cooked v2 frame")
        ethertype, ip = int.from_bytes(frame[0:2], "big"), 20
    elif linktype in (LINKTYPE_RAW, LINKTYPE_RAW_ALT):
        if not frame:
            raise bad("truncated", "empty frame")
        ethertype, ip = (ETH_IPV4 if frame[0] >> 4 == 4 else ETH_IPV6), 0
    else:
        raise bad("unsupported_linktype", f"link type {linktype}")

    if ethertype == ETH_IPV4:
        if len(frame) < ip + 20:
            raise bad("truncated", "short IPv4 header")
        ihl = (frame[ip] & 0x0F) * 4
        proto = frame[ip + 9]
        udp = ip + ihl
    elif ethertype == ETH_IPV6:
        if len(frame) < ip + 40:
            raise bad("truncated", "short IPv6 header")
        proto = frame[ip + 6]  # extension headers are not followed; Nexmon never sends them
        udp = ip + 40
    else:
        raise bad("not_ip", f"ethertype 0x{ethertype:04x}")
    if proto != IPPROTO_UDP:
        raise bad("not_udp", f"IP protocol {proto}")
    if len(frame) < udp + 8:
        raise bad("truncated", "short UDP header")
    if port is not None and int.from_bytes(frame[udp + 2:udp + 4], "big") != port:
        raise bad("other_port", f"UDP destination port {int.from_bytes(frame[udp + 2:udp + 4], 'big')}")
    length = int.from_bytes(frame[udp + 4:udp + 6], "big")
    if length < 8 or udp + length > len(frame):
        raise bad("truncated", f"UDP length {length} but {len(frame) - udp} bytes captured")
    return frame[udp + 8:udp + length]
