"""Intel 5300 ``.dat`` files of the Linux 802.11n CSI Tool (``log_to_file``).

Record stream (csi-formats spec section 4)::

    u16be field_len | u8 code | (field_len - 1) bytes body      repeated

- code 0xBB: beamforming feedback = one CSI measurement. Body: 20 header bytes
  (timestamp_low, bfee_count, Nrx, Ntx, rssi_a/b/c, noise, agc, antenna_sel,
  len, fake_rate_n_flags) then ``len = 60*Nrx*Ntx + 12`` bytes of packed CSI.
- code 0xC1: the received MAC frame (connector_log 0x4); written just before
  the 0xBB record of the same frame, so its source address (addr2) and
  sequence number are attached to the next CSI record.
- any other code: skipped by its length (which must lead to a 0xBB/0xC1
  record or to the end of the input, else it counts as a bad record).

Packed CSI (read_bfee.c): per subcarrier 3 header bits, then for each
``j = rx*Ntx + tx`` an int8 real and an int8 imag, bit-aligned. Records are
decoded in bulk: one numpy pass per (Nrx, Ntx) layout, never a Python loop per
value.

Output: ``csi[packet, rx, tx, subcarrier]`` complex64 over the 30 grouped
subcarriers (20 MHz Ng=2 or 40 MHz Ng=4, from fake_rate_n_flags bit 0x800),
antenna permutation applied as read_bf_file.m does. ``scaled=True`` gives the
channel matrix of get_scaled_csi.m (spec 4.4) instead of the raw integers.
Columns: rssi = total RSS in dBm (get_total_rss.m; NaN when no chain reports),
noise dBm (NaN when the NIC reports -127), time = timestamp_low unwrapped, in
seconds of the NIC clock. ``extra``: timestamp_low, bfee_count, agc,
rssi_chain[packet, 3] (rssi_a/b/c, dB relative to an internal reference),
perm[packet, 3] (0-based, as reported), perm_applied, rate
(fake_rate_n_flags).

Bad records (``bad_length``: a 0xBB whose ``len`` disagrees with Nrx/Ntx or
field_len; ``truncated``: a record running past the end of the input;
``bad_record``: a record whose length leads nowhere) are counted in
``Capture.bad`` with their byte offset, and reading goes on at the next
consistent 0xBB header.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from edgecsi.errors import BadPackets, ParseError
from edgecsi.firmware_bridge.capture import Capture
from edgecsi.firmware_bridge.formats.dot11 import DOT11_HEADER, transmitter_and_sequence
from edgecsi.firmware_bridge.formats.record_arrays import at_offsets
from edgecsi.frames import CSIBatch, group_by_layout, make_batch

NAME = "intel5300"
CHIP = "iwl5300"

CODE_BFEE = 0xBB
CODE_MAC_FRAME = 0xC1
# The 20 bytes of a 0xBB body before the packed CSI (read_bfee.c).
BFEE_HEADER = np.dtype([("timestamp_low", "<u4"), ("bfee_count", "<u2"), ("reserved", "<u2"), ("n_rx", "u1"),
                        ("n_tx", "u1"), ("rssi", "u1", (3,)), ("noise", "i1"), ("agc", "u1"), ("antenna_sel", "u1"),
                        ("len", "<u2"), ("rate", "<u2")])
_BFEE_HEADER = BFEE_HEADER.itemsize
_EXTRA_FIELDS = ("timestamp_low", "bfee_count", "agc", "rate")  # header fields kept as they are in ``extra``
_MAC_HEADER = DOT11_HEADER.itemsize  # a 0xC1 body starts with the received frame's 802.11 header
_N_SUBCARRIERS = 30
_HT40_FLAG = 0x800  # fake_rate_n_flags: RATE_MCS_HT40_MSK
_TOOL_CODES = (CODE_BFEE, CODE_MAC_FRAME)
_CHUNK = 1024  # records decoded at a time: the temporaries stay in the CPU cache

# 802.11n grouped subcarriers reported by the 5300 (citysu/csiread examples/utils.py scidx).
SUBCARRIERS_20MHZ = np.r_[np.arange(-28, 0, 2), -1, np.arange(1, 28, 2), 28].astype(np.int16)
SUBCARRIERS_40MHZ = np.r_[np.arange(-58, 0, 4), np.arange(2, 59, 4)].astype(np.int16)


def packed_len(n_rx: int, n_tx: int) -> int:
    """Bytes of packed CSI: ``(30*(Nrx*Ntx*16 + 3) + 7) // 8``, which equals ``60*Nrx*Ntx + 12``."""
    return 60 * n_rx * n_tx + 12


