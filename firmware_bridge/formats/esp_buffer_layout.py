"""Where each subcarrier sits in an ESP32 CSI buffer (csi-formats spec 1.3 and 2.4).

The ESP32 driver fills ``wifi_csi_info_t.buf`` with up to three long training
fields one after the other: L-LTF, HT-LTF, STBC-HT-LTF, each an array of
(imag, real) int8 pairs. Which fields are present and in which subcarrier order
depends on the secondary channel, the packet type (sig_mode), the channel width
(cwb), STBC and which LTFs the firmware enabled; ``len`` (bytes) tells them
apart. This module turns those selector fields into index maps onto natural
subcarrier grids; it knows nothing about text.

Grids:

- L-LTF, and HT20 HT-LTFs: the 20 MHz channel the packet was received on,
  natural order -32..31. With a secondary channel the chip reports the primary
  half of the 40 MHz grid (below: grid 0..63, above: grid -64..-1), which is the
  same local -32..31.
- HT40 HT-LTFs: the 40 MHz grid, natural order -64..63.

Entries the layout does not report (HT20 STBC lists 62 or 63 entries, HT40 STBC
121) are filled with 0 and flagged invalid so every packet of one kind shares one
grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from edgecsi.firmware_bridge import ofdm

LLTF, HTLTF, STBC_HTLTF = 0, 1, 2
#: Names accepted for the ``ltf=`` reader option, as LTF codes.
LTF_NAMES = {"lltf": LLTF, "htltf": HTLTF, "stbc-htltf": STBC_HTLTF}
#: ``ltf`` extra column value for a buffer kept in raw entry order.
RAW = -1

SECONDARY_NONE, SECONDARY_ABOVE, SECONDARY_BELOW = 0, 1, 2


def _span(lo: int, hi: int) -> list[int]:
    return list(range(lo, hi + 1))


# Subcarrier index of each buffer entry, per LTF (spec 2.4 table). "local" = the
# 20 MHz channel's own index (-32..31); HT40 entries are 40 MHz grid indices.
_FFT64 = _span(0, 31) + _span(-32, -1)
_FFT128 = _span(0, 63) + _span(-64, -1)
_HT40_STBC = _span(0, 60) + _span(-60, -1)
_LOCAL64 = _span(-32, 31)  # below: grid 0..63 -> local -32..31; above: grid -64..-1 -> local -32..31


def _ltf_table(secondary: int, ht: bool, cwb: int, stbc: bool) -> list[tuple[int, list[int], int]] | None:
    """[(ltf code, subcarrier of each entry, grid bandwidth MHz)] for a full buffer, or None."""
    if secondary == SECONDARY_NONE:
        lltf = _FFT64
    elif secondary in (SECONDARY_ABOVE, SECONDARY_BELOW):
        lltf = _LOCAL64
    else:
        return None
    out = [(LLTF, lltf, 20)]
    if not ht:
        return out
    if cwb == 0:
        if secondary == SECONDARY_NONE:
            ht_sc = _FFT64
            stbc_sc = _FFT64
        elif secondary == SECONDARY_BELOW:
            ht_sc = _LOCAL64
            stbc_sc = _span(-32, 30)  # grid 0..62
        else:
            ht_sc = _LOCAL64
            stbc_sc = _span(-30, 31)  # grid -62..-1
        out.append((HTLTF, stbc_sc if stbc else ht_sc, 20))
        if stbc:
            out.append((STBC_HTLTF, stbc_sc, 20))
        return out
    if cwb == 1 and secondary != SECONDARY_NONE:
        sc = _HT40_STBC if stbc else _FFT128
        out.append((HTLTF, sc, 40))
        if stbc:
            out.append((STBC_HTLTF, sc, 40))
        return out
    return None


@dataclass(frozen=True)
class Mapping:
    """How to turn one kind of buffer into ``csi[..., subcarrier]``.

    ``gather[j]`` is the buffer entry (complex pair index) that holds
    ``subcarriers[j]``, or ``n_entries`` for a bin the buffer does not report
    (the caller appends a zero column there). ``invalid`` marks nulls, guards
    and unreported bins; ``first_word`` lists the output positions of buffer
    entries 0 and 1 (the ESP32 first-word garbage) when they land in the output.
    """

    subcarriers: np.ndarray  # int16[subcarrier]
    gather: np.ndarray  # intp[subcarrier]
    invalid: np.ndarray  # bool[subcarrier]
    first_word: np.ndarray  # intp[<=2]
    bandwidth_mhz: int  # grid bandwidth; -1 unknown (raw)
    ltf: int  # LLTF / HTLTF / STBC_HTLTF, or RAW
    known: bool


def _round4(n_bytes: int) -> int:
    return (n_bytes + 3) // 4 * 4


def _grid(entries: list[int], start: int, bandwidth: int, code: int, n_entries: int) -> Mapping:
    nfft = ofdm.NFFT_BY_BW[bandwidth]
    subcarriers = ofdm.natural_indices(nfft)
    gather = np.full(nfft, n_entries, dtype=np.intp)
    pos = np.asarray(entries, dtype=np.intp) + nfft // 2
    gather[pos] = start + np.arange(len(entries), dtype=np.intp)
    invalid = ofdm.null_mask(subcarriers, bandwidth, legacy=code == LLTF) | (gather == n_entries)
    first_word = np.flatnonzero((gather == 0) | (gather == 1)) if start == 0 else np.zeros(0, np.intp)
    # keep the first-word positions in buffer-entry order (entry 0, then entry 1)
    first_word = first_word[np.argsort(gather[first_word])]
    return Mapping(subcarriers, gather, invalid, first_word.astype(np.intp), bandwidth, code, True)


def raw_mapping(n_entries: int, bandwidth_mhz: int = -1) -> Mapping:
    """A buffer of unknown layout: entries in buffer order, indexed 0..n-1, nothing masked."""
    return Mapping(np.arange(n_entries, dtype=np.int16), np.arange(n_entries, dtype=np.intp),
                   np.zeros(n_entries, dtype=bool), np.arange(min(n_entries, 2), dtype=np.intp),
                   bandwidth_mhz, RAW, False)


@lru_cache(maxsize=512)
def classic_mapping(n_entries: int, n_bytes: int, secondary: int, sig_mode: int, cwb: int, stbc: int,
                    want: int = LLTF, lltf_only_print: bool = False) -> Mapping:
    """The mapping for one classic-chip buffer (ESP32, -S2, -S3, -C3).

    ``n_entries`` pairs were printed; ``n_bytes`` is the driver's ``len``.
    ``lltf_only_print``: the printer emitted only the first 128 bytes (the
    ESP32-CSI-Tool LLTF-only default), so ``n_bytes`` describes a longer buffer
    than what was printed. ``want`` is the LTF to return; a buffer without it
    gives the next earlier one (STBC-HT-LTF -> HT-LTF -> L-LTF). A buffer that
    matches no row of the layout table comes back raw (``known`` False).
    """
    bw_hint = 40 if cwb == 1 else (20 if cwb == 0 else -1)
    if sig_mode not in (0, 1) or cwb not in (0, 1):
        table = None
    else:
        table = _ltf_table(secondary, sig_mode == 1, cwb, stbc != 0)
    if table is None:
        # A 128-byte L-LTF is the same whatever the packet: every ESP32 firmware
        # enables the L-LTF, so only the other LTFs depend on the selector fields.
        if n_entries == 64 and (lltf_only_print or n_bytes == 128) and secondary in (0, 1, 2):
            table = [(LLTF, _FFT64 if secondary == 0 else _LOCAL64, 20)]
        else:
            return raw_mapping(n_entries, bw_hint)
    if lltf_only_print:
        if n_entries != 64:
            return raw_mapping(n_entries, bw_hint)
        present = table[:1]
    else:
        # The buffer holds a prefix of the table (LTFs the firmware disabled are left
        # out), padded to 4 bytes.
        present = None
        total = 0
        for k, (_, entries, _) in enumerate(table):
            total += 2 * len(entries)
            if n_entries * 2 == n_bytes and _round4(total) == n_bytes:
                present = table[:k + 1]
                break
        if present is None:
            return raw_mapping(n_entries, bw_hint)
    starts = np.cumsum([0] + [len(e) for _, e, _ in present])
    pick = max(k for k, (code, _, _) in enumerate(present) if code <= want)
    code, entries, bandwidth = present[pick]
    return _grid(entries, int(starts[pick]), bandwidth, code, n_entries)
