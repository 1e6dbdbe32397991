"""Numbers out of ESP32 CSV text, many rows per numpy call.

The ESP32 line formats are plain decimal text. Parsing each value with ``int()``
costs ~100 ns; a 1600-row capture holds 200 000 values. Here the rows of one
shape are joined and parsed by one ``np.fromstring`` call, then checked to be
*canonical* (every token is the shortest decimal spelling of its value, one
separator between tokens, nothing else in the text). Canonical text parses to
exactly one token per separator, so each row's tokens can be assigned to it
without looking at the row again. Anything non-canonical returns None and the
caller falls back to its per-line parser, which decides what to accept: the fast
path never accepts a line the slow path would reject, and never reads a line
differently.

The per-token regexes used by the slow path live here too, so both paths agree
on what a number is.
"""

from __future__ import annotations

import re
import warnings
from itertools import repeat
from typing import Sequence

import numpy as np

INT_RE = re.compile(rb"[-+]?[0-9]+")
FLOAT_RE = re.compile(rb"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)")
MAC_RE = re.compile(rb"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}")

_INT_CHARS = b"0123456789-"
# canonical length of an integer token (digits + sign), for |v| < 10**10
_POW10 = np.array([10 ** k for k in range(1, 11)], dtype=np.int64)

_HEX = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"abcdef"):
    _HEX[_c] = 10 + _i
    _HEX[_c - 32] = 10 + _i


def _fromstring(text: bytes, dtype, sep: str) -> np.ndarray:
    with warnings.catch_warnings():
        # fromstring warns (and stops) at the first token it cannot read; the
        # count check below turns that into "not canonical".
        warnings.simplefilter("ignore", DeprecationWarning)
        return np.fromstring(text, dtype=dtype, sep=sep)


def _canonical_len(v: np.ndarray) -> np.ndarray:
    """Characters of the shortest decimal spelling of each integer (int64 in, |v| < 10**10)."""
    a = np.abs(v)
    return 1 + (v < 0) + np.searchsorted(_POW10, a, side="right")


# canonical length of every int16, indexed by the value's uint16 bit pattern
_LEN16 = _canonical_len(np.arange(65536, dtype=np.int64).astype(np.uint16).view(np.int16).astype(np.int64))
# the same, with every value of 4 or more digits weighted out of reach of any real text length
_LEN16_3 = np.where(np.abs(np.arange(65536).astype(np.uint16).view(np.int16).astype(np.int64)) >= 1000, 1 << 40,
                    _LEN16)


