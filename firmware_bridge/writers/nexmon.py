"""CSIBatch -> Nexmon CSI UDP payloads and pcap files (the inverse of the Nexmon readers).

Used to replay captures, to make test inputs and to hand CSI from edgecsi to
tools that read Nexmon pcaps (csiread, CSIKit, nexcsi, the MATLAB scripts).

Each row of a batch becomes one payload (one (core, spatial stream) of one
received frame), so the batch must be ``csi[packet, 1, 1, N]`` in natural
subcarrier order with N = 64/128/256/512. Header fields come from the batch's
columns; the raw Nexmon fields a reader kept in ``extra`` (``seq_ctl``,
``core_nss``, ``chanspec``, ``frame_control``, ``chip_id``,
``legacy_header``) take precedence, so a capture read and written again gives
the same bytes.

Values:

- int16 chips (bcm4339, bcm43455c0): rounded to the nearest integer and
  saturated to int16; integer input round-trips exactly.
- packed-float chips (bcm4358 9/5 bits, bcm4366c0 12/6 bits): each subcarrier
  gets the smallest exponent at which both components fit the mantissa, and
  the mantissas are rounded; values a reader decoded with
  ``scaling="exact"`` round-trip exactly. With ``unscale=True`` (default) a
  batch read with ``"autoscale"`` or ``"none"`` is first divided by
  ``2**extra["scale_exponent"]``, so reading the written file with the same
  scaling gives the same numbers again.
"""

from __future__ import annotations

import struct
from typing import Iterable, Sequence

import numpy as np

from edgecsi.firmware_bridge.capture import Capture
from edgecsi.firmware_bridge.formats import nexmon_payload
from edgecsi.firmware_bridge.formats.nexmon_payload import CHIP_IDS, HEADER_DTYPE, HEADER_LEN, ChipFormat
from edgecsi.frames import CSIBatch

LAYOUTS = ("auto", "new", "legacy")

#: The addresses the Nexmon firmware puts on its CSI frames (nexmon_csi README).
ETH_SRC = bytes.fromhex("4e45584d4f4e")  # "NEXMON"
ETH_DST = b"\xff" * 6
IP_SRC = bytes([10, 10, 10, 10])
IP_DST = b"\xff" * 4

_BW_CODE = {20: 2, 40: 3, 80: 4, 160: 5}
_PCAP_MAGIC = {("<", False): b"\xd4\xc3\xb2\xa1", (">", False): b"\xa1\xb2\xc3\xd4",
               ("<", True): b"\x4d\x3c\xb2\xa1", (">", True): b"\xa1\xb2\x3c\x4d"}
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113


def _chip_of(batch: CSIBatch, chip: str | None) -> ChipFormat:
    try:
        return nexmon_payload.chip_format(chip if chip is not None else batch.chip)
    except ValueError as exc:
        raise ValueError(f"{exc} (pass chip= to choose how to encode this batch)") from None


