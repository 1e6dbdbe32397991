"""ESP32-CSI-Tool (StevenMHernandez) serial / SD-card lines (csi-formats spec 1).

One packet per line::

    CSI_DATA,PASSIVE,11:22:33:44:55:66,-54,30,0,0,0,0,0,0,0,0,0,-98,0,8,0,14670,0,38,0,0,0.206678,128,[38 96 2 0 ... ]

Accepted variants (all firmware generations): with or without the
``real_time_set,real_timestamp`` columns (before 2019-07-10), with or without
brackets around the values (before 2019-07-11), an optional header row, ``\\r\\n``
endings, an optional trailing ``,<unix time>`` column (``serial_append_time.py``),
boot-log lines and cut lines anywhere (counted in ``Capture.bad``, never fatal).

Values and layout:

- Pairs are (imag, real): ``csi = v[2i+1] + 1j*v[2i]`` (Espressif docs; the
  tool's own parse_csi.py; csiread). CSIKit reads them swapped (spec 7.1).
- ``len`` is the driver buffer size, not the number of printed values: with the
  tool's default ``CONFIG_SHOULD_COLLECT_ONLY_LLTF`` only the first 128 values
  (the L-LTF) are printed whatever ``len`` says. A row prints either 128 values
  or ``len`` values; anything else (the 127-value row in CSIKit's
  example_100hz_pitraffic.csv) is a bad line (reason ``value_count``).
- Which CSI becomes ``csi``: by default the L-LTF of every packet, mapped to the
  received 20 MHz channel in natural order -32..31 (secondary channel none: the
  buffer is in FFT order 0..31,-32..-1; above/below: already ascending). Every
  packet has an L-LTF, so a capture mixing legacy and HT packets stays one
  batch. A row that printed the whole buffer (``len`` values) also carries the
  HT-LTF / STBC-HT-LTF (spec 2.4 table); ``ltf="htltf"`` or ``"stbc-htltf"``
  makes those the ``csi`` of the packets that have them (HT20: grid -32..31;
  HT40: the 40 MHz grid -64..63), other packets keep their L-LTF and land in
  their own batch. Extra column ``ltf`` says which one each row holds (0 L-LTF,
  1 HT-LTF, 2 STBC-HT-LTF, -1 raw).
- A full-buffer row whose (secondary channel, sig_mode, cwb, stbc, len) matches
  no row of the layout table is kept raw, never guessed: ``subcarriers`` are the
  buffer entry positions 0..n-1, nothing masked but the first word, extra column
  ``layout_known`` False.
- ``invalid``: legacy guards and DC for the L-LTF (|k| > 26, k = 0), HT guards
  and DC for HT-LTFs, bins an STBC layout does not report, and the ESP32 first
  word: the tool does not print ``first_word_invalid``, so on the classic ESP32
  entries 0 and 1 of the buffer are always flagged (spec 2.4; for secondary
  channel none that is subcarrier 0 and +1). Values are kept as printed.

Columns: ``time`` is the appended host time when present, else
``real_timestamp`` when the firmware prints it, else ``local_timestamp`` / 1e6
(device µs since boot, unwrapped across its 71.6-minute wrap by :func:`read`);
``parse_line(received=...)`` puts the host receive time before the device
clocks. ``noise`` is noise_floor in dBm. Raw device fields are in ``extra``.
"""

from __future__ import annotations

import numpy as np

from edgecsi.errors import ParseError
from edgecsi.firmware_bridge.capture import Capture
from edgecsi.firmware_bridge.formats import esp_buffer_layout as layout
from edgecsi.firmware_bridge.formats.esp_dialect import LineDialect, slices
from edgecsi.firmware_bridge.formats import esp_int_lists, esp_lines, esp_text
from edgecsi.firmware_bridge.formats.esp_rows import (Columns, Rows, build_batches, int_columns, layout_keys,
                                                      one_row, out_of_range, packet_time, unwrap_u32)
from edgecsi.frames import CSIBatch, UNKNOWN

NAME = "esp32-csi-tool"
CHIP = "esp32"

