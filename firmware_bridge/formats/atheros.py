"""Atheros CSI Tool (ath9k; AR9300/QCA9300/AR9580) ``.dat`` files written by recvCSI.

Record (csi-formats spec section 5): ``u16 buf_len`` then ``buf_len`` bytes of
the kernel buffer, all multi-byte fields in the *host* byte order of the
machine that logged (little-endian on x86, big-endian on MIPS routers)::

    off  type  field                 off  type  field
    0    u64   timestamp (TSF, us)   16   u8    num_tones (56 = 20 MHz, 114 = 40 MHz)
    8    u16   csi_len               17   u8    nr (rx antennas)
    10   u16   channel (MHz)         18   u8    nc (tx streams)
    12   u8    err_info (phyerr)     19   u8    rssi (combined), 20..22 rssi_0..2
    13   u8    noise_floor           23   u16   payload_len
    14   u8    rate                  25   csi_len bytes CSI, then payload_len bytes frame
    15   u8    bandwidth (0/1)

Variant "pull 10" (Atheros-CSI-Tool-UserSpace-APP PR #10): one leading byte
per file, 0xFF = big-endian. The byte order and the variant are detected from
the plausibility of the first headers (a record is consistent when
``buf_len == 25 + csi_len + payload_len`` and ``csi_len`` matches
``num_tones*nr*nc*20`` bits); ``endian=`` / ``pull10=`` force them.

CSI bit stream (read_csi.c): an LSB-first stream read from consecutive
little-endian u16 words (whatever the host order), 10-bit two's complement
values, ``imag`` then ``real``, element order tone -> nc (tx) -> nr (rx).
Decoded in bulk: two elements fill exactly 5 bytes.

Output: ``csi[packet, rx, tx, subcarrier]`` complex64, subcarriers -28..-1,
1..28 (56 tones) or -58..-2, 2..58 (114 tones), ascending as the tones come
[unverified in the tool source; csi-formats spec section 5.2]. Values are the
raw integers of read_csi.c (CSIKit adds +1 to each; csiread swaps the rx/tx
roles for MIMO: tests/test_format_intel_atheros.py shows both).
Columns: time = TSF in seconds; rssi = combined RSSI (dB above the noise
floor, ath9k's ``rs_rssi``) plus the noise floor, in dBm, as ath9k computes
the signal (``ah->noise + rs_rssi``): the tool leaves its noise_floor byte 0
("to be updated"), so ``noise_floor_dbm`` (ath9k's default, -95) stands in
for it; noise = the noise_floor byte as int8 dBm, NaN when 0; channel number
from the MHz field; mac/seq from the frame payload (addr2, sequence control)
when it holds an 802.11 header [observed in the sample]. ``extra``:
timestamp, freq_mhz, err_info, rate, rssi_combined and rssi_chain[packet, 3]
(raw dB above the noise floor, -128 = chain absent), payload_len.

Records with no CSI (csi_len 0) are skipped and counted as ``no_csi``;
inconsistent or truncated records are counted with their byte offset and
reading resumes at the next consistent header.
"""

from __future__ import annotations

import struct
from typing import Literal

import numpy as np

from edgecsi.errors import BadPackets, ParseError
from edgecsi.firmware_bridge.capture import Capture
from edgecsi.firmware_bridge.formats.dot11 import DOT11_HEADER, transmitter_and_sequence
from edgecsi.firmware_bridge.formats.record_arrays import at_offsets
from edgecsi.frames import CSIBatch, group_by_layout, make_batch

NAME = "atheros"
CHIP = "ath9k"

HEADER = 25  # kernel buffer bytes before the CSI
ATH9K_NOISE_FLOOR_DBM = -95.0  # ATH_DEFAULT_NOISE_FLOOR in drivers/net/wireless/ath/ath9k
_TONES = (56, 114)
_SNIFF_RECORDS = 16

SUBCARRIERS = {
    56: np.r_[np.arange(-28, 0), np.arange(1, 29)].astype(np.int16),
    114: np.r_[np.arange(-58, -1), np.arange(2, 59)].astype(np.int16),
}


def csi_len(tones: int, nr: int, nc: int) -> int:
    """Bytes of CSI: 20 bits per element (tones is even, so always whole bytes)."""
    return tones * nr * nc * 20 // 8