def parse_values(texts: Sequence[bytes], sep: bytes, *, terminated: bool,
                 max_digits: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Integer lists, one per text -> (int16 flat values, int64 counts per text), or None.

    ``terminated``: every token of a text is followed by ``sep`` (ESP32-CSI-Tool
    ``"1 2 3 "``); otherwise tokens are separated by ``sep`` (esp-csi
    ``"1,2,3"``). Returns None unless every token is canonical (``-?[1-9][0-9]*``
    or ``0``) with at most ``max_digits`` (1..4) digits.

    One ``np.fromstring`` over the joined texts, then the canonical check: the
    text must be exactly as long as the shortest spelling of the values it
    parsed to plus one separator each (any extra sign, zero, blank or merged
    token makes it longer), which a bincount over the int16 bit patterns gives
    without per-value temporaries.
    """
    n = len(texts)
    if n == 0:
        return np.zeros(0, np.int16), np.zeros(0, np.int64)
    joined = b"".join(texts) if terminated else sep.join(texts) + sep
    if joined.translate(None, _INT_CHARS + sep):
        return None
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=n)
    if terminated:
        if not lens.all():
            return None
    else:
        lens += 1  # the separator joined after each text
    ends = np.cumsum(lens)
    buf = np.frombuffer(joined, np.uint8)
    if terminated and np.any(buf[ends - 1] != sep[0]):
        return None  # a text not ending with the separator would run into the next one
    # canonical text has one separator per token: count them per text in one pass
    counts = np.add.reduceat((buf == sep[0]).view(np.uint8), ends - lens, dtype=np.int64)
    # int16 parsing wraps silently; a wrapped token is longer than its value's spelling,
    # which the length check catches as long as a 4-digit value cannot come from a
    # 5-digit token: so int16 only when values have at most 3 digits.
    if max_digits <= 3:
        values = _fromstring(joined, np.int16, sep.decode())
        if values.shape[0] != int(counts.sum()):
            return None
        # one histogram of the int16 bit patterns gives the spelled length (values of 4+
        # digits weigh "too long"), and the number of negative values
        hist = np.bincount(values.view(np.uint16), minlength=65536)
        total = int(hist @ _LEN16_3)
        negative = int(hist[32768:].sum())
    else:
        values = _fromstring(joined, np.int64, sep.decode())
        if values.shape[0] != int(counts.sum()):
            return None
        if values.size and max(-int(values.min()), int(values.max())) >= 10 ** max_digits:
            return None
        total = int(_canonical_len(values).sum())
        negative = int(np.count_nonzero(values < 0))
    if joined.count(b"-") != negative:
        return None  # np.fromstring reads a lone "-" as 0 (as long as "0": the length check misses it)
    if total + values.shape[0] != len(joined):
        return None
    return values.astype(np.int16, copy=False), counts


def parse_numeric_rows(texts: Sequence[bytes], n_cols: int, *, float_col: int | None = None,
                       max_digits: int = 10) -> np.ndarray | None:
    """Comma-terminated numeric rows (``"-54,30,0,...,128,"``) -> float64[row, col], or None.

    Every text holds exactly ``n_cols`` comma-terminated integers, except column
    ``float_col`` which must be a decimal with a point (``"0.285197"``). None
    unless every text is canonical (integers as in :func:`parse_values`; the
    float as ``-?digits.digits``, its integer part canonical).
    """
    n = len(texts)
    if n == 0:
        return np.zeros((0, n_cols))
    joined = b"".join(texts)
    if joined.translate(None, b"0123456789-.,"):
        return None
    buf = np.frombuffer(joined, np.uint8)
    commas = np.flatnonzero(buf == 44)
    if commas.shape[0] != n * n_cols:
        return None
    row_end = commas[n_cols - 1::n_cols]
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=n)
    if not np.array_equal(row_end + 1, np.cumsum(lens)):
        return None  # a text with a different number of columns or not comma-terminated
    if float_col is None:
        if b"." in joined:
            return None
        values = _fromstring(joined, np.int64, ",")
        if values.shape[0] != n * n_cols:
            return None
        if joined.count(b"-") != int(np.count_nonzero(values < 0)):
            return None  # a lone "-" reads as 0
        if values.size and int(np.abs(values).max()) >= 10 ** max_digits:
            return None
        if int(_canonical_len(values).sum()) + values.shape[0] != len(joined):
            return None
        return values.reshape(n, n_cols).astype(np.float64)
    dots = np.flatnonzero(buf == 46)
    if dots.shape[0] != n:
        return None
    field = np.searchsorted(commas, dots)  # index of the field holding each dot
    if not np.array_equal(field, np.arange(n) * n_cols + float_col):
        return None
    frac_width = commas[field] - dots - 1
    if np.any(frac_width < 1) or np.any(frac_width > 9):
        return None
    ints = _fromstring(joined.replace(b".", b","), np.int64, ",")
    if ints.shape[0] != n * (n_cols + 1):
        return None
    if ints.size and int(np.abs(ints).max()) >= 10 ** max_digits:
        return None
    table = ints.reshape(n, n_cols + 1)
    frac = table[:, float_col + 1]
    if np.any(frac < 0):
        return None
    if joined.count(b"-") != int(np.count_nonzero(ints < 0)):
        return None  # a lone "-" reads as 0
    expected = _canonical_len(table).sum() - _canonical_len(frac).sum() + frac_width.sum() + n * (n_cols + 1)
    if int(expected) != len(joined):
        return None
    whole = table[:, float_col]
    # the sign of "-0.5" lives in the text only; a negative zero whole part is not canonical
    # (its "-0" is longer than "0"), so the length check above already sent it to the slow path.
    # One correctly rounded division of exact integers = what float(text) gives.
    scale = 10 ** frac_width
    if np.any(np.abs(whole) >= (1 << 53) // scale):
        return None
    value = (whole * scale + np.where(whole < 0, -frac, frac)) / scale.astype(np.float64)
    out = np.delete(table, float_col + 1, axis=1).astype(np.float64)
    out[:, float_col] = value
    return out


_MAC_DIGITS = np.delete(np.arange(17), np.s_[2::3])  # positions of the 12 hex digits in "aa:bb:cc:dd:ee:ff"


def _macs(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8[row, 17] MAC texts -> (uint64 MACs, bool ok); rows not exactly ``aa:bb:cc:dd:ee:ff`` are 0, not ok."""
    digits = _HEX[raw[:, _MAC_DIGITS]]  # [row, 12], 255 = not a hex digit
    ok = np.all(raw[:, 2::3] == 58, axis=1) & np.all(digits != 255, axis=1)
    # six bytes, big-endian in the last six of eight: one uint64 view per row
    packed = np.zeros((raw.shape[0], 8), dtype=np.uint8)
    packed[:, 2:] = digits[:, 0::2] * 16 + digits[:, 1::2]
    packed[~ok] = 0
    return packed.view(">u8").ravel().astype(np.uint64), ok


def parse_macs(texts: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """``aa:bb:cc:dd:ee:ff`` texts -> (uint64 MACs, bool ok); rows not in that exact form are not ok."""
    n = len(texts)
    ok = np.fromiter(map(len, texts), dtype=np.int64, count=n) == 17
    out = np.zeros(n, dtype=np.uint64)
    if not ok.any():
        return out, ok
    good = texts if ok.all() else [t for t, k in zip(texts, ok.tolist()) if k]
    value, row_ok = _macs(np.frombuffer(b"".join(good), np.uint8).reshape(len(good), 17))
    idx = np.flatnonzero(ok)
    out[idx] = value
    ok[idx] = row_ok
    return out, ok


def macs_at(buf: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 17-byte MAC texts starting at offsets ``at`` of ``buf`` -> (uint64 MACs, bool ok), as :func:`parse_macs`.

    Every ``at + 17`` must be within ``buf``.
    """
    return _macs(buf[at[:, None] + np.arange(17)])


# ---------------------------------------------------------------- integer lists in place
#
# An ESP32 line prints its CSI as a list of small integers ("38 96 2 0 ..." or
# "38,96,2,0"). np.fromstring reads them at ~13 ns each and still needs a
# canonical check afterwards. Here every token is read in place instead: the
# 4 bytes before each separator are gathered as one uint32, two lookups turn its
# byte pairs into character classes (digit 0-9, '-', other), and one table
# indexed by (distance to the previous separator, classes) gives the value or
# "not a canonical token". Tokens longer than 4 characters ("1000", "-1000") are
# not canonical here: the callers expect int8 values and send such rows to their
# per-line parser.

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


def ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """lo[0]..hi[0]-1, lo[1]..hi[1]-1, ... as one index array (hi >= lo)."""
    if lo.shape[0] and np.array_equal(lo[1:], hi[:-1]):  # back to back: one range
        return np.arange(lo[0], hi[-1])
    counts = hi - lo
    out_start = np.cumsum(counts) - counts
    return np.arange(int(counts.sum())) + np.repeat(lo - out_start, counts)


BLOCK_BYTES = 1 << 17


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
    # A block of text at a time: the temporaries then stay small enough to be
    # reused from one block to the next (a fresh large array costs a page fault
    # per 4 KiB, which on a loaded machine can be most of the time).
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


def parse_value_list(text: bytes, sep: bytes | None) -> tuple[np.ndarray | None, int, bytes]:
    """One line's values (``sep`` None: any whitespace) -> (int64 values, -1, b"") or
    (None, index, token) naming the first token that is not an integer.

    Canonical text goes through :func:`parse_values`; anything else token by token
    with :data:`INT_RE`, which also accepts ``+7`` and ``007``.
    """
    if sep is None:
        if text.endswith(b" "):
            got = parse_values([text], b" ", terminated=True, max_digits=4)
            if got is not None:
                return got[0].astype(np.int64), -1, b""
        tokens = text.split()
    else:
        got = parse_values([text], sep, terminated=False, max_digits=4) if text else None
        if got is not None:
            return got[0].astype(np.int64), -1, b""
        tokens = [t.strip() for t in text.split(sep)] if text.strip() else []
    values = []
    for k, tok in enumerate(tokens):
        if not INT_RE.fullmatch(tok):
            return None, k, tok
        values.append(int(tok))
    if values and max(-min(values), max(values)) > 32767:
        return None, -2, b""
    return np.array(values, dtype=np.int64), -1, b""


def parse_mac(text: bytes) -> int | None:
    """One MAC in the strict ``aa:bb:cc:dd:ee:ff`` form (either case), or None."""
    if not MAC_RE.fullmatch(text):
        return None
    return int(text.replace(b":", b""), 16)


def parse_int(text: bytes) -> int | None:
    return int(text) if INT_RE.fullmatch(text) else None


def parse_float(text: bytes) -> float | None:
    return float(text) if FLOAT_RE.fullmatch(text) else None



CSI_TAG = b"CSI_DATA"
_FAST_PREFIX = CSI_TAG + b","


def split_lines(data: bytes, header_prefixes: tuple[bytes, ...]) -> tuple[list[bytes], list[int], list[int], list[int]]:
    """Sort the lines of an ESP32 text capture.

    Returns (lines, fast, other, junk): ``lines = data.split(b"\n")`` and three
    lists of 1-based line numbers. Fast lines start with ``CSI_DATA,`` exactly;
    "other" lines carry the tag somewhere else (junk before it, leading blanks)
    and go to the per-line parser; junk lines carry no tag. Blank lines and
    header rows are in none of the lists.
    """
    if b"\n" not in data and b"\r" in data:  # classic-Mac line ends (some serial terminals save them)
        data = data.replace(b"\r", b"\n")
    lines = data.split(b"\n")
    is_csi = np.fromiter(map(bytes.startswith, lines, repeat(b"CSI_DATA,")), dtype=bool, count=len(lines))
    fast = (np.flatnonzero(is_csi) + 1).tolist()
    other: list[int] = []
    junk: list[int] = []
    if len(fast) != len(lines):
        is_fast = set(fast)
        for i, line in enumerate(lines, 1):
            if i in is_fast:
                continue
            stripped = line.strip(b" \t\r\n\x00")
            if not stripped or stripped.startswith(header_prefixes):
                continue
            (other if CSI_TAG in line else junk).append(i)
    return lines, fast, other, junk


SCAN_BYTES = 1 << 20


def positions(buf: np.ndarray, chars: bytes) -> list[np.ndarray]:
    """Offsets of every occurrence of each byte of ``chars`` in ``buf``, one int64 array per byte.

    One pass over the text for all of them, a megabyte at a time (a whole-text
    boolean temporary of a large capture would cost a page fault per 4 KiB).
    """
    found: list[list[np.ndarray]] = [[] for _ in chars]
    for lo in range(0, buf.shape[0], SCAN_BYTES):
        chunk = buf[lo:lo + SCAN_BYTES]
        hit = chunk == chars[0]
        for c in chars[1:]:
            hit |= chunk == c
        at = np.flatnonzero(hit)
        if len(chars) == 1:
            found[0].append(at + lo)
            continue
        which = chunk[at]
        for k, c in enumerate(chars):
            found[k].append(at[which == c] + lo)
    return [np.concatenate(f) if f else np.zeros(0, np.int64) for f in found]


def next_at(found: np.ndarray, at: np.ndarray, none: int) -> np.ndarray:
    """The first of the sorted offsets ``found`` at or after each ``at`` (``none`` where there is none)."""
    return np.append(found, none)[np.searchsorted(found, at)]


class TextLines:
    """A text capture cut into lines by byte offsets (no copy of each line).

    Line ``no`` (1-based) is ``data[start[no - 1]:end[no - 1]]``, the same lines
    as ``data.split(b"\n")``; a capture with classic-Mac ``\r`` line ends only
    (some serial terminals save them) is read as if they were ``\n``.
    """

    def __init__(self, data: bytes) -> None:
        if b"\n" not in data and b"\r" in data:
            data = data.replace(b"\r", b"\n")
        self.data = data
        self.buf = np.frombuffer(data, np.uint8)
        newline, = positions(self.buf, b"\n")
        self.start = np.concatenate([[0], newline + 1])
        self.end = np.concatenate([newline, [len(data)]])

    def __len__(self) -> int:
        return int(self.start.shape[0])

    def line(self, no: int) -> bytes:
        return self.data[self.start[no - 1]:self.end[no - 1]]

    def sort(self, header_prefixes: tuple[bytes, ...]) -> tuple[np.ndarray, list[int], list[int]]:
        """(fast, other, junk) 1-based line numbers, as :func:`split_lines`."""
        long = np.flatnonzero(self.end - self.start >= len(_FAST_PREFIX))
        head = self.buf[self.start[long][:, None] + np.arange(len(_FAST_PREFIX))]
        fast = long[(head == np.frombuffer(_FAST_PREFIX, np.uint8)).all(axis=1)] + 1
        other: list[int] = []
        junk: list[int] = []
        if fast.shape[0] != len(self):
            is_fast = np.zeros(len(self) + 1, dtype=bool)
            is_fast[fast] = True
            for i in np.flatnonzero(~is_fast[1:]).tolist():
                line = self.line(i + 1)
                stripped = line.strip(b" \t\r\n\x00")
                if not stripped or stripped.startswith(header_prefixes):
                    continue
                (other if CSI_TAG in line else junk).append(i + 1)
        return fast, other, junk