_COMMON = ("rssi", "rate", "sig_mode", "mcs", "cwb", "smoothing", "not_sounding", "aggregation", "stbc",
           "fec_coding", "sgi", "noise_floor", "ampdu_cnt", "channel", "secondary_channel", "local_timestamp",
           "ant", "sig_len", "rx_state")
#: Numeric columns after type, role, mac: current firmware, and before real time was added.
NUMERIC_NEW = _COMMON + ("real_time_set", "real_timestamp", "len")
NUMERIC_OLD = _COMMON + ("len",)
FIELDS = NUMERIC_NEW + ("host_time",)
TEXT = ("role",)
_HEADER = (b"type,",)

U32_MAX = (1 << 32) - 1
RANGES = {
    "rssi": (-128, 127), "rate": (0, 255), "sig_mode": (0, 3), "mcs": (0, 255), "cwb": (0, 1),
    "smoothing": (0, 1), "not_sounding": (0, 1), "aggregation": (0, 1), "stbc": (0, 3), "fec_coding": (0, 1),
    "sgi": (0, 1), "noise_floor": (-128, 255), "ampdu_cnt": (0, 255), "channel": (0, 255),
    "secondary_channel": (0, 15), "local_timestamp": (-(1 << 31), U32_MAX), "ant": (0, 255),
    "sig_len": (0, 65535), "rx_state": (0, 255), "real_time_set": (0, 1), "len": (0, 65535),
}
_FLOATS = ("real_timestamp", "host_time")
#: ``extra`` columns: name -> dtype (every batch of this format has exactly these, plus ltf/layout_known)
EXTRA = {
    "rate": np.int16, "sig_mode": np.int8, "mcs": np.int16, "cwb": np.int8, "smoothing": np.int8,
    "not_sounding": np.int8, "aggregation": np.int8, "stbc": np.int8, "fec_coding": np.int8, "sgi": np.int8,
    "ampdu_cnt": np.int16, "secondary_channel": np.int8, "local_timestamp": np.int64, "ant": np.int16,
    "sig_len": np.int32, "rx_state": np.int16, "real_time_set": np.int8, "len": np.int32,
}


def sniff(head: bytes) -> bool:
    """True for text whose first CSI line (or header row) is ESP32-CSI-Tool's."""
    try:
        for line in head.split(b"\n"):
            s = line.strip(b" \t\r\n\x00")
            if s.startswith(b"type,role,mac,"):
                return True
            at = s.find(esp_text.CSI_TAG + b",")
            if at < 0:
                continue
            row = s[at:]
            if b'"[' in row:
                return False  # esp-csi's quoted JSON array
            if b"[" in row:
                return True
            parts = row.split(b",")
            return len(parts) >= 24 and (b" " in parts[23] or (len(parts) >= 26 and b" " in parts[25]))
    except Exception:  # a sniffer never raises
        return False
    return False


# ---------------------------------------------------------------- per-line parser


def _split(text: bytes, source: str, line_no: int | None) -> tuple[list[bytes], bytes, bytes]:
    """One CSI line -> (columns before the values, the values text, text after the values)."""
    def fail(reason: str, detail: str) -> ParseError:
        return ParseError(reason, detail, source=source, line=line_no)

    if b"[" in text:
        head, _, rest = text.partition(b"[")
        vals, closed, tail = rest.partition(b"]")
        if not closed:
            raise fail("truncated", "no ']' after the values")
        if not head.endswith(b","):
            raise fail("column_count", "no ',' before '['")
        cols = head[:-1].split(b",")
    else:  # firmware before 2019-07-11: the values are the last column, space separated
        parts = text.split(b",")
        if len(parts) in (24, 26):
            cols, vals, tail = parts[:-1], parts[-1], b""
        elif len(parts) in (25, 27):
            cols, vals, tail = parts[:-2], parts[-2], b"," + parts[-1]
        else:
            raise fail("column_count", f"{len(parts)} columns")
    if len(cols) not in (len(NUMERIC_OLD) + 3, len(NUMERIC_NEW) + 3):
        raise fail("column_count", f"{len(cols)} columns before the values, expected 23 or 25")
    return cols, vals, tail.strip()