# buf_len, csi_len, num_tones, nr, nc, payload_len of one record, for the record-by-record walk.
_FIELDS = {big: struct.Struct(("<", ">")[big] + "H8xH6xBBB4xH") for big in (False, True)}
# A record's u16 buf_len and 25-byte header, for each byte order (big-endian: True).
RECORD_HEADER = {big: np.dtype([("buf_len", "u2"), ("timestamp", "u8"), ("csi_len", "u2"), ("channel", "u2"),
                                ("err_info", "u1"), ("noise_floor", "u1"), ("rate", "u1"), ("bandwidth", "u1"),
                                ("num_tones", "u1"), ("nr", "u1"), ("nc", "u1"), ("rssi", "u1"),
                                ("rssi_chain", "u1", (3,)), ("payload_len", "u2")]).newbyteorder(">" if big else "<")
                 for big in (False, True)}
_CHUNK = 512  # records decoded at a time: the temporaries stay in the CPU cache


def _fields(d: bytes, pos: int, big: bool) -> tuple[int, int, int, int, int, int] | None:
    """(buf_len, csi_len, num_tones, nr, nc, payload_len) of the record at ``pos``; None past the end."""
    layout = _FIELDS[big]
    return layout.unpack_from(d, pos) if pos + layout.size <= len(d) else None


def _csi_ok(length: int, tones: int, nr: int, nc: int) -> bool:
    return tones in _TONES and 0 < nr < 4 and 0 < nc < 4 and length == csi_len(tones, nr, nc)


def _record_ok(d: bytes, pos: int, big: bool) -> bool:
    """A consistent record with CSI starts at ``pos`` (its end may lie past the input)."""
    fields = _fields(d, pos, big)
    if fields is None:
        return False
    buf_len, length, tones, nr, nc, payload_len = fields
    return buf_len == HEADER + length + payload_len and _csi_ok(length, tones, nr, nc)


def _resync(d: bytes, start: int, big: bool) -> int:
    """Start of the next consistent record at or after ``start`` (``len(d)`` if none).

    Candidates are the bytes equal to a num_tones value (offset 18 of a record).
    """
    pending = {t: d.find(bytes([t]), start + 18) for t in _TONES}
    while True:
        found = [at for at in pending.values() if at != -1]
        if not found:
            return len(d)
        at = min(found)
        if _record_ok(d, at - 18, big):
            return at - 18
        pending[d[at]] = d.find(bytes([d[at]]), at + 1)


def _chain_length(d: bytes, pos: int, big: bool, limit: int) -> int:
    """How many consistent records follow one another from ``pos`` (at most ``limit``)."""
    count = 0
    while count < limit and _record_ok(d, pos, big):
        count += 1
        pos += 2 + _fields(d, pos, big)[0]
    return count


def _detect(d: bytes, endian: str | None = None, pull10: bool | None = None) -> tuple[int, bool] | None:
    """(first record offset, big-endian) of the layout whose first headers hold together.

    Plain files start at 0; "pull 10" files at 1, whose leading byte (0xFF =
    big-endian) breaks ties. ``endian`` / ``pull10`` narrow the choice. None
    when no allowed layout has a consistent first record.
    """
    pull10_big = len(d) > 0 and d[0] == 0xFF
    candidates = [(start, big) for start, big in ((0, False), (0, True), (1, pull10_big), (1, not pull10_big))
                  if (pull10 is None or pull10 == (start == 1)) and (endian is None or big == (endian == "big"))]
    scores = [_chain_length(d, start, big, _SNIFF_RECORDS) for start, big in candidates]
    best = max(range(len(candidates)), key=lambda i: (scores[i], -i))
    return candidates[best] if scores[best] else None


def _first_record_anywhere(d: bytes, endian: str | None) -> tuple[int, bool] | None:
    """For a file whose first record is damaged: (0, byte order of the earliest consistent record)."""
    found = [(_resync(d, 0, big), big) for big in (False, True) if endian is None or big == (endian == "big")]
    at, big = min(found)
    return (0, big) if at < len(d) else None


def sniff(head: bytes) -> bool:
    return _detect(head) is not None


