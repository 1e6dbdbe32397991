"""Decode the bare Nexmon CSI UDP payload (what arrives on UDP port 5500).

Payload layout (csi-formats spec section 3.2, little-endian)::

    off  size  new layout (nexmon_csi PR #46/#256)   legacy layout (older builds)
    0    2     magic 11 11                           magic 11 11 11 11
    2    1     rssi, i8 dBm                          (magic)
    3    1     802.11 Frame Control, first byte      (magic)
    4    6     source MAC (addr2)                    same
    10   2     u16 Sequence Control                  same
    12   2     u16 core (bits 0-2) / stream (3-5)    same
    14   2     u16 chanspec (d11ac)                  same
    16   2     u16 chip id                           same (junk before Oct 2019)
    18   4*N   CSI words in FFT order                same

The layout is detected per payload: legacy iff bytes 2..3 are ``11 11`` too.
N (the FFT size) follows from the payload length: ``(len - 18) / 4``.

CSI encodings:

- int16 chips (bcm4339, bcm43455c0): each word is ``int16 real, int16 imag``.
  Values are exact integers.
- packed-float chips (bcm4358: 9-bit mantissa incl. sign, 5-bit exponent;
  bcm4366c0: 12/6): ``(+-|I| + j +-|Q|) * 2**e``, decoded by ``scaling``:

  ``"autoscale"`` (default) the per-packet scaling of the official MATLAB
  reader's ``unpack_float.c`` as used to make every published reference
  (MATLAB ``.mat`` files, csiread.Nexmon, CSIKit): the largest component of
  the packet is scaled to 11 bits and values are truncated toward zero.
  Bit-exact with those readers. It is the default so that numbers match the
  official reader; its scale differs between packets.
  ``"exact"`` the exact value ``mantissa * 2**e`` (float32 holds it without
  rounding); one scale for the whole capture, the right input for amplitude
  comparisons across packets.
  ``"none"`` current nexmon_csi master (no autoscale): ``exact * 2**(10 +
  2**(nexp-1))``, i.e. ``2**26`` for bcm4358 and ``2**42`` for bcm4366c0. Equal
  to nexcsi and csiread.NexmonPull46 while they do not misbehave (nexcsi drops
  the exponent's sign bit, NexmonPull46 overflows int32 on bcm4366c0); we
  compute in float32, so nothing overflows.

  ``extra["scale_exponent"]`` records the power of two applied per packet
  (``value = exact * 2**scale_exponent``, before truncation).

Output (:class:`edgecsi.frames.CSIBatch`): one row per UDP payload (one
(core, spatial stream) of one received frame; rows are never merged),
``csi[packet, 1, 1, subcarrier]`` complex64 in natural order ``-N/2..N/2-1``.
Values are kept as received in every bin; ``invalid`` flags the guard/DC
bins of the bandwidth and, for new-layout firmware, the three CSI words the
firmware overwrites with PHY-status bytes (words 0, 1, 2 = subcarriers 0, +1,
+2 at 40/80/160 MHz; words 28, 29, 30 = subcarriers +28, +29, +30 at 20 MHz).
``swap_iq=True`` swaps real and imaginary parts (legacy int16 firmware before
nexmon_csi commit c74d78b stored imag first; every reference parser reads
first = real, so the default is off).

Columns: ``seq`` = Sequence Control >> 4 (the raw field in
``extra["seq_ctl"]``); ``core`` / ``stream`` = bits 0-2 / 3-5 of the u16 (the
README's own example contradicts its rule; we follow the rule);
``bandwidth_mhz`` from N (the layout of this row); ``channel`` from the
chanspec; ``rssi`` NaN for legacy payloads (they carry none). ``extra``:
``legacy_header``, ``frame_control`` (-1 legacy), ``seq_ctl``, ``core_nss``,
``chanspec``, ``chanspec_bandwidth_mhz``, ``band_ghz`` (2.4/5.0/NaN),
``sideband``, ``chip_id`` (raw field) and ``scale_exponent``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Sequence

import numpy as np

from edgecsi.errors import BadPackets, ParseError
from edgecsi.firmware_bridge import ofdm
from edgecsi.frames import CSIBatch

FORMAT = "nexmon"
UDP_PORT = 5500
HEADER_LEN = 18
MAGIC_BYTE = 0x11

SCALINGS = ("autoscale", "exact", "none")
DEFAULT_SCALING = "autoscale"
# nbits of unpack_float_acphy(): autoscale brings the largest component to 11 bits.
_AUTOSCALE_BITS = 10

_BW_BY_NFFT = {nfft: bw for bw, nfft in ofdm.NFFT_BY_BW.items()}
# chanspec bits 11-13 (bcmwifi_channels.h, d11ac format); 6 = 80+80.
_CHANSPEC_BW_MHZ = {2: 20, 3: 40, 4: 80, 5: 160, 6: 160}
# chanspec bits 14-15: 0 = 2.4 GHz band, 3 = 5 GHz band.
_CHANSPEC_BAND_GHZ = {0: 2.4, 3: 5.0}


@dataclass(frozen=True)
class ChipFormat:
    """How one Broadcom chip encodes its CSI words."""

    name: str
    chip_id: int
    packed_float: bool
    nman: int = 0  # mantissa bits incl. sign (packed float only)
    nexp: int = 0  # exponent bits, two's complement (packed float only)


CHIPS: dict[str, ChipFormat] = {
    "4339": ChipFormat("4339", 0x0001, False),
    "4358": ChipFormat("4358", 0x0003, True, nman=9, nexp=5),
    "43455c0": ChipFormat("43455c0", 0x0065, False),
    "4366c0": ChipFormat("4366c0", 0x006A, True, nman=12, nexp=6),
}

#: chip id field -> chip name. The last three are junk ids written by
#: firmware before nexmon_csi commit 131e426 (Oct 2019); they are mapped the
#: way CSIKit maps them, which is a guess: pass ``chip=`` to override.
CHIP_IDS: dict[int, str] = {
    0x0001: "4339",
    0x0003: "4358",
    0x0065: "43455c0",
    0x006A: "4366c0",
    0xDEAD: "4358",
    0xA6DC: "43455c0",
    0xE834: "4366c0",
}


def chip_format(chip: str) -> ChipFormat:
    """``"4358"``, ``"bcm4358"`` or ``"BCM4358"`` -> its :class:`ChipFormat`."""
    key = chip.strip().lower()
    if key.startswith("bcm"):
        key = key[3:]
    try:
        return CHIPS[key]
    except KeyError:
        raise ValueError(f"unknown Nexmon chip {chip!r}; known: {', '.join(CHIPS)}") from None


def check_options(*, chip: str | None = None, scaling: str = DEFAULT_SCALING) -> ChipFormat | None:
    """Validate user options once (ValueError), before any data is read."""
    if scaling not in SCALINGS:
        raise ValueError(f"scaling must be one of {', '.join(SCALINGS)}, got {scaling!r}")
    return chip_format(chip) if chip is not None else None


@dataclass
class Rejected:
    """Payload rows of one batch decode that were rejected for one reason."""

    reason: str
    rows: np.ndarray  # int64 row numbers into the decoded payload array
    detail: Callable[[int], str]  # row -> human-readable detail


@dataclass
class Decoded:
    """What one :func:`decode_payloads` call produced: a batch per chip, and the rows it rejected."""

    batches: list[CSIBatch] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)

    def record_bad(self, bad: BadPackets, *, source: str = "", offsets: np.ndarray | None = None) -> None:
        """Count the rejected rows in ``bad`` (bulk; only the first few become messages)."""
        for rej in self.rejected:
            record_rejected(bad, rej.reason, rej.rows, rej.detail, source=source, offsets=offsets)


def record_rejected(bad: BadPackets, reason: str, rows: np.ndarray, detail: Callable[[int], str], *,
                    source: str = "", offsets: np.ndarray | None = None) -> None:
    """Add ``len(rows)`` skipped records to ``bad``; build messages only for the examples kept."""
    if len(rows) == 0:
        return
    bad.counts[reason] += int(len(rows))
    room = bad.max_examples - len(bad.examples)
    for row in rows[:max(room, 0)]:
        offset = None if offsets is None else int(offsets[row])
        bad.examples.append(str(ParseError(reason, detail(int(row)), source=source, offset=offset)))


#: The 18 header bytes as one record (little-endian fields).
HEADER_DTYPE = np.dtype([
    ("magic", "<u2"), ("rssi", "i1"), ("fc", "u1"), ("mac", "u1", (6,)), ("seq_ctl", "<u2"),
    ("core_nss", "<u2"), ("chanspec", "<u2"), ("chip_id", "<u2"),
])

_BW_LUT = np.array([_CHANSPEC_BW_MHZ.get(code, -1) for code in range(8)], dtype=np.int16)
_BAND_LUT = np.array([_CHANSPEC_BAND_GHZ.get(code, np.nan) for code in range(4)], dtype=np.float32)


def decode_chanspec(chanspec: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """u16 chanspec -> (channel int16, bandwidth MHz int16 (-1 unknown), band GHz float32 (NaN), sideband int8)."""
    cs = np.asarray(chanspec, dtype=np.uint16)
    channel = (cs & 0xFF).astype(np.int16)
    bandwidth = _BW_LUT[(cs >> 11) & 7]
    band = _BAND_LUT[(cs >> 14) & 3]
    sideband = ((cs >> 8) & 7).astype(np.int8)
    return channel, bandwidth, band, sideband


@lru_cache(maxsize=None)
def invalid_bins(nfft: int, *, new_layout: bool, mask_pilots: bool = False) -> np.ndarray:
    """bool[subcarrier] (natural order, read-only): guards/DC, PHY-status words of new-layout
    firmware, pilots if asked."""
    bw = _BW_BY_NFFT[nfft]
    sc = ofdm.natural_indices(nfft)
    mask = ofdm.null_mask(sc, bw)
    if mask_pilots:
        mask |= ofdm.pilot_mask(sc, bw)
    if new_layout:
        # csi_extractor.c: memcpy(&csi_values[(bw == 20 MHz) ? 28 : 0], phystatus, 12)
        first = 28 if bw == 20 else 0
        mask |= (sc >= first) & (sc < first + 3)
    mask.flags.writeable = False
    return mask


def _decode_int16(body: np.ndarray, nfft: int) -> np.ndarray:
    """body uint8[packet, 4N] -> complex64[packet, N] natural order; word = int16 real, int16 imag."""
    raw = body.view("<i2")  # [packet, 2N]: re0, im0, re1, im1, ... in FFT order
    out = np.empty((body.shape[0], nfft), dtype=np.complex64)
    flat = out.view(np.float32)  # [packet, 2N] interleaved like raw
    # Natural order = second half of the FFT-order words, then the first half.
    flat[:, :nfft] = raw[:, nfft:]
    flat[:, nfft:] = raw[:, :nfft]
    return out


@lru_cache(maxsize=None)
def _float_table(nman: int, nexp: int) -> np.ndarray:
    """float32[2**(nexp+nman)]: exponent bits (low nexp bits) and a signed mantissa (next nman
    bits: nman-1 magnitude bits, then the sign) -> mantissa * 2**e.

    A packed-float word is (LSB first) e (nexp bits, two's complement), |Q| (nman-1), sign Q,
    |I| (nman-1), sign I, and its value is (+-|I| + j +-|Q|) * 2**e, so the table gives the
    imaginary part for ``w & (2**(nexp+nman)-1)`` and the real part for the key made of the
    I bits moved down next to the exponent. Exact in float32: |mantissa| < 2**11 and
    |e| <= 32 are far inside its range.
    """
    keys = np.arange(1 << (nexp + nman), dtype=np.int64)
    half = 1 << (nexp - 1)
    exponent = ((keys & ((1 << nexp) - 1)) ^ half) - half
    bits = keys >> nexp
    magnitude = bits & ((1 << (nman - 1)) - 1)
    signed = np.where((bits >> (nman - 1)) & 1, -magnitude, magnitude)
    table = np.ldexp(signed.astype(np.float64), exponent).astype(np.float32)
    table.flags.writeable = False
    return table


def _decode_packed_float(body: np.ndarray, fmt: ChipFormat, scaling: str) -> tuple[np.ndarray, np.ndarray]:
    """body uint8[packet, 4N] -> (complex64[packet, N] natural order, scale exponent int16[packet])."""
    nman, nexp = fmt.nman, fmt.nexp
    table = _float_table(nman, nexp)
    fft_words = body.view("<u4")  # [packet, N] FFT order
    n, nfft = fft_words.shape
    half = nfft // 2
    # A contiguous copy in natural order: every later pass runs on contiguous memory (about
    # 4x faster than on rows strided through the capture buffer).
    words = np.empty((n, nfft), dtype=np.uint32)
    words[:, :half] = fft_words[:, half:]
    words[:, half:] = fft_words[:, :half]

    exp_mask = np.uint32((1 << nexp) - 1)
    key_im = words & np.uint32((1 << (nexp + nman)) - 1)
    key_re = ((words >> np.uint32(nman)) & np.uint32(((1 << nman) - 1) << nexp)) | (words & exp_mask)
    out = np.empty((n, nfft), dtype=np.complex64)
    # mode="wrap" skips bounds checks; the keys are masked into the table's range.
    out.real = np.take(table, key_re, mode="wrap")
    out.imag = np.take(table, key_im, mode="wrap")
    flat = out.view(np.float32)  # [packet, 2N] re, im interleaved

    half_e = 1 << (nexp - 1)
    if scaling == "exact":
        return out, np.zeros(n, dtype=np.int16)
    if scaling == "none":
        shift = np.full(n, _AUTOSCALE_BITS + half_e, dtype=np.int32)
    else:
        # unpack_float.c: maxbit = max over words with |I|||Q| != 0 of e + floor(log2(|I| | |Q|)),
        # starting at -2^(nexp-1); shft = 10 - maxbit. e + floor(log2(max(|I|,|Q|))) is
        # floor(log2) of the word's largest exact component, i.e. its float32 exponent, so
        # maxbit is the float32 exponent of the packet's largest |component|; without the
        # sign bit, float32 bit patterns order like the values.
        largest = (flat.view(np.int32) & np.int32(0x7FFFFFFF)).max(axis=1)
        maxbit = np.where(largest > 0, (largest >> 23) - 127, -half_e)
        shift = _AUTOSCALE_BITS - np.maximum(maxbit, -half_e)
    flat *= np.ldexp(1.0, shift).astype(np.float32)[:, None]  # exact: a power of two
    if scaling == "autoscale":
        # unpack_float.c shifts the magnitude, then applies the sign: truncation toward
        # zero; "+ 0" turns the -0.0 of truncated small negatives into 0.0.
        np.trunc(flat, out=flat)
        flat += np.float32(0)
    return out, shift.astype(np.int16)


def _mac_column(mac_bytes: np.ndarray) -> np.ndarray:
    """uint8[packet, 6] -> uint64[packet] (big-endian 48-bit value, as frames.mac_to_int)."""
    wide = np.zeros((mac_bytes.shape[0], 8), dtype=np.uint8)
    wide[:, 2:] = mac_bytes
    return wide.view(">u8")[:, 0].astype(np.uint64)


def decode_payloads(
    payloads: np.ndarray,
    *,
    time: np.ndarray | Sequence[float] | None = None,
    record: np.ndarray | None = None,
    chip: str | None = None,
    scaling: str = DEFAULT_SCALING,
    swap_iq: bool = False,
    mask_pilots: bool = False,
) -> Decoded:
    """Decode many Nexmon payloads of one length at once.

    ``payloads``: uint8[packet, byte], every row one UDP payload (rows may be a
    strided view into a capture buffer; the last axis must be contiguous).
    ``time``: receive time per row (NaN when None). ``record``: the value to put
    in ``packet_index`` per row (default: the row number). ``chip`` overrides the
    chip id field. Returns one batch per chip present (rows in input order) and
    the rejected rows by reason; never raises on bad data.
    """
    forced = check_options(chip=chip, scaling=scaling)
    payloads = np.asarray(payloads)
    if payloads.ndim != 2 or payloads.dtype != np.uint8:
        raise TypeError("payloads must be a uint8[packet, byte] array")
    if payloads.shape[1] > 1 and payloads.strides[1] != 1:  # the word views need contiguous rows
        payloads = np.ascontiguousarray(payloads)
    n, length = payloads.shape
    result = Decoded()
    everything = np.arange(n, dtype=np.int64)
    if n == 0:
        return result
    if length < HEADER_LEN:
        result.rejected.append(Rejected("truncated", everything,
                                        lambda _r: f"{length}-byte payload, shorter than the 18-byte Nexmon header"))
        return result
    nfft, rest = divmod(length - HEADER_LEN, 4)
    if rest or nfft not in _BW_BY_NFFT:
        result.rejected.append(Rejected(
            "bad_length", everything,
            lambda _r: f"{length}-byte payload: 18 + 4*N bytes with N in {sorted(_BW_BY_NFFT)} expected"))
        return result

    raw_header = np.ascontiguousarray(payloads[:, :HEADER_LEN])
    header = raw_header.view(HEADER_DTYPE)[:, 0]  # [packet] records
    magic = header["magic"]
    legacy = (magic == 0x1111) & (header["rssi"] == MAGIC_BYTE) & (header["fc"] == MAGIC_BYTE)
    ok = magic == 0x1111
    if not ok.all():
        rows = np.flatnonzero(~ok)
        result.rejected.append(Rejected(
            "bad_magic", rows, lambda r: f"payload starts {raw_header[r, :4].tobytes().hex(' ')}, not 11 11"))

    chip_id = header["chip_id"]
    if forced is not None:
        names = [forced.name] if ok.any() else []
    else:
        ids_present = np.unique(chip_id[ok])
        known = np.array([int(i) in CHIP_IDS for i in ids_present], dtype=bool)
        unknown = np.zeros(n, dtype=bool)
        for cid in ids_present[~known]:
            unknown |= chip_id == cid
        unknown &= ok
        if unknown.any():
            rows = np.flatnonzero(unknown)
            ok = ok & ~unknown
            result.rejected.append(Rejected(
                "unknown_chip", rows,
                lambda r: (f"chip id 0x{int(chip_id[r]):04x} is not a known Nexmon chip; pass chip= "
                           f"(one of {', '.join(CHIPS)})")))
        names = list(dict.fromkeys(CHIP_IDS[int(i)] for i in ids_present[known]))

    times = (np.full(n, np.nan) if time is None
             else np.broadcast_to(np.asarray(time, dtype=np.float64), (n,)))
    packet_index = everything if record is None else np.asarray(record, dtype=np.int64)
    invalid_new = invalid_bins(nfft, new_layout=True, mask_pilots=mask_pilots)
    invalid_old = invalid_bins(nfft, new_layout=False, mask_pilots=mask_pilots)
    subcarriers = ofdm.natural_indices(nfft)

    for name in names:
        fmt = CHIPS[name]
        if forced is not None:
            sel = ok
        else:
            sel = np.zeros(n, dtype=bool)
            for cid in ids_present[known]:
                if CHIP_IDS[int(cid)] == name:
                    sel |= chip_id == cid
            sel &= ok
        all_rows = bool(sel.all())
        rows = slice(None) if all_rows else np.flatnonzero(sel)
        body = payloads[rows, HEADER_LEN:]
        if fmt.packed_float:
            csi, shift = _decode_packed_float(body, fmt, scaling)
        else:
            csi = _decode_int16(body, nfft)
            shift = np.zeros(csi.shape[0], dtype=np.int16)
        if swap_iq:
            swapped = np.empty_like(csi)
            swapped.real = csi.imag
            swapped.imag = csi.real
            csi = swapped
        h = header[rows]
        is_legacy = legacy[rows]
        seq_ctl = h["seq_ctl"].copy()
        core_nss = h["core_nss"].copy()
        chanspec = h["chanspec"].copy()
        channel, cs_bw, band, sideband = decode_chanspec(chanspec)
        rssi = np.where(is_legacy, np.nan, h["rssi"]).astype(np.float32)
        fc = np.where(is_legacy, -1, h["fc"]).astype(np.int16)
        m = csi.shape[0]
        if is_legacy.all() or not is_legacy.any():
            invalid = np.repeat((invalid_old if is_legacy[0] else invalid_new)[None, :], m, axis=0)
        else:
            invalid = np.where(is_legacy[:, None], invalid_old, invalid_new)
        result.batches.append(CSIBatch(
            format=FORMAT,
            chip=name,
            subcarriers=subcarriers,
            csi=csi.reshape(m, 1, 1, nfft),
            invalid=invalid,
            time=np.array(times[rows], dtype=np.float64),
            mac=_mac_column(h["mac"]),
            seq=(seq_ctl >> 4).astype(np.int64),
            rssi=rssi,
            noise=np.full(m, np.nan, dtype=np.float32),
            channel=channel,
            bandwidth_mhz=np.full(m, _BW_BY_NFFT[nfft], dtype=np.int16),
            core=(core_nss & 7).astype(np.int16),
            stream=((core_nss >> 3) & 7).astype(np.int16),
            packet_index=np.array(packet_index[rows], dtype=np.int64),
            extra={
                "legacy_header": is_legacy.copy(),
                "frame_control": fc,
                "seq_ctl": seq_ctl,
                "core_nss": core_nss,
                "chanspec": chanspec,
                "chanspec_bandwidth_mhz": cs_bw,
                "band_ghz": band,
                "sideband": sideband,
                "chip_id": h["chip_id"].copy(),
                "scale_exponent": shift,
            },
        ))
    return result


def parse_datagram(payload: bytes, *, received: float | None = None, chip: str | None = None,
                   source: str = "", offset: int | None = None, **opts) -> CSIBatch:
    """One UDP/5500 payload -> a one-packet batch (``time`` = ``received``).

    ``opts``: ``scaling``, ``swap_iq``, ``mask_pilots`` as in :func:`decode_payloads`.
    Raises :class:`ParseError` (with ``source`` and ``offset``) when the bytes are
    not a Nexmon CSI payload.
    """
    arr = np.frombuffer(bytes(payload), dtype=np.uint8)[None, :]
    decoded = decode_payloads(arr, time=None if received is None else [received], chip=chip, **opts)
    if decoded.batches:
        return decoded.batches[0]
    rej = decoded.rejected[0]
    raise ParseError(rej.reason, rej.detail(0), source=source, offset=offset)
