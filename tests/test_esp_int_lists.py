"""ESP32 value lists read in place (esp_int_lists) against the per-line token parser.

The in-place reader accepts a list exactly when it is the shortest spelling of
what ``esp_text.parse_value_list`` (the per-line parser) reads, with at most 3
digits per value, and then reads the same values; every other list goes to the
per-line parser, which decides.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edgecsi.firmware_bridge.formats import esp_int_lists, esp_lines, esp_text

ODD_TOKENS = [b"0", b"-0", b"00", b"007", b"-007", b"+1", b"-", b"", b"1-", b"--1", b"1000", b"-1000", b"999",
              b"-999", b"x", b"1 ", b"\r", b"1.5", b"12a", b"]", b","]

token = st.one_of(st.integers(-128, 127).map(lambda v: str(v).encode()), st.sampled_from(ODD_TOKENS))
line = st.lists(token, max_size=8)


def _text(lists: list[list[bytes]], tool: bool) -> tuple[bytes, np.ndarray, np.ndarray, list[bytes]]:
    """A capture of lines holding the lists -> (text, begin, end, the list texts as the per-line parser sees them)."""
    text, begin, end, bodies = b"", [], [], []
    for tokens in lists:
        body = b"".join(t + b" " for t in tokens) if tool else b",".join(tokens)
        text += b"CSI_DATA,1,2,[" if tool else b'CSI_DATA,1,2,"['
        begin.append(len(text))
        text += body
        end.append(len(text) + (0 if tool else 1))  # esp-csi: the closing ']' ends the last token
        text += b"]\n" if tool else b']"\n'
        bodies.append(body)
    return text, np.array(begin, np.int64), np.array(end, np.int64), bodies


@settings(max_examples=300, deadline=None)
@given(lists=st.lists(line, min_size=1, max_size=6), tool=st.booleans())
def test_in_place_reading_agrees_with_the_token_parser(lists, tool):
    text, begin, end, bodies = _text(lists, tool)
    buf = np.frombuffer(text, np.uint8)
    values, counts, ok = esp_int_lists.parse_int_lists(text, buf, begin, end, b" " if tool else b",]")
    first = np.cumsum(counts) - counts
    for k, body in enumerate(bodies):
        want, _, _ = esp_text.parse_value_list(body, None if tool else b",")
        # accepted exactly when the text is the shortest spelling of what the token parser reads
        spelled = None if want is None else (b"".join(b"%d " % v for v in want) if tool else
                                             b",".join(b"%d" % v for v in want))
        canonical = spelled == body and len(want) > 0 and np.abs(want).max() < 1000
        assert bool(ok[k]) == canonical, body
        if ok[k]:
            np.testing.assert_array_equal(values[first[k]:first[k] + counts[k]], want, err_msg=repr(body))


def test_blocks_and_stray_separators_between_lists():
    """Lists spread over several text blocks, with separators outside the lists (header columns, junk)."""
    rng = np.random.default_rng(7)
    parts, want = [], []
    for k in range(3000):
        vals = rng.integers(-128, 128, 128)
        want.append(vals)
        parts.append(b"junk with spaces, and commas\n" if k % 7 == 0 else b"")
        parts.append(b"CSI_DATA,PASSIVE,a b,[" + b"".join(b"%d " % v for v in vals) + b"]\n")
    text = b"".join(parts)
    assert len(text) > 4 * esp_lines.BLOCK_BYTES
    buf = np.frombuffer(text, np.uint8)
    opens, closes = esp_lines.positions(buf, b"[]")
    values, counts, ok = esp_int_lists.parse_int_lists(text, buf, opens + 1, closes, b" ")
    assert ok.all() and (counts == 128).all()
    np.testing.assert_array_equal(values, np.concatenate(want))