def _bfee_at(d: bytes, pos: int) -> bool:
    """True when a consistent 0xBB record header starts at ``pos``: Nrx, Ntx, len and field_len agree.

    Record offsets: field_len 0-1 (big-endian), code 2, then the body: Nrx 11,
    Ntx 12, len 19-20 (little-endian); field_len = 1 + 20 + len.
    """
    if pos + 3 + _BFEE_HEADER > len(d) or d[pos + 2] != CODE_BFEE:
        return False
    n_rx, n_tx = d[pos + 11], d[pos + 12]
    return (0 < n_rx < 4 and 0 < n_tx < 4 and ((d[pos] << 8) | d[pos + 1]) == 33 + 60 * n_rx * n_tx
            and d[pos + 19] | (d[pos + 20] << 8) == 12 + 60 * n_rx * n_tx)


def _resync(d: bytes, start: int) -> int:
    """Start of the next consistent 0xBB record at or after ``start`` (``len(d)`` if none).

    Only 0xBB headers are searched for: their length fields must agree three
    ways, so a false match in CSI bytes is practically impossible.
    """
    code_at = d.find(bytes([CODE_BFEE]), start + 2)
    while code_at != -1:
        if _bfee_at(d, code_at - 2):
            return code_at - 2
        code_at = d.find(bytes([CODE_BFEE]), code_at + 1)
    return len(d)


# Bytes at a record's start that the walk checks: field_len and code; for 0xBB also Nrx, Ntx and len.
_CHECKED_BFEE = np.array([0, 1, 2, 11, 12, 19, 20])
_CHECKED_OTHER = np.array([0, 1, 2])


def _walk(d: bytes, source: str, bad: BadPackets, *, repeats: bool = True) -> tuple[list[int], list[int]]:
    """Offsets of the good 0xBB records, and of the 0xC1 record before each (-1 if none).

    Follows field_len from record to record. A 0xBB record is good when its
    Nrx, Ntx, len and field_len agree; a record of another code is accepted
    when it points at the end of the input or at another 0xBB/0xC1 record
    (its own bytes cannot be checked). Anything else is counted as bad and
    reading resumes at the next consistent 0xBB header. ``pos`` only ever
    grows, so any input is read in one pass.

    ``repeats``: when two consecutive cycles (the records up to and including
    a 0xBB) have the same lengths and codes, the following identical cycles
    are checked and taken with numpy in one go (``_repeat_count``); the result
    is the same as walking record by record (a test holds this).
    """
    n = len(d)
    buf = np.frombuffer(d, dtype=np.uint8)
    bfee: list[int] = []
    mac_frame: list[int] = []
    pending_mac = -1
    cycle_start = 0
    shape: list[int] = []  # field_len << 8 | code of each record since the last 0xBB
    last_shape: list[int] | None = None
    no_repeat: list[int] | None = None
    pos = 0
    while pos + 3 <= n:
        field_len = (d[pos] << 8) | d[pos + 1]
        code = d[pos + 2]
        end = pos + 2 + field_len
        if code == CODE_BFEE:
            if end <= n and _bfee_at(d, pos):
                bfee.append(pos)
                mac_frame.append(pending_mac)
                pending_mac = -1
                shape.append(field_len << 8 | code)
                pos = end
                if repeats and shape == last_shape and shape != no_repeat:
                    taken = _take_repeats(buf, cycle_start, shape, pos, bfee, mac_frame)
                    # Same lengths but other checked bytes (Nrx/Ntx): do not try this shape again.
                    no_repeat = None if taken > pos else shape
                    pos = taken
                last_shape, shape, cycle_start = shape, [], pos
                continue
        elif field_len and (end == n or (end + 3 <= n and d[end + 2] in _TOOL_CODES)):
            if code == CODE_MAC_FRAME and field_len > _MAC_HEADER:
                pending_mac = pos
            shape.append(field_len << 8 | code)
            pos = end
            continue
        resume = _resync(d, pos + 1)
        if end > n:
            reason, what = "truncated", f"record of {field_len} bytes runs past the end ({n} bytes)"
        elif code == CODE_BFEE:
            reason, what = "bad_length", "0xBB record whose len disagrees with Nrx/Ntx or field_len"
        else:
            reason, what = "bad_record", f"code 0x{code:02X} record of {field_len} bytes is not followed by a record"
        skipped = f"; resumed at byte {resume}" if resume < n else ""
        bad.add(ParseError(reason, what + skipped, source=source, offset=pos))
        pending_mac, shape, last_shape, cycle_start = -1, [], None, resume
        pos = resume
    if pos < n:
        bad.add(ParseError("truncated", f"{n - pos} trailing bytes", source=source, offset=pos))
    return bfee, mac_frame


