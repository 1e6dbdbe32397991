"""ESP32 CSI value lists read in place: ``"38 96 2 0 "`` / ``"38,96,2,0]"`` -> int16, many lines per numpy call.

An ESP32 line prints its CSI as a list of small integers. np.fromstring reads
them at ~13 ns each and still needs a canonical check afterwards (see
``esp_text``). Here every token is read where it lies in the text: the 4 bytes
before each separator are gathered as one uint32, two lookups turn its byte
pairs into character classes (digit 0-9, '-', other), and one table indexed by
(distance to the previous separator, classes) gives the value or "not a
canonical token". A token is canonical when it is the shortest spelling of its
value (``0`` or ``-?[1-9][0-9]{0,2}``), so a line whose tokens all are reads
exactly as the per-line parser reads it. Tokens longer than 4 characters
("1000", "-1000") are not canonical here: the callers expect int8 values and
send such lines to their per-line parser, which decides what they are.
"""

from __future__ import annotations

import numpy as np

from edgecsi.firmware_bridge.formats.esp_lines import BLOCK_BYTES, ranges

_OTHER = 11  # character class of anything that is neither a digit nor '-'
_CLASS = np.full(256, _OTHER, dtype=np.int64)
_CLASS[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_CLASS[ord("-")] = 10
_pairs = np.arange(1 << 16)
# classes of a little-endian byte pair (first character in the low byte), for the two halves of a window
_PAIR_LOW = (_CLASS[_pairs & 0xFF] * 12 + _CLASS[_pairs >> 8]).astype(np.uint16)
_PAIR_HIGH = (_PAIR_LOW * 144).astype(np.uint16)
del _pairs
_WINDOWS = 12 ** 4
_MAX_GAP = 6  # distance between separators is the token length + 1; 6 stands for "6 or more"
NOT_A_TOKEN = -32768


def _token_table() -> np.ndarray:
    """int16[gap * 12**4 + window classes]: the value of the window's last ``gap - 1``
    characters when they spell a canonical integer (``0`` or ``-?[1-9][0-9]{0,2}``)."""
    table = np.full((_MAX_GAP + 1, _WINDOWS), NOT_A_TOKEN, dtype=np.int16)
    for value in range(-999, 1000):
        text = str(value).encode()
        n = len(text)
        key = 0
        for ch in text:
            key = key * 12 + int(_CLASS[ch])
        # whatever precedes the token in the window (the separator, the previous token) is ignored
        table[n + 1].reshape(12 ** (4 - n), 12 ** n)[:, key] = value
    return table.ravel()


_TOKEN_VALUE = _token_table()


def parse_int_lists(data: bytes, buf: np.ndarray, begin: np.ndarray, end: np.ndarray,
                    seps: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer lists ``data[begin[r]:end[r]]`` -> (int16 values, int64 counts, bool ok), one count and ok per list.

    Every token of a list is followed by one byte of ``seps``; the list's last
    byte is the last token's separator (ESP32-CSI-Tool ``"1 2 3 "`` with ``b" "``,
    esp-csi ``"1,2,3]"`` with ``b",]"``). A list is ok when every token is canonical
    (``0`` or ``-?[1-9][0-9]{0,2}``). ``values`` holds every list's tokens back to
    back (garbage in lists that are not ok), ``counts`` how many each has.
    ``buf`` is ``data`` as uint8; lists are in text order and start at offset 4 or later.
    """
    n = begin.shape[0]
    if n == 0:
        return np.zeros(0, np.int16), np.zeros(0, np.int64), np.zeros(0, dtype=bool)
    # a block of text at a time (see BLOCK_BYTES)
    cuts = np.searchsorted(begin, begin[0] + BLOCK_BYTES * np.arange(1, (end[-1] - begin[0]) // BLOCK_BYTES + 1))
    bounds = sorted({0, n, *cuts.tolist()})
    parts = [_int_lists(data, buf, begin[i:j], end[i:j], seps) for i, j in zip(bounds, bounds[1:])]
    values, counts, ok = zip(*parts)
    return np.concatenate(values), np.concatenate(counts), np.concatenate(ok)


def _int_lists(data: bytes, buf: np.ndarray, begin: np.ndarray, end: np.ndarray,
               seps: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    origin = int(begin[0])  # positions below count from here
    if origin < 4:
        return np.zeros(0, np.int16), np.zeros(begin.shape[0], np.int64), np.zeros(begin.shape[0], dtype=bool)
    ok = begin < end
    text = buf[origin:int(end.max())]
    is_sep = text == seps[0]
    for more in seps[1:]:
        is_sep |= text == more
    at = np.flatnonzero(is_sep)
    begin = begin - origin
    end = end - origin
    lo = np.searchsorted(at, begin)
    hi = np.maximum(np.searchsorted(at, end), lo)
    counts = hi - lo
    ok &= counts > 0
    ok[ok] = at[hi[ok] - 1] == end[ok] - 1  # the list ends with its last token's separator
    first = np.cumsum(counts) - counts
    token_end = at[lo[0]:hi[-1]] if np.array_equal(lo[1:], hi[:-1]) else at[ranges(lo, hi)]
    index = np.empty(token_end.shape[0], dtype=np.intp)  # first the gap to the previous separator: length + 1
    np.subtract(token_end[1:], token_end[:-1], out=index[1:])
    nonempty = counts > 0
    index[first[nonempty]] = token_end[first[nonempty]] - (begin[nonempty] - 1)
    np.minimum(index, _MAX_GAP, out=index)
    index *= _WINDOWS
    # window[p]: the 4 bytes before position p, as one little-endian uint32
    window = np.ndarray((text.shape[0],), "<u4", buffer=data, offset=origin - 4, strides=(1,))
    x = window.take(token_end)  # (copies the block's unaligned view once: faster than indexing it)
    index += _PAIR_HIGH.take(x & 0xFFFF)
    index += _PAIR_LOW.take(x >> 16)
    values = _TOKEN_VALUE.take(index)
    bad = np.flatnonzero(values == NOT_A_TOKEN)
    if bad.size:
        ok[np.searchsorted(first, bad, side="right") - 1] = False
    return values, counts, ok