def _walk(d: bytes, start: int, big: bool, source: str, bad: BadPackets) -> list[int]:
    """Offsets of the records with CSI; everything else is counted in ``bad``."""
    n = len(d)
    good: list[int] = []
    pos = start
    while pos + 2 <= n:
        fields = _fields(d, pos, big)
        buf_len = fields[0] if fields else int.from_bytes(d[pos:pos + 2], "big" if big else "little")
        end = pos + 2 + buf_len
        if fields and end <= n:
            _, length, tones, nr, nc, payload_len = fields
            if buf_len == HEADER + length + payload_len:
                if _csi_ok(length, tones, nr, nc):
                    good.append(pos)
                elif length == 0:
                    bad.add(ParseError("no_csi", "record without CSI (csi_len 0)", source=source, offset=pos))
                else:  # the framing holds, only the CSI description is unusable
                    bad.add(ParseError("bad_csi_header", f"csi_len {length} disagrees with num_tones {tones}, "
                                       f"nr {nr}, nc {nc}", source=source, offset=pos))
                pos = end
                continue
        resume = _resync(d, pos + 1, big)
        reason = "truncated" if end > n else "bad_length"
        what = (f"record of {buf_len} bytes runs past the end ({n} bytes)" if end > n
                else "buf_len disagrees with 25 + csi_len + payload_len")
        bad.add(ParseError(reason, what + (f"; resumed at byte {resume}" if resume < n else ""),
                           source=source, offset=pos))
        pos = resume
    if pos < n:
        bad.add(ParseError("truncated", f"{n - pos} trailing bytes", source=source, offset=pos))
    return good


def _unpack(rows: np.ndarray, tones: int, nr: int, nc: int) -> np.ndarray:
    """uint8[packet, csi_len] CSI bit streams (any row stride) -> complex64[packet, rx, tx, subcarrier].

    Decoded in chunks of records so the temporaries stay in the CPU cache.
    """
    out = np.empty((len(rows), nr, nc, tones), dtype=np.complex64)
    for lo in range(0, len(rows), _CHUNK):
        _unpack_into(rows[lo:lo + _CHUNK], tones, nr, nc, out[lo:lo + _CHUNK])
    return out


def _unpack_into(rows: np.ndarray, tones: int, nr: int, nc: int, out: np.ndarray) -> None:
    """Two 20-bit elements (imag, real, imag, real: 10 bits each, LSB first) fill 5 bytes exactly;
    value k of such a group lies in the little-endian u16 word at byte k, shifted right by 2k bits."""
    n, length = rows.shape
    words = np.empty((n, length), dtype=np.uint16)  # the u16 at every byte offset (the last one half empty)
    words[:, :-1] = rows[:, 1:]
    words[:, :-1] <<= 8
    words[:, :-1] |= rows[:, :-1]
    words[:, -1] = rows[:, -1]
    words = words.reshape(n, -1, 5)
    parts = np.empty((2, n, words.shape[1], 2), dtype=np.int16)  # [real/imag, packet, group, element]
    parts[1, :, :, 0] = words[..., 0]
    parts[0, :, :, 0] = words[..., 1] >> 2
    parts[1, :, :, 1] = words[..., 2] >> 4
    parts[0, :, :, 1] = words[..., 3] >> 6
    parts &= 0x3FF
    parts ^= 0x200  # 10-bit two's complement: flip the sign bit, then move the range down
    parts -= 0x200
    stream = parts.reshape(2, n, tones, nc, nr)  # stream order: tone -> tx -> rx
    floats = out.view(np.float32).reshape(n, nr, nc, tones, 2)
    floats[..., 0] = stream[0].transpose(0, 3, 2, 1)
    floats[..., 1] = stream[1].transpose(0, 3, 2, 1)


