"""Intel 5300 ``.dat`` files of the Linux 802.11n CSI Tool (``log_to_file``).

Record stream (csi-formats spec section 4)::

    u16be field_len | u8 code | (field_len - 1) bytes body      repeated

- code 0xBB: beamforming feedback = one CSI measurement. Body: 20 header bytes
  (timestamp_low, bfee_count, Nrx, Ntx, rssi_a/b/c, noise, agc, antenna_sel,
  len, fake_rate_n_flags) then ``len = 60*Nrx*Ntx + 12`` bytes of packed CSI.
- code 0xC1: the received MAC frame (connector_log 0x4); written just before
  the 0xBB record of the same frame, so its source address (addr2) and
  sequence number are attached to the next CSI record.
- any other code: skipped by its length.

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

Bad records (a 0xBB whose ``len`` disagrees with Nrx/Ntx or field_len, a
record running past the end of the input, a record header that cannot start
a record) are counted in ``Capture.bad`` with their byte offset; reading goes
on at the next record, found by scanning for a consistent 0xBB header when
the length chain is broken.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from edgecsi.errors import BadPackets, ParseError
from edgecsi.firmware_bridge.capture import Capture
from edgecsi.frames import CSIBatch, group_by_layout, make_batch

NAME = "intel5300"
CHIP = "iwl5300"

CODE_BFEE = 0xBB
CODE_MAC_FRAME = 0xC1
_BFEE_HEADER = 20  # body bytes before the packed CSI
_MAC_HEADER = 24  # fc, duration, addr1, addr2, addr3, sequence control
_N_SUBCARRIERS = 30
_HT40_FLAG = 0x800  # fake_rate_n_flags: RATE_MCS_HT40_MSK
_TOOL_CODES = (CODE_BFEE, CODE_MAC_FRAME)

# 802.11n grouped subcarriers reported by the 5300 (citysu/csiread examples/utils.py scidx).
SUBCARRIERS_20MHZ = np.r_[np.arange(-28, 0, 2), -1, np.arange(1, 28, 2), 28].astype(np.int16)
SUBCARRIERS_40MHZ = np.r_[np.arange(-58, 0, 4), np.arange(2, 59, 4)].astype(np.int16)


def packed_len(n_rx: int, n_tx: int) -> int:
    """Bytes of packed CSI: ``(30*(Nrx*Ntx*16 + 3) + 7) // 8``, which equals ``60*Nrx*Ntx + 12``."""
    return 60 * n_rx * n_tx + 12


def _bfee_at(d: bytes, pos: int) -> bool:
    """True when a consistent 0xBB record header starts at ``pos``: Nrx, Ntx, len and field_len agree."""
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
    cycle: list[tuple[int, int, int]] = []  # (offset, field_len, code) since the last 0xBB
    last_cycle: list[tuple[int, int]] | None = None
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
                cycle.append((pos, field_len, code))
                pos = end
                if repeats:
                    shape = [(f, c) for _, f, c in cycle]
                    if shape == last_cycle:
                        pos = _take_repeats(buf, cycle, pos, bfee, mac_frame)
                    last_cycle = shape
                cycle = []
                continue
        elif field_len and (end == n or (end + 3 <= n and d[end + 2] in _TOOL_CODES)):
            if code == CODE_MAC_FRAME and field_len > _MAC_HEADER:
                pending_mac = pos
            cycle.append((pos, field_len, code))
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
        pending_mac, cycle, last_cycle = -1, [], None
        pos = resume
    if pos < n:
        bad.add(ParseError("truncated", f"{n - pos} trailing bytes", source=source, offset=pos))
    return bfee, mac_frame


def _take_repeats(buf: np.ndarray, cycle: list[tuple[int, int, int]], pos: int,
                  bfee: list[int], mac_frame: list[int]) -> int:
    """Accept the copies of ``cycle`` that follow it byte-identically in the checked bytes; new ``pos``."""
    first = cycle[0][0]
    period = pos - first
    where = np.concatenate([off - first + (_CHECKED_BFEE if code == CODE_BFEE else _CHECKED_OTHER)
                            for off, _, code in cycle])
    count = _repeat_count(buf, pos, period, where, buf[first + where])
    if count:
        starts = pos + period * np.arange(count)
        bfee.extend((starts + (cycle[-1][0] - first)).tolist())
        macs = [off for off, f, code in cycle[:-1] if code == CODE_MAC_FRAME and f > _MAC_HEADER]
        mac_frame.extend((starts + (macs[-1] - first)).tolist() if macs else [-1] * count)
    return pos + period * count