def _check_layout(batch: CSIBatch) -> int:
    n, n_rx, n_tx, nfft = batch.csi.shape
    if (n_rx, n_tx) != (1, 1):
        raise ValueError(f"a Nexmon payload carries one (core, stream) per datagram; batch has "
                         f"[rx, tx] = [{n_rx}, {n_tx}]: select one pair per batch first")
    if nfft not in nexmon_payload._BW_BY_NFFT or not np.array_equal(batch.subcarriers, np.arange(-nfft // 2, nfft // 2)):
        raise ValueError("Nexmon payloads hold all N = 64/128/256/512 subcarriers -N/2..N/2-1 in natural order; "
                         f"batch has {nfft} subcarriers {batch.subcarriers[:3].tolist()}...")
    return nfft


def _fft_order(values: np.ndarray) -> np.ndarray:
    """[packet, N] natural order -> FFT order (0..N/2-1, -N/2..-1)."""
    half = values.shape[1] // 2
    return np.concatenate((values[:, half:], values[:, :half]), axis=1)


def encode_int16(csi: np.ndarray) -> np.ndarray:
    """complex[packet, N] natural order -> uint8[packet, 4N]: int16 real, int16 imag per word, FFT order."""
    pairs = np.empty(csi.shape + (2,), dtype=np.float64)
    pairs[..., 0] = np.nan_to_num(csi.real)
    pairs[..., 1] = np.nan_to_num(csi.imag)
    ints = np.clip(np.rint(pairs), -32768, 32767).astype("<i2")
    return _fft_order(ints.reshape(csi.shape[0], -1, 2)).reshape(csi.shape[0], -1).view(np.uint8)


def encode_packed_float(csi: np.ndarray, fmt: ChipFormat) -> np.ndarray:
    """complex[packet, N] natural order -> uint8[packet, 4N] packed-float words, FFT order."""
    nman, nexp = fmt.nman, fmt.nexp
    top = (1 << (nman - 1)) - 1  # largest mantissa magnitude
    e_min, e_max = -(1 << (nexp - 1)), (1 << (nexp - 1)) - 1
    re = np.nan_to_num(np.asarray(csi.real, dtype=np.float64))
    im = np.nan_to_num(np.asarray(csi.imag, dtype=np.float64))
    largest = np.maximum(np.abs(re), np.abs(im))
    # Smallest e with largest / 2**e <= top: exact values m * 2**e0 (|m| <= top) then divide
    # without remainder, so they come back bit-exactly.
    with np.errstate(divide="ignore", invalid="ignore"):
        e = np.ceil(np.log2(largest / top))
    e = np.where(np.isfinite(e), e, e_min)
    e += largest / np.exp2(e) > top  # log2 rounding at the boundaries
    e -= (largest / np.exp2(e - 1) <= top) & (largest > 0)
    e = np.clip(e, e_min, e_max)
    scale = np.exp2(e)
    mag_i = np.minimum(np.rint(np.abs(re) / scale), top).astype(np.uint32)
    mag_q = np.minimum(np.rint(np.abs(im) / scale), top).astype(np.uint32)
    neg_i = ((re < 0) & (mag_i > 0)).astype(np.uint32)
    neg_q = ((im < 0) & (mag_q > 0)).astype(np.uint32)
    words = ((neg_i << np.uint32(nexp + 2 * nman - 1)) | (mag_i << np.uint32(nexp + nman))
             | (neg_q << np.uint32(nexp + nman - 1)) | (mag_q << np.uint32(nexp))
             | (e.astype(np.int64) & ((1 << nexp) - 1)).astype(np.uint32))
    return np.ascontiguousarray(_fft_order(words)).astype("<u4").view(np.uint8)


def _column(batch: CSIBatch, name: str) -> np.ndarray | None:
    return np.asarray(batch.extra[name]) if name in batch.extra else None


def _chanspec(batch: CSIBatch) -> np.ndarray:
    """chanspec from the channel / bandwidth columns (d11ac format: band 5 GHz when channel > 14)."""
    channel = np.clip(batch.channel.astype(np.int64), 0, 255)
    bw = np.array([_BW_CODE.get(int(b), _BW_CODE[20]) for b in batch.bandwidth_mhz], dtype=np.int64)
    band_ghz = _column(batch, "band_ghz")
    five = (band_ghz == 5.0) if band_ghz is not None else (channel > 14)
    return (channel | (bw << 11) | (np.where(five, 3, 0) << 14)).astype(np.uint16)


def encode_payloads(batch: CSIBatch, *, layout: str = "auto", chip: str | None = None,
                    unscale: bool = True) -> np.ndarray:
    """One Nexmon UDP payload per row: uint8[packet, 18 + 4N].

    ``layout``: ``"new"`` (2-byte magic, rssi, frame control), ``"legacy"``
    (4-byte magic) or ``"auto"`` (per row from ``extra["legacy_header"]``, else
    new). ``chip`` overrides ``batch.chip`` (it decides the value encoding).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    fmt = _chip_of(batch, chip)
    nfft = _check_layout(batch)
    n = len(batch)
    csi = batch.csi[:, 0, 0, :]
    shift = _column(batch, "scale_exponent")
    if unscale and shift is not None and fmt.packed_float:
        csi = csi.astype(np.complex128) / np.exp2(shift.astype(np.float64))[:, None]
    body = encode_packed_float(csi, fmt) if fmt.packed_float else encode_int16(csi)

    legacy_col = _column(batch, "legacy_header")
    if layout == "auto":
        legacy = legacy_col.astype(bool) if legacy_col is not None else np.zeros(n, dtype=bool)
    else:
        legacy = np.full(n, layout == "legacy")
    header = np.zeros(n, dtype=HEADER_DTYPE)
    header["magic"] = 0x1111
    rssi = np.nan_to_num(batch.rssi.astype(np.float64), nan=0.0)
    header["rssi"] = np.where(legacy, 0x11, np.clip(np.rint(rssi), -128, 127)).astype(np.int8)
    fc = _column(batch, "frame_control")
    fc = np.where(fc >= 0, fc, 0) if fc is not None else np.zeros(n, dtype=np.int64)
    header["fc"] = np.where(legacy, 0x11, fc & 0xFF).astype(np.uint8)
    mac = batch.mac.astype(np.uint64)
    for i in range(6):
        header["mac"][:, i] = (mac >> np.uint64(8 * (5 - i))) & np.uint64(0xFF)
    seq_ctl = _column(batch, "seq_ctl")
    header["seq_ctl"] = seq_ctl if seq_ctl is not None else (np.maximum(batch.seq, 0) << 4) & 0xFFFF
    core_nss = _column(batch, "core_nss")
    header["core_nss"] = core_nss if core_nss is not None else (
        (np.maximum(batch.core, 0) & 7) | ((np.maximum(batch.stream, 0) & 7) << 3))
    chanspec = _column(batch, "chanspec")
    header["chanspec"] = chanspec if chanspec is not None else _chanspec(batch)
    chip_id = _column(batch, "chip_id")
    keep_id = (np.array([CHIP_IDS.get(int(c)) == fmt.name for c in chip_id], dtype=bool)
               if chip_id is not None else np.zeros(n, dtype=bool))
    header["chip_id"] = np.where(keep_id, chip_id if chip_id is not None else 0, fmt.chip_id)

    out = np.empty((n, HEADER_LEN + 4 * nfft), dtype=np.uint8)
    out[:, :HEADER_LEN] = header.view(np.uint8).reshape(n, HEADER_LEN)
    out[:, HEADER_LEN:] = body
    return out


def payloads(batch: CSIBatch, **options) -> list[bytes]:
    """:func:`encode_payloads` as one ``bytes`` per datagram (what ``sendto`` wants)."""
    return [row.tobytes() for row in encode_payloads(batch, **options)]


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f">{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp_frame(payload: bytes, *, linktype: int = LINKTYPE_ETHERNET, port: int = nexmon_payload.UDP_PORT) -> bytes:
    """Wrap one payload like the firmware: IPv4 10.10.10.10 -> 255.255.255.255, TTL 1,
    UDP port -> port with checksum 0, in an Ethernet (src "NEXMON"), Linux cooked or raw IP frame."""
    udp = struct.pack(">HHHH", port, port, 8 + len(payload), 0)
    ip = bytearray(struct.pack(">BBHHHBBH4s4s", 0x45, 0, 28 + len(payload), 1, 0, 1, 17, 0, IP_SRC, IP_DST))
    ip[10:12] = struct.pack(">H", _checksum(bytes(ip)))
    if linktype == LINKTYPE_ETHERNET:
        link = ETH_DST + ETH_SRC + b"\x08\x00"
    elif linktype == LINKTYPE_LINUX_SLL:
        # packet type 4 (sent by us), ARPHRD_ETHER, 6-byte address, protocol IPv4
        link = struct.pack(">HHH8sH", 4, 1, 6, ETH_SRC + b"\0\0", 0x0800)
    elif linktype == LINKTYPE_RAW:
        link = b""
    else:
        raise ValueError(f"cannot write link type {linktype}; use 1 (Ethernet), 113 (Linux SLL) or 101 (raw IP)")
    return link + bytes(ip) + udp + payload


def _rows_in_order(batches: Sequence[CSIBatch]) -> list[tuple[int, int]]:
    pairs = [(int(b.packet_index[i]), k, i) for k, b in enumerate(batches) for i in range(len(b))]
    pairs.sort()
    return [(k, i) for _, k, i in pairs]


def write_pcap(data: Capture | CSIBatch | Iterable[CSIBatch], *, layout: str = "auto", chip: str | None = None,
               byteorder: str = "<", nanosecond: bool = False, linktype: int = LINKTYPE_ETHERNET,
               unscale: bool = True, port: int = nexmon_payload.UDP_PORT, snaplen: int = 262144) -> bytes:
    """A classic pcap file of Nexmon CSI UDP frames, rows in ``packet_index`` order.

    ``byteorder`` ``"<"``/``">"`` and ``nanosecond`` pick one of the four pcap
    magics; ``time`` NaN is written as 0. Other options: :func:`encode_payloads`,
    :func:`udp_frame`.
    """
    if byteorder not in ("<", ">"):
        raise ValueError("byteorder must be '<' or '>'")
    batches = data.batches if isinstance(data, Capture) else [data] if isinstance(data, CSIBatch) else list(data)
    encoded = [encode_payloads(b, layout=layout, chip=chip, unscale=unscale) for b in batches]
    ticks = 10**9 if nanosecond else 10**6
    out = [_PCAP_MAGIC[(byteorder, nanosecond)],
           struct.pack(byteorder + "HHiIII", 2, 4, 0, 0, snaplen, linktype)]
    record = struct.Struct(byteorder + "IIII")
    for k, i in _rows_in_order(batches):
        frame = udp_frame(encoded[k][i].tobytes(), linktype=linktype, port=port)
        t = float(batches[k].time[i])
        t = 0.0 if not np.isfinite(t) or t < 0 else t
        sec = int(t)
        frac = int(round((t - sec) * ticks))
        if frac >= ticks:
            sec, frac = sec + 1, frac - ticks
        out.append(record.pack(sec & 0xFFFFFFFF, frac, len(frame), len(frame)))
        out.append(frame)
    return b"".join(out)
