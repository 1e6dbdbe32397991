"""Numbers out of ESP32 CSV text: header columns and MACs of many lines per numpy call, and single tokens.

The ESP32 line formats are plain decimal text. Parsing each value with ``int()``
costs ~100 ns. Here the columns of many lines are joined and parsed by one
``np.fromstring`` call, then checked to be *canonical* (every token is the
shortest decimal spelling of its value, one separator between tokens, nothing
else in the text). Canonical text parses to exactly one token per separator, so
each row's tokens can be assigned to it without looking at the row again.
Anything non-canonical returns None and the caller falls back to its per-line
parser, which decides what to accept: the fast path never accepts a line the
slow path would reject, and never reads a line differently. (The CSI value
lists themselves, most of the text, are read in place by ``esp_int_lists``.)

The per-token regexes used by the slow path live here too, so both paths agree
on what a number is.
"""

from __future__ import annotations

import re
import warnings
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


def _leading_zero(buf: np.ndarray) -> bool:
    """True when a token of comma-separated integer text starts with a 0 followed by a digit ("007", "-01").

    For text that np.fromstring read as one integer per token (so each token is
    ``-?[0-9]+``) and whose '-' count equals its negative values (so no "-0"),
    this is the one way left to spell a value longer than its shortest spelling.
    """
    zero_then_digit = (buf[:-1] == 48) & ((buf[1:] - 48) < 10)  # uint8 wraps: below '0' is large
    token_start = np.empty_like(zero_then_digit)
    token_start[:1] = True
    token_start[1:] = (buf[:-2] == 44) | (buf[:-2] == 45)  # after ',' or after the sign
    return bool((zero_then_digit & token_start).any())


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
        if _leading_zero(buf):
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
        return None  # a lone "-" reads as 0; so does "-0", and the whole part of "-0.5"
    if _leading_zero(buf):
        return None  # (the fraction after "." may start with zeros)
    whole = table[:, float_col]
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


def macs_at(buf: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 17-byte ``aa:bb:cc:dd:ee:ff`` texts (either case) starting at offsets ``at`` of ``buf``
    -> (uint64 MACs, bool ok); a text not in exactly that form is 0, not ok.

    Every ``at + 17`` must be within ``buf``.
    """
    return _macs(buf[at[:, None] + np.arange(17)])


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