def _parse_one(line: bytes | str, line_no: int | None, source: str) -> Rows:
    """One line -> a one-row :class:`Rows` (fields not range-checked yet); raises ParseError."""
    if isinstance(line, str):
        line = line.encode("utf-8", "surrogateescape")
    text = line.strip(b" \t\r\n\x00")
    at = text.find(esp_text.CSI_TAG)
    if at < 0:
        kind = "header" if text.startswith(b"type,") else "not_csi"
        raise ParseError(kind, f"no CSI_DATA tag: {text[:40]!r}", source=source, line=line_no)
    cols, vals, tail = _split(text[at:], source, line_no)
    if cols[0] != esp_text.CSI_TAG:
        raise ParseError("column_count", f"first column {cols[0][:20]!r}", source=source, line=line_no)
    names = NUMERIC_NEW if len(cols) == len(NUMERIC_NEW) + 3 else NUMERIC_OLD
    fields: dict[str, float] = {}
    for name, tok in zip(names, cols[3:]):
        value = esp_text.parse_float(tok) if name == "real_timestamp" else esp_text.parse_int(tok)
        if value is None:
            raise ParseError("bad_field", f"{name}={tok[:20]!r}", source=source, line=line_no)
        fields[name] = float(value)
    if tail:
        host = esp_text.parse_float(tail[1:]) if tail.startswith(b",") else None
        if host is None:
            raise ParseError("trailing_garbage", f"{tail[:20]!r} after the values", source=source, line=line_no)
        fields["host_time"] = host
    mac = esp_text.parse_mac(cols[2])
    if mac is None:
        raise ParseError("bad_mac", f"{cols[2][:20]!r}", source=source, line=line_no)
    values, k, tok = esp_text.parse_value_list(vals, None)
    if values is None:
        if k == -2:
            raise ParseError("value_range", "a value outside int16", source=source, line=line_no)
        raise ParseError("bad_value", f"value {k}: {tok[:20]!r}", source=source, line=line_no)
    role = cols[1].decode("utf-8", "replace")
    return one_row(line_no, fields, FIELDS, mac, {"role": role}, TEXT, values)


# ---------------------------------------------------------------- vectorised path


def _rows(line_no: np.ndarray, table: np.ndarray, values: np.ndarray, counts: np.ndarray, mac: np.ndarray,
          role: np.ndarray, host: np.ndarray, new: bool) -> Rows:
    columns = dict(zip(NUMERIC_NEW if new else NUMERIC_OLD, table.T))
    nan = np.full(len(role), np.nan)
    fields = {name: columns.get(name, nan) for name in NUMERIC_NEW}
    fields["host_time"] = host
    return Rows(line_no, fields, mac, {"role": role}, values, counts)


def _text_column(data: bytes, buf: np.ndarray, begin: np.ndarray, end: np.ndarray) -> np.ndarray:
    """``data[begin[r]:end[r]]`` decoded, one str per row."""
    length = end - begin
    if length.size and (length == length[0]).all():  # usually one role on every line: compare in place
        raw = buf[begin[:, None] + np.arange(length[0])]
        if (raw == raw[0]).all():
            return np.full(length.shape[0], data[begin[0]:end[0]].decode("utf-8", "replace"))
    texts = slices(data, begin, end)
    decoded = {t: t.decode("utf-8", "replace") for t in set(texts)}
    return np.array([decoded[t] for t in texts])


_WIDTH = {True: len(NUMERIC_NEW) + 3, False: len(NUMERIC_OLD) + 3}  # commas before '['


def _host_times(data: bytes, after: np.ndarray, end: np.ndarray) -> np.ndarray | None:
    """Appended host times (``",1612345678.123"``, then maybe ``"\r"``) between ``after`` and
    ``end`` -> float64 per row, or None unless all are canonical."""
    tails = [t.rstrip(b"\r") for t in slices(data, after, end)]
    if not all(t.startswith(b",") for t in tails):
        return None
    times = esp_text.parse_numeric_rows([t[1:] + b"," for t in tails], 1, float_col=0)
    return None if times is None else times[:, 0]