def _take_repeats(buf: np.ndarray, first: int, shape: list[int], pos: int,
                  bfee: list[int], mac_frame: list[int]) -> int:
    """Accept the copies of the cycle ``[first, pos)`` (records ``shape``) that follow it; new ``pos``.

    A copy counts when it holds the same bytes as the cycle wherever the walk
    would look (field_len and code of every record; Nrx, Ntx and len of the 0xBB).
    """
    offsets, mac_offset = [], None
    off = 0
    for record in shape:
        offsets.append(off)
        if record & 0xFF == CODE_MAC_FRAME and record >> 8 > _MAC_HEADER:
            mac_offset = off
        off += 2 + (record >> 8)
    period = pos - first
    where = np.concatenate([off + (_CHECKED_BFEE if record & 0xFF == CODE_BFEE else _CHECKED_OTHER)
                            for off, record in zip(offsets, shape)])
    count = _repeat_count(buf, pos, period, where, buf[first + where])
    if count:
        starts = pos + period * np.arange(count)
        bfee.extend((starts + offsets[-1]).tolist())
        mac_frame.extend((starts + mac_offset).tolist() if mac_offset is not None else [-1] * count)
    return pos + period * count


def _repeat_count(buf: np.ndarray, start: int, period: int, where: np.ndarray, expect: np.ndarray) -> int:
    """How many whole periods from ``start`` hold ``expect`` at offsets ``where`` (in growing chunks)."""
    limit = (len(buf) - start) // period
    done, chunk = 0, 64
    while done < limit:
        k = np.arange(done, min(limit, done + chunk))
        ok = (buf[start + k[:, None] * period + where] == expect).all(axis=1)
        if not ok.all():
            return done + int(np.argmin(ok))
        done += len(k)
        chunk *= 4
    return done


def sniff(head: bytes) -> bool:
    """A first record the tool writes: a consistent 0xBB header, or a 0xC1 followed by one."""
    if _bfee_at(head, 0):
        return True
    if len(head) < 3 or head[2] != CODE_MAC_FRAME:
        return False
    field_len = (head[0] << 8) | head[1]
    nxt = 2 + field_len
    return field_len > _MAC_HEADER and (
        _bfee_at(head, nxt) or (nxt + 3 <= len(head) and head[nxt + 2] == CODE_MAC_FRAME))


def total_rss(rssi_chain: np.ndarray, agc: np.ndarray) -> np.ndarray:
    """get_total_rss.m: float64[packet] dBm from rssi_chain[packet, 3] (0 = chain silent) and agc[packet].

    -inf where no chain reports.
    """
    r = rssi_chain.astype(np.float64)
    mag = np.where(r != 0, 10.0 ** (r / 10.0), 0.0).sum(axis=1)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(mag) - 44.0 - agc.astype(np.float64)


