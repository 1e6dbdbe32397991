"""Round CSI to the numbers a chip can store (so a written file reads back exactly)."""

from __future__ import annotations

import numpy as np

INT8_MAX = 127
INT14_MAX = 8191
FLOAT12E6_MANTISSA = 2047  # 12-bit sign-magnitude mantissa: 11 magnitude bits
FLOAT12E6_EXP = (-32, 31)  # 6-bit two's-complement exponent shared by I and Q


def _round_int(x: np.ndarray, limit: int) -> np.ndarray:
    re = np.clip(np.round(x.real), -limit - 1, limit)
    im = np.clip(np.round(x.imag), -limit - 1, limit)
    return re + 1j * im


def _round_float12e6(x: np.ndarray) -> np.ndarray:
    """bcm4366c0 packed float: per value one exponent e, I and Q = integer mantissa * 2^e."""
    big = np.maximum(np.abs(x.real), np.abs(x.imag))
    with np.errstate(divide="ignore"):
        e = np.ceil(np.log2(np.where(big > 0, big, 1.0) / FLOAT12E6_MANTISSA))
    e = np.clip(e, *FLOAT12E6_EXP)
    scale = np.exp2(e)
    re = np.clip(np.round(x.real / scale), -FLOAT12E6_MANTISSA, FLOAT12E6_MANTISSA)
    im = np.clip(np.round(x.imag / scale), -FLOAT12E6_MANTISSA, FLOAT12E6_MANTISSA)
    return (re + 1j * im) * scale


def quantize(x: np.ndarray, value_kind: str) -> np.ndarray:
    """complex array -> complex64 array of values the chip's format represents exactly."""
    if value_kind == "int8":
        q = _round_int(x, INT8_MAX)
    elif value_kind == "int14":
        q = _round_int(x, INT14_MAX)
    elif value_kind == "float12e6":
        q = _round_float12e6(x)
    else:
        raise ValueError(f"unknown value kind {value_kind!r}")
    return q.astype(np.complex64)