def _fast(text: esp_lines.TextLines, numbers: np.ndarray) -> tuple[list[Rows], list[int]]:
    """Lines starting with ``CSI_DATA,`` (``text`` scanned with marks ``b"[],"``) -> Rows
    for the canonical ones; returns (row tables, line numbers left for the per-line parser).

    The lines are never cut out one by one: the positions of every ``[``, ``]``
    and ``,`` in the whole text give each line's columns, the values are read in
    place (``esp_int_lists.parse_int_lists``), and the numeric columns of all lines are
    parsed in one block. A line that is not canonical goes to the per-line
    parser, which decides what it is; a block of numeric columns that is not
    canonical is halved until its culprits are found.
    """
    n = numbers.shape[0]
    if not n:
        return [], []
    data, buf = text.data, text.buf
    start = text.start[numbers - 1]
    line_end = text.end[numbers - 1]
    end = line_end - (buf[line_end - 1] == 13)  # CRLF line ends
    opens, closes, commas = text.marks
    open_ = esp_lines.next_at(opens, start, len(data))
    close = esp_lines.next_at(closes, open_, len(data))
    ok = close < end
    first_comma = np.searchsorted(commas, start)  # the one after "CSI_DATA"
    width = np.searchsorted(commas, open_) - first_comma
    ok &= (width == _WIDTH[True]) | (width == _WIDTH[False])
    role_end = commas[np.minimum(first_comma + 1, commas.shape[0] - 1)]
    mac_end = commas[np.minimum(first_comma + 2, commas.shape[0] - 1)]
    ok &= mac_end == role_end + 18  # "aa:bb:cc:dd:ee:ff" is 17 bytes
    host = np.full(n, np.nan)
    tail = np.flatnonzero(ok & (close + 1 != end))
    if tail.size:
        times = _host_times(data, close[tail] + 1, line_end[tail])
        if times is None:
            ok[tail] = False
        else:
            host[tail] = times
    rows = np.flatnonzero(ok)
    values, counts, good = esp_int_lists.parse_int_lists(data, buf, open_[rows] + 1, close[rows], b" ")
    mac, mac_ok = esp_text.macs_at(buf, role_end[rows] + 1)
    good &= mac_ok
    first_value = np.cumsum(counts) - counts
    slow = numbers[~ok].tolist() + numbers[rows[~good]].tolist()
    parts: list[Rows] = []
    for new in (True, False):
        group = np.flatnonzero(good & (width[rows] == _WIDTH[new]))
        stack = [group] if group.size else []
        while stack:
            idx = stack.pop()
            at = rows[idx]
            names = NUMERIC_NEW if new else NUMERIC_OLD
            table = esp_text.parse_numeric_rows(slices(data, mac_end[at] + 1, open_[at]), len(names),
                                                float_col=names.index("real_timestamp") if new else None)
            if table is not None:
                if idx.shape[0] == rows.shape[0]:  # every line canonical: the values are already in order
                    picked = values
                else:
                    picked = values[esp_lines.ranges(first_value[idx], first_value[idx] + counts[idx])]
                parts.append(_rows(numbers[at], table, picked, counts[idx], mac[idx],
                                   _text_column(data, buf, start[at] + 9, role_end[at]), host[at], new))
            elif idx.shape[0] <= 4:
                slow.extend(numbers[at].tolist())
            else:
                half = idx.shape[0] // 2
                stack += [idx[half:], idx[:half]]
    return parts, slow


# ---------------------------------------------------------------- checks and batches