def _repeat_count(buf: np.ndarray, start: int, period: int, where: np.ndarray, expect: np.ndarray) -> int:
    """How many whole periods from ``start`` hold ``expect`` at offsets ``where`` (in doubling chunks)."""
    limit = (len(buf) - start) // period
    done, chunk = 0, 8
    while done < limit:
        k = np.arange(done, min(limit, done + chunk))
        ok = (buf[start + k[:, None] * period + where] == expect).all(axis=1)
        if not ok.all():
            return done + int(np.argmin(ok))
        done += len(k)
        chunk *= 2
    return done


def sniff(head: bytes) -> bool:
    """A first record the tool writes: a consistent 0xBB header, or a 0xC1 followed by one."""
    if _bfee_at(head, 0):
        return True
    if len(head) < 3 or head[2] != CODE_MAC_FRAME:
        return False
    field_len = (head[0] << 8) | head[1]
    nxt = 2 + field_len
    return field_len > _MAC_HEADER and (_bfee_at(head, nxt) or (nxt + 3 <= len(head) and head[nxt + 2] == CODE_MAC_FRAME))


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


def _complex_table() -> np.ndarray:
    """complex64[65536]: entry ``re | im << 8`` (two int8 as bytes) -> re + 1j*im."""
    value = np.arange(256, dtype=np.uint8).view(np.int8).astype(np.float32)
    return (value[None, :] + 1j * value[:, None]).astype(np.complex64).ravel()


_PAIR_TO_COMPLEX = _complex_table()


def _unpack(rows: bytes, n: int, n_rx: int, n_tx: int, chain_to_rx: np.ndarray) -> np.ndarray:
    """Packed CSI of ``n`` records -> complex64[packet, rx, tx, subcarrier].

    ``rows`` holds each record's ``len`` CSI bytes plus 2 padding bytes, back
    to back. Element (sc, j) starts at bit ``3*(sc+1) + 16*(sc*M + j)``
    (M = Nrx*Ntx), so its bit shift depends on ``sc % 8`` only and subcarriers
    ``c, c+8, c+16, ...`` sit a constant ``16*M + 3`` bytes apart: eight
    strided uint8 views decode everything. Each (real, imag) byte pair is then
    one uint16 looked up in a table of complex values. ``chain_to_rx[packet,
    k]`` is the rx index that RF chain k is written to (the permutation).
    """
    m = n_rx * n_tx
    row_bytes = packed_len(n_rx, n_tx) + 2
    raw = np.frombuffer(rows, dtype=np.uint8)
    pairs = np.empty((n, _N_SUBCARRIERS, 2 * m), dtype=np.uint8)  # [packet, sc, (j, re/im)]
    for c in range(8):
        count = len(range(c, _N_SUBCARRIERS, 8))
        first_bit = 3 * (c + 1) + 16 * c * m
        span = as_strided(raw[first_bit >> 3:], shape=(n, count, 2 * m + 1), strides=(row_bytes, 16 * m + 3, 1),
                          writeable=False)
        shift = first_bit & 7
        # uint8 arithmetic drops the bits above 8, which is the & 0xFF of read_bfee.c.
        pairs[:, c::8] = (span[..., :-1] >> shift) | (span[..., 1:] << (8 - shift)) if shift else span[..., :-1]
    # A C-ordered index gives a C-ordered result (fancy indexing follows the index's layout).
    index = np.ascontiguousarray(pairs.view("<u2").reshape(n, _N_SUBCARRIERS, n_rx, n_tx).transpose(0, 2, 3, 1))
    if not (chain_to_rx == np.arange(n_rx)).all():
        index = index[np.arange(n)[:, None], np.argsort(chain_to_rx, axis=1)]
    return _PAIR_TO_COMPLEX[index]


