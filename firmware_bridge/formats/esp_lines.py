"""Where things are in an ESP32 text capture: lines and bytes by offset, found a block at a time.

The format readers never cut a capture into one bytes object per line: a
1600-line capture would cost 1600 Python objects and as many calls per column.
Lines are offset pairs into the whole text (:class:`TextLines`), and the
brackets and commas of every line are found by one numpy pass over the text
(:func:`positions`), whose offsets then give each line's columns.
"""

from __future__ import annotations

import numpy as np

from edgecsi.firmware_bridge.formats.esp_text import CSI_TAG

_FAST_PREFIX = CSI_TAG + b","

#: Text is scanned this much at a time: the temporaries of one block then fit in
#: the cache and are reused by the next block, where whole-text temporaries would
#: be fresh memory each time (a page fault per 4 KiB, on a loaded machine most of
#: the time). Measured best among 16..1024 KiB.
BLOCK_BYTES = 1 << 17


def ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """lo[0]..hi[0]-1, lo[1]..hi[1]-1, ... as one index array (hi >= lo)."""
    if lo.shape[0] and np.array_equal(lo[1:], hi[:-1]):  # back to back: one range
        return np.arange(lo[0], hi[-1])
    counts = hi - lo
    out_start = np.cumsum(counts) - counts
    return np.arange(int(counts.sum())) + np.repeat(lo - out_start, counts)


def positions(buf: np.ndarray, chars: bytes) -> list[np.ndarray]:
    """Offsets of every occurrence of each byte of ``chars`` in ``buf``, one int64 array per byte.

    One pass over the text for all of them, a block at a time (see BLOCK_BYTES).
    """
    found: list[list[np.ndarray]] = [[] for _ in chars]
    for lo in range(0, buf.shape[0], BLOCK_BYTES):
        chunk = buf[lo:lo + BLOCK_BYTES]
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

    def __init__(self, data: bytes, marks: bytes = b"") -> None:
        """``marks``: bytes whose offsets the reader needs too (``self.marks``, one
        array per byte), found in the same pass as the line ends."""
        if b"\n" not in data and b"\r" in data:
            data = data.replace(b"\r", b"\n")
        self.data = data
        self.buf = np.frombuffer(data, np.uint8)
        newline, *self.marks = positions(self.buf, b"\n" + marks)
        self.start = np.concatenate([[0], newline + 1])
        self.end = np.concatenate([newline, [len(data)]])

    def __len__(self) -> int:
        return int(self.start.shape[0])

    def line(self, no: int) -> bytes:
        return self.data[self.start[no - 1]:self.end[no - 1]]

    def sort(self, header_prefixes: tuple[bytes, ...]) -> tuple[np.ndarray, list[int], list[int]]:
        """Sort the lines: (fast, other, junk) 1-based line numbers.

        Fast lines start with ``CSI_DATA,`` exactly; "other" lines carry the tag
        somewhere else (junk before it, leading blanks) and go to the per-line
        parser; junk lines carry no tag. Blank lines and header rows (starting
        with one of ``header_prefixes``) are in none of them.
        """
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