def _channel_number(freq_mhz: np.ndarray) -> np.ndarray:
    f = freq_mhz.astype(np.int32)
    return np.select([f == 2484, (f >= 2412) & (f < 2484), (f >= 5000) & (f < 5950)],
                     [14, (f - 2407) // 5, (f - 5000) // 5], default=-1)


def _batch(d: bytes, starts: np.ndarray, hdr: np.ndarray, order: np.ndarray, noise_floor_dbm: float) -> CSIBatch:
    """Decode the records of one (num_tones, nr, nc) layout (``hdr``: their RECORD_HEADER fields)."""
    n = len(starts)
    tones, nr, nc = int(hdr["num_tones"][0]), int(hdr["nr"][0]), int(hdr["nc"][0])
    length = csi_len(tones, nr, nc)
    csi = _unpack(at_offsets(d, starts, hdr.dtype.itemsize, np.dtype((np.uint8, length))), tones, nr, nc)

    noise_byte = hdr["noise_floor"].view(np.int8).astype(np.float32)
    noise = np.where(noise_byte == 0, np.nan, noise_byte)
    floor = np.where(noise_byte == 0, noise_floor_dbm, noise_byte)
    rssi_db = hdr["rssi"].view(np.int8).astype(np.float32)
    rssi = np.where(rssi_db == -128, np.nan, rssi_db + floor)

    # The payload is the received frame; its 802.11 header gives transmitter and sequence number.
    mac = np.zeros(n, dtype=np.uint64)
    seq = np.full(n, -1, dtype=np.int64)
    has_header = hdr["payload_len"] >= DOT11_HEADER.itemsize
    if has_header.any():
        frames = at_offsets(d, starts[has_header], hdr.dtype.itemsize + length, DOT11_HEADER)
        mac[has_header], seq[has_header] = transmitter_and_sequence(frames)

    freq = hdr["channel"].astype(np.uint16)
    return make_batch(
        format=NAME, chip=CHIP, subcarriers=SUBCARRIERS[tones], csi=csi,
        time=hdr["timestamp"].astype(np.float64) * 1e-6,
        mac=mac, seq=seq, rssi=rssi, noise=noise,
        channel=_channel_number(freq),
        bandwidth_mhz=np.select([hdr["bandwidth"] == 0, hdr["bandwidth"] == 1], [20, 40], default=-1),
        packet_index=order,
        extra={
            "timestamp": hdr["timestamp"].astype(np.uint64),
            "freq_mhz": freq,
            "err_info": hdr["err_info"].copy(),
            "rate": hdr["rate"].copy(),
            "rssi_combined": hdr["rssi"].view(np.int8).astype(np.int16),
            "rssi_chain": hdr["rssi_chain"].view(np.int8).astype(np.int16),
            "payload_len": hdr["payload_len"].astype(np.uint16),
        },
    )


def read(data: bytes, *, source: str = "", endian: Literal["little", "big"] | None = None,
         pull10: bool | None = None, noise_floor_dbm: float = ATH9K_NOISE_FLOOR_DBM) -> Capture:
    """Read a whole ``.dat`` file (see the module docstring).

    ``endian`` / ``pull10`` force the byte order / the one-byte-prefix variant
    instead of detecting them. Raises :class:`ParseError` only when the input
    holds no consistent record at all.
    """
    d = bytes(data)
    bad = BadPackets()
    if not d:
        return Capture(format=NAME, source=source, batches=[], bad=bad)
    if endian is not None and pull10 is not None:
        start, big = (1 if pull10 else 0), endian == "big"
    else:
        found = _detect(d, endian, pull10) or _first_record_anywhere(d, endian)
        if found is None:
            raise ParseError("not_atheros", "no consistent Atheros CSI Tool record header",
                             source=source, offset=0)
        start, big = found
    starts_list = _walk(d, start, big, source, bad)
    if not starts_list:
        return Capture(format=NAME, source=source, batches=[], bad=bad)
    starts = np.asarray(starts_list, dtype=np.intp)
    hdr = at_offsets(d, starts, 0, RECORD_HEADER[big]).copy()  # aligned, and no longer tied to ``d``
    layout = hdr["num_tones"].astype(np.int32) * 16 + hdr["nr"] * 4 + hdr["nc"]
    batches = []
    for key in np.unique(layout):
        members = np.flatnonzero(layout == key)
        batches.append(_batch(d, starts[members], hdr[members], members.astype(np.int64), noise_floor_dbm))
    batches.sort(key=lambda b: int(b.packet_index[0]))
    return Capture(format=NAME, source=source, batches=group_by_layout(batches), bad=bad)