def _chain_to_rx(perm: np.ndarray, n_rx: int) -> tuple[np.ndarray, np.ndarray]:
    """read_bf_file.m: ``csi(:, perm(1:Nrx), :) = csi(:, 1:Nrx, :)`` when Nrx > 1 and perm is valid.

    Returns (chain_to_rx int[packet, Nrx], applied bool[packet]). Differences
    from the references, on purpose: MATLAB's validity test is
    ``sum(perm) == 1+..+Nrx``, which also passes non-permutations such as
    [2,2,2] (it then overwrites one chain twice, or grows the matrix for
    [1,1,4]); we require a true permutation of the Nrx chains and leave
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


def _le(columns: np.ndarray) -> np.ndarray:
    """Little-endian unsigned integer from byte columns [..., k] (k <= 8)."""
    weights = np.uint64(1) << (np.uint64(8) * np.arange(columns.shape[-1], dtype=np.uint64))
    return (columns.astype(np.uint64) * weights).sum(axis=-1, dtype=np.uint64)


def _layout_batch(padded: bytes, starts: np.ndarray, hdr: np.ndarray, order: np.ndarray,
                  time: np.ndarray, mac: np.ndarray, seq: np.ndarray, scaled: bool) -> list[CSIBatch]:
    """Decode the records of one (Nrx, Ntx) layout; one batch per bandwidth."""
    n = len(starts)
    n_rx, n_tx = int(hdr[0, 8]), int(hdr[0, 9])
    length = packed_len(n_rx, n_tx)
    first = 3 + _BFEE_HEADER
    rows = b"".join([padded[s + first:s + first + length + 2] for s in starts.tolist()])
    perm = np.stack([(hdr[:, 15] >> (2 * k)) & 3 for k in range(3)], axis=1).astype(np.int8)
    chain_to_rx, perm_applied = _chain_to_rx(perm, n_rx)
    csi = _unpack(rows, n, n_rx, n_tx, chain_to_rx)
    rssi_chain = hdr[:, 10:13]
    agc = hdr[:, 14]
    noise = hdr[:, 13].view(np.int8)
    if scaled:
        csi = scaled_csi(csi, rssi_chain, agc, noise)
    rss = total_rss(rssi_chain, agc)
    rate = _le(hdr[:, 18:20]).astype(np.uint16)
    ht40 = (rate & _HT40_FLAG) != 0
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
                "timestamp_low": _le(hdr[rows_bw, 0:4]).astype(np.uint32),
                "bfee_count": _le(hdr[rows_bw, 4:6]).astype(np.uint16),
                "agc": agc[rows_bw],
                "rssi_chain": rssi_chain[rows_bw].astype(np.int16),
                "perm": perm[rows_bw],
                "perm_applied": perm_applied[rows_bw],
                "rate": rate[rows_bw],
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

    buf = np.frombuffer(d, dtype=np.uint8)
    starts = np.asarray(bfee, dtype=np.intp)
    hdr = buf[starts[:, None] + 3 + np.arange(_BFEE_HEADER)]  # uint8[packet, 20]

    # timestamp_low is a u32 microsecond counter: unwrap with signed 32-bit steps.
    ts = _le(hdr[:, 0:4]).astype(np.int64)
    steps = ((np.diff(ts) + 2**31) % 2**32) - 2**31
    time = (ts[0] + np.concatenate([[0], np.cumsum(steps)])) * 1e-6

    macs = np.asarray(mac_frame, dtype=np.intp)
    has_mac = macs >= 0
    mac = np.zeros(len(starts), dtype=np.uint64)
    seq = np.full(len(starts), -1, dtype=np.int64)
    if has_mac.any():
        body = buf[macs[has_mac][:, None] + 3 + np.arange(_MAC_HEADER)]
        mac[has_mac] = _le(body[:, 15:9:-1])  # addr2 (transmitter), most significant byte first
        seq[has_mac] = (_le(body[:, 22:24]) >> np.uint64(4)).astype(np.int64)

    padded = d + b"\0\0"
    layout = hdr[:, 8].astype(np.int16) * 4 + hdr[:, 9]
    batches: list[CSIBatch] = []
    for key in np.unique(layout):
        rows = np.flatnonzero(layout == key)
        batches += _layout_batch(padded, starts[rows], hdr[rows], rows.astype(np.int64),
                                 time[rows], mac[rows], seq[rows], scaled)
    batches.sort(key=lambda b: int(b.packet_index[0]))
    return Capture(format=NAME, source=source, batches=group_by_layout(batches), bad=bad)