def scaled_csi(csi: np.ndarray, rssi_chain: np.ndarray, agc: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """get_scaled_csi.m (spec 4.4), vectorised.

    csi[packet, rx, tx, subcarrier] raw integers (any complex dtype);
    rssi_chain uint8[packet, 3]; agc uint8[packet]; noise int8[packet] dBm
    (-127 = unknown). Returns complex64[packet, rx, tx, subcarrier], the
    channel normalised so that |H|^2 is the SNR. Packets with all-zero CSI or
    no RSSI give zeros (MATLAB gives NaN or 0 there).
    """
    n, n_rx, n_tx = csi.shape[0], csi.shape[1], csi.shape[2]
    flat = csi.reshape(n, -1)
    csi_pwr = (flat.real.astype(np.float64) ** 2 + flat.imag.astype(np.float64) ** 2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        scale = 10.0 ** (total_rss(rssi_chain, agc) / 10.0) / (csi_pwr / _N_SUBCARRIERS)
        noise_db = np.where(noise == -127, -92.0, noise.astype(np.float64))
        total_noise = 10.0 ** (noise_db / 10.0) + scale * (n_rx * n_tx)
        factor = np.sqrt(scale / total_noise)
    if n_tx == 2:
        factor *= np.sqrt(2.0)
    elif n_tx == 3:
        factor *= np.sqrt(10.0 ** 0.45)
    factor = np.nan_to_num(factor, nan=0.0, posinf=0.0)
    return (csi * factor[:, None, None, None]).astype(np.complex64)


def _unpack(rows: np.ndarray, n_rx: int, n_tx: int, chain_to_rx: np.ndarray) -> np.ndarray:
    """Packed CSI -> complex64[packet, rx, tx, subcarrier], in chunks that keep the temporaries in cache.

    ``rows``: uint8[packet, len + 2], each record's ``len`` CSI bytes plus 2
    more (read but masked off, as in read_bfee.c); any row stride.
    ``chain_to_rx[packet, k]`` is the rx index that RF chain k is written to
    (the antenna permutation).
    """
    out = np.empty((len(rows), n_rx, n_tx, _N_SUBCARRIERS), dtype=np.complex64)
    for lo in range(0, len(rows), _CHUNK):
        _unpack_into(rows[lo:lo + _CHUNK], n_rx, n_tx, chain_to_rx[lo:lo + _CHUNK], out[lo:lo + _CHUNK])
    return out


def _unpack_into(rows: np.ndarray, n_rx: int, n_tx: int, chain_to_rx: np.ndarray, out: np.ndarray) -> None:
    """Element (sc, j) starts at bit ``3*(sc+1) + 16*(sc*M + j)`` (M = Nrx*Ntx),
    so its bit shift depends on ``sc % 8`` only and subcarriers ``c, c+8,
    c+16, ...`` sit a constant ``16*M + 3`` bytes apart: eight strided uint8
    views decode everything.
    """
    n, m = len(rows), n_rx * n_tx
    pairs = np.empty((n, _N_SUBCARRIERS, 2 * m), dtype=np.uint8)  # [packet, sc, (j, re/im)]
    for c in range(8):
        count = len(range(c, _N_SUBCARRIERS, 8))
        first_bit = 3 * (c + 1) + 16 * c * m
        span = as_strided(rows[:, first_bit >> 3:], shape=(n, count, 2 * m + 1),
                          strides=(rows.strides[0], 16 * m + 3, 1), writeable=False)
        shift = first_bit & 7
        # uint8 arithmetic drops the bits above 8, which is the & 0xFF of read_bfee.c.
        pairs[:, c::8] = (span[..., :-1] >> shift) | (span[..., 1:] << (8 - shift)) if shift else span[..., :-1]
    # Reorder whole (real, imag) pairs as uint16, then cast int8 -> float32 straight into complex64's floats.
    pair = pairs.view("<u2").reshape(n, _N_SUBCARRIERS, n_rx, n_tx).transpose(0, 2, 3, 1)
    if not (chain_to_rx == np.arange(n_rx)).all():
        pair = np.ascontiguousarray(pair)[np.arange(n)[:, None], np.argsort(chain_to_rx, axis=1)]
    out.view(np.float32)[...] = np.ascontiguousarray(pair).view(np.int8)


def _chain_to_rx(perm: np.ndarray, n_rx: int) -> tuple[np.ndarray, np.ndarray]:
    """read_bf_file.m: ``csi(:, perm(1:Nrx), :) = csi(:, 1:Nrx, :)`` when Nrx > 1 and perm is valid.

    Returns (chain_to_rx int[packet, Nrx], applied bool[packet]). Differences
    from the references, on purpose: MATLAB's validity test is
    ``sum(perm) == 1+..+Nrx`` (1-based), which also passes non-permutations
    such as [2,2,2] (every chain is written onto rx 2) or [1,1,4] (the matrix
    grows a fourth rx); we require a true permutation of the Nrx chains and leave
    other packets in chain order. csiread applies perm always, unchecked,
    even for Nrx == 1 (a single chain then lands on rx index perm[0], the
    other rows stay zero).
    """
    used = perm[:, :n_rx].astype(np.intp)
    identity = np.broadcast_to(np.arange(n_rx), used.shape)
    if n_rx == 1:
        return identity, np.zeros(len(perm), dtype=bool)
    applied = (np.sort(used, axis=1) == identity).all(axis=1)
    return np.where(applied[:, None], used, identity), applied


def _layout_batch(padded: bytes, starts: np.ndarray, hdr: np.ndarray, order: np.ndarray,
                  time: np.ndarray, mac: np.ndarray, seq: np.ndarray, scaled: bool) -> list[CSIBatch]:
    """Decode the records of one (Nrx, Ntx) layout (``hdr``: their BFEE_HEADER fields); one batch per bandwidth."""
    n = len(starts)
    n_rx, n_tx = int(hdr["n_rx"][0]), int(hdr["n_tx"][0])
    rows = at_offsets(padded, starts, 3 + _BFEE_HEADER, np.dtype((np.uint8, packed_len(n_rx, n_tx) + 2)))
    perm = np.stack([(hdr["antenna_sel"] >> (2 * k)) & 3 for k in range(3)], axis=1).astype(np.int8)
    chain_to_rx, perm_applied = _chain_to_rx(perm, n_rx)
    csi = _unpack(rows, n_rx, n_tx, chain_to_rx)
    rssi_chain, agc, noise = hdr["rssi"], hdr["agc"], hdr["noise"]
    if scaled:
        csi = scaled_csi(csi, rssi_chain, agc, noise)
    rss = total_rss(rssi_chain, agc)
    ht40 = (hdr["rate"] & _HT40_FLAG) != 0
    rssi = np.where(np.isfinite(rss), rss, np.nan)
    noise_dbm = np.where(noise == -127, np.nan, noise)
    batches = []
    for wide in np.unique(ht40):
        rows_bw = np.flatnonzero(ht40 == wide)
        if len(rows_bw) == n:
            rows_bw = slice(None)  # the common case: views, no copies
        batches.append(make_batch(
            format=NAME, chip=CHIP,
            subcarriers=SUBCARRIERS_40MHZ if wide else SUBCARRIERS_20MHZ,
            csi=csi[rows_bw],
            time=time[rows_bw], mac=mac[rows_bw], seq=seq[rows_bw],
            rssi=rssi[rows_bw], noise=noise_dbm[rows_bw],
            bandwidth_mhz=np.where(ht40[rows_bw], 40, 20),
            packet_index=order[rows_bw],
            extra={
                **{name: np.ascontiguousarray(hdr[name][rows_bw]) for name in _EXTRA_FIELDS},
                "rssi_chain": rssi_chain[rows_bw].astype(np.int16),
                "perm": perm[rows_bw],
                "perm_applied": perm_applied[rows_bw],
            },
        ))
    return batches


def read(data: bytes, *, source: str = "", scaled: bool = False) -> Capture:
    """Read a whole ``.dat`` file (see the module docstring).

    Raises :class:`ParseError` only when the input holds no CSI record and does
    not start like this format; bad records are counted in ``Capture.bad``.
    """
    d = bytes(data)
    bad = BadPackets()
    bfee, mac_frame = _walk(d, source, bad)
    if not bfee and d and not sniff(d[:4096]):
        raise ParseError("not_intel5300", "no 0xBB CSI record and no record header of the CSI tool",
                         source=source, offset=0)
    if not bfee:
        return Capture(format=NAME, source=source, batches=[], bad=bad)

    starts = np.asarray(bfee, dtype=np.intp)
    hdr = at_offsets(d, starts, 3, BFEE_HEADER).copy()  # aligned, and no longer tied to ``d``

    # timestamp_low is a u32 microsecond counter: unwrap with signed 32-bit steps.
    ts = hdr["timestamp_low"].astype(np.int64)
    steps = ((np.diff(ts) + 2**31) % 2**32) - 2**31
    time = (ts[0] + np.concatenate([[0], np.cumsum(steps)])) * 1e-6

    macs = np.asarray(mac_frame, dtype=np.intp)
    has_mac = macs >= 0
    mac = np.zeros(len(starts), dtype=np.uint64)
    seq = np.full(len(starts), -1, dtype=np.int64)
    if has_mac.any():
        mac[has_mac], seq[has_mac] = transmitter_and_sequence(at_offsets(d, macs[has_mac], 3, DOT11_HEADER))

    padded = d + b"\0\0"
    layout = hdr["n_rx"].astype(np.int16) * 4 + hdr["n_tx"]
    batches: list[CSIBatch] = []
    for key in np.unique(layout):
        members = np.flatnonzero(layout == key)
        batches += _layout_batch(padded, starts[members], hdr[members], members.astype(np.int64),
                                 time[members], mac[members], seq[members], scaled)
    batches.sort(key=lambda b: int(b.packet_index[0]))
    return Capture(format=NAME, source=source, batches=group_by_layout(batches), bad=bad)