def _reasons(rows: Rows) -> list[tuple[int, str, str]]:
    """(row, reason, detail) for every row that parsed but breaks a rule."""
    out: list[tuple[int, str, str]] = []
    bad, which = out_of_range(rows, RANGES)
    for name in _FLOATS:
        v = rows.fields[name]
        inf = np.isinf(v)
        for k in np.flatnonzero(inf & ~bad).tolist():
            which[k] = name
        bad |= inf
    for k in np.flatnonzero(bad).tolist():
        out.append((k, "bad_field", f"{which[k]}={rows.fields[which[k]][k]!r}"))
    n = rows.counts
    length = rows.fields["len"]
    wrong_count = ~bad & ((n == 0) | (n % 2 == 1) | ((n != 128) & (n != length)))
    for k in np.flatnonzero(wrong_count).tolist():
        out.append((k, "value_count", f"{n[k]} values, len={length[k]:.0f} (expected 128 or len, even)"))
    bad |= wrong_count
    off = rows.offsets
    pos = np.flatnonzero((rows.values < -128) | (rows.values > 127))
    if pos.size:
        for k in np.unique(np.searchsorted(off, pos, side="right") - 1).tolist():
            if not bad[k]:
                out.append((k, "value_range", "a value outside int8"))
    return out


def _batches(rows: Rows, *, ltf: int, chip: str | None, received: float | None) -> list[CSIBatch]:
    f = rows.fields
    n = len(rows)
    counts = rows.counts
    uniq, mapping_id = layout_keys([counts, f["len"], f["secondary_channel"], f["sig_mode"], f["cwb"], f["stbc"]],
                                   [1 << 20, 1 << 16, 16, 4, 2, 4])
    mappings = [layout.classic_mapping(int(c) // 2, int(ln), int(sec), int(sig), int(cwb), int(stbc), ltf,
                                       lltf_only_print=int(c) == 128)
                for c, ln, sec, sig, cwb, stbc in uniq.tolist()]
    chip_name = chip or CHIP
    local = unwrap_u32(f["local_timestamp"])
    noise = f["noise_floor"]
    extra = int_columns(f, EXTRA)
    extra["local_timestamp"] = np.mod(extra["local_timestamp"], 1 << 32)
    extra["real_timestamp"] = f["real_timestamp"].copy()
    extra["host_time"] = f["host_time"].copy()
    extra["first_word_invalid"] = np.full(n, UNKNOWN, np.int8)  # the tool does not print the flag
    extra["n_values"] = counts.astype(np.int32)
    extra["role"] = rows.text["role"]
    extra["line"] = rows.line.copy()
    cols = Columns(time=packet_time(rows, local, received), mac=rows.mac, seq=np.full(n, UNKNOWN, np.int64),
                   rssi=f["rssi"].astype(np.float32), noise=np.where(noise > 127, noise - 256, noise).astype(np.float32),
                   channel=f["channel"].astype(np.int16), extra=extra)
    return build_batches(rows, cols, format=NAME, chips=[chip_name], chip_id=np.zeros(n, np.intp),
                         mappings=mappings, mapping_id=mapping_id,
                         first_word_bad=np.full(n, chip_name == CHIP), packet_index=np.arange(n, dtype=np.int64))


# ---------------------------------------------------------------- public API


_DIALECT = LineDialect(NAME, "not_esp32_csi_tool", _HEADER, FIELDS, TEXT, fast=_fast, parse_one=_parse_one,
                       reasons=_reasons, batches=_batches)


def read(data: bytes, *, source: str = "", ltf: str = "lltf", chip: str | None = None) -> Capture:
    """A whole ESP32-CSI-Tool capture; bad lines are counted in ``Capture.bad`` (with line numbers).

    ``ltf``: which training field becomes ``csi`` ("lltf", "htltf", "stbc-htltf";
    see the module docstring). ``chip``: the chip name to record (default
    "esp32"; the first-word mask applies to "esp32" only).
    Raises ParseError only when the input holds no CSI_DATA line and no header row.
    """
    return _DIALECT.read(data, source=source, ltf=ltf, chip=chip)


def parse_line(line: str | bytes, *, received: float | None = None, source: str = "", line_no: int | None = None,
               ltf: str = "lltf", chip: str | None = None) -> CSIBatch:
    """One CSI_DATA line (live serial / UDP) -> a one-packet batch; raises ParseError naming the line.

    ``received``: host receive time (seconds); used as ``time`` unless the line
    carries an appended host time.
    """
    return _DIALECT.parse_line(line, received=received, source=source, line_no=line_no, ltf=ltf,
                               chip=chip)
