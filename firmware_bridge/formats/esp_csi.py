"""Espressif esp-csi serial lines (csi-formats spec 2).

One packet per line, the values one double-quoted JSON array in the last column::

    CSI_DATA,0,94:d9:b3:80:8c:81,-30,11,1,6,1,0,1,0,1,0,0,-93,0,13,2,2751923,0,67,0,128,1,"[67,48,4,0,...]"

Three column layouts, told apart by the number of columns before the data:

- classic chips (ESP32, -S2, -S3, -C3; csi_recv, csi_recv_router): 25 columns
  ``type,seq|id,mac,rssi,rate,sig_mode,mcs,bandwidth,...,len,first_word,data``;
- ESP32-C5 / -C6 (csi_recv): 15 columns
  ``type,seq,mac,rssi,rate,noise_floor,fft_gain,agc_gain,channel,local_timestamp,sig_len,rx_state,len,first_word,data``;
- esp-radar console_test: 30 columns (``...,agc_gain,fft_gain,len,first_word,data``);
  its data may also be base64 instead of a JSON array.

Values and layout:

- Pairs are (imag, real), as for ESP32-CSI-Tool (esp-csi's own
  csi_data_read_parse.py: ``complex(buf[2i+1], buf[2i])``). The console tool's
  ``complex(raw[2i], raw[2i-1])`` mixes neighbouring subcarriers (spec 7.7); not
  copied here.
- The line prints exactly ``len`` values; a line where the count differs is bad
  (``len_mismatch``), as in the official parser.
- Classic chips: the buffer follows the layout table of spec 2.4, chosen by
  (secondary channel, sig_mode, cwb, stbc, len); the L-LTF becomes ``csi`` by
  default, mapped to the received 20 MHz channel in natural order -32..31, or
  ``ltf="htltf"`` / ``"stbc-htltf"`` picks the HT-LTFs of packets that have
  them (see ``esp32_csi_tool``). ``csi_recv_router`` disables the HT-LTFs, so its
  128-byte buffers are L-LTF only.
- ``first_word`` (``wifi_csi_info_t.first_word_invalid``) is honoured: when 1,
  buffer entries 0 and 1 are flagged invalid.
- ESP32-C5/C6 layouts are undocumented or documented wrongly (esp-idf #14271;
  the README line's nulls say natural order -64..63, not the documented one), and
  the console tool prints esp-radar's filtered buffer: those rows are kept raw,
  ``subcarriers`` = entry positions 0..n-1, extra ``layout_known`` False, never
  guessed. With ``CSI_FORCE_LLTF`` the C5 prints 12-bit values (±2048) built from
  two buffer bytes; 15-column rows accept that range, classic rows int8.
- ``noise_floor`` printed above 127 is an unsigned print of a negative dBm
  (the esp-crab C5 line prints 159 = -97) and is corrected by subtracting 256.

Columns: ``seq`` is the id/seq column (the sender's counter in csi_recv, a
receive counter in csi_recv_router), ``time`` the appended host time when
present, else ``local_timestamp`` / 1e6 (device µs, printed with ``%d`` so it
goes negative after 35.8 minutes: taken modulo 2**32 and unwrapped by
:func:`read`); ``parse_line(received=...)`` puts the host receive time first.
"""

from __future__ import annotations

import base64
import binascii

import numpy as np

from edgecsi.errors import ParseError
from edgecsi.firmware_bridge.capture import Capture
from edgecsi.firmware_bridge.formats import esp_buffer_layout as layout
from edgecsi.firmware_bridge.formats.esp_dialect import LineDialect, slices
from edgecsi.firmware_bridge.formats import esp_int_lists, esp_lines, esp_text
from edgecsi.firmware_bridge.formats.esp_rows import (Columns, Rows, build_batches, int_column, int_columns,
                                                      layout_keys, one_row, out_of_range, packet_time, unwrap_u32)
from edgecsi.frames import CSIBatch

NAME = "esp-csi"

CLASSIC, C5C6, CONSOLE = 0, 1, 2
#: Columns before the data, per layout ("type", "mac", "target" are text).
LAYOUTS = {
    CLASSIC: ("type", "seq", "mac", "rssi", "rate", "sig_mode", "mcs", "cwb", "smoothing", "not_sounding",
              "aggregation", "stbc", "fec_coding", "sgi", "noise_floor", "ampdu_cnt", "channel",
              "secondary_channel", "local_timestamp", "ant", "sig_len", "rx_state", "len", "first_word_invalid"),
    C5C6: ("type", "seq", "mac", "rssi", "rate", "noise_floor", "fft_gain", "agc_gain", "channel",
           "local_timestamp", "sig_len", "rx_state", "len", "first_word_invalid"),
    CONSOLE: ("type", "seq", "log_timestamp_ms", "target_seq", "target", "mac", "rssi", "rate", "sig_mode", "mcs",
              "cwb", "smoothing", "not_sounding", "aggregation", "stbc", "fec_coding", "sgi", "noise_floor",
              "ampdu_cnt", "channel", "secondary_channel", "local_timestamp", "ant", "sig_len", "rx_state",
              "agc_gain", "fft_gain", "len", "first_word_invalid"),
}
_BY_WIDTH = {len(cols): kind for kind, cols in LAYOUTS.items()}
_TEXT_COLUMNS = ("type", "mac", "target")
FIELDS = tuple(dict.fromkeys(c for cols in LAYOUTS.values() for c in cols if c not in _TEXT_COLUMNS)) + \
    ("host_time", "layout")
TEXT = ("target",)
CHIPS = {CLASSIC: "esp32", C5C6: "esp32c5c6", CONSOLE: "esp32"}
_HEADER = (b"type,",)
#: Largest |value|: int8 on classic chips, 12-bit on the C5 (CSI_FORCE_LLTF)
_VALUE_LIMIT = {CLASSIC: 128, C5C6: 2048, CONSOLE: 128}

U32_MAX = (1 << 32) - 1
RANGES = {
    "seq": (-(1 << 31), U32_MAX), "rssi": (-128, 127), "rate": (0, 255), "sig_mode": (0, 3), "mcs": (0, 255),
    "cwb": (0, 1), "smoothing": (0, 1), "not_sounding": (0, 1), "aggregation": (0, 1), "stbc": (0, 3),
    "fec_coding": (0, 1), "sgi": (0, 1), "noise_floor": (-128, 255), "ampdu_cnt": (0, 255), "channel": (0, 255),
    "secondary_channel": (0, 15), "local_timestamp": (-(1 << 31), U32_MAX), "ant": (0, 255),
    "sig_len": (0, 65535), "rx_state": (0, 255), "len": (0, 65535), "first_word_invalid": (0, 1),
    "fft_gain": (-128, 255), "agc_gain": (-128, 255), "log_timestamp_ms": (0, U32_MAX),
    "target_seq": (-(1 << 31), U32_MAX),
}
EXTRA = {
    "rate": np.int16, "sig_mode": np.int8, "mcs": np.int16, "cwb": np.int8, "smoothing": np.int8,
    "not_sounding": np.int8, "aggregation": np.int8, "stbc": np.int8, "fec_coding": np.int8, "sgi": np.int8,
    "ampdu_cnt": np.int16, "secondary_channel": np.int8, "local_timestamp": np.int64, "ant": np.int16,
    "sig_len": np.int32, "rx_state": np.int16, "len": np.int32, "first_word_invalid": np.int8,
    "fft_gain": np.int16, "agc_gain": np.int16, "log_timestamp_ms": np.int64, "target_seq": np.int64,
}
_COLUMNS_PRINTED = {CLASSIC: 25, C5C6: 15, CONSOLE: 30}


def sniff(head: bytes) -> bool:
    """True for text whose first CSI line (or header row) is esp-csi's."""
    try:
        for line in head.split(b"\n"):
            s = line.strip(b" \t\r\n\x00")
            if s.startswith((b"type,seq,", b"type,id,", b"type,sequence,")):
                return True
            at = s.find(esp_text.CSI_TAG + b",")
            if at < 0:
                continue
            row = s[at:]
            if b'"[' in row:
                return True
            # console tool with --csi_output_format base64: 30 columns, no brackets, no spaces
            return b"[" not in row and b" " not in row and len(row.split(b",")) in (30, 31)
    except Exception:  # a sniffer never raises
        return False
    return False


# ---------------------------------------------------------------- per-line parser


def _split(text: bytes, source: str, line_no: int | None) -> tuple[list[bytes], np.ndarray, bytes]:
    """One CSI line -> (columns before the data, values, text after the data)."""
    def fail(reason: str, detail: str) -> ParseError:
        return ParseError(reason, detail, source=source, line=line_no)

    at = text.find(b"[")
    if at >= 0:
        head = text[:at]
        quoted = head.endswith(b'"')
        if quoted:
            head = head[:-1]
        end = text.find(b"]", at)
        if end < 0:
            raise fail("truncated", "no ']' after the values")
        vals, tail = text[at + 1:end], text[end + 1:]
        if quoted:
            if not tail.startswith(b'"'):
                raise fail("truncated", "no closing '\"' after the values")
            tail = tail[1:]
        if not head.endswith(b","):
            raise fail("column_count", "no ',' before the data")
        cols = head[:-1].split(b",")
        values, k, tok = esp_text.parse_value_list(vals, b",")
        if values is None:
            if k == -2:
                raise fail("value_range", "a value outside int16")
            raise fail("bad_value", f"value {k}: {tok[:20]!r}")
    else:  # console tool, base64 output
        parts = text.split(b",")
        if len(parts) not in (30, 31):
            raise fail("column_count", f"{len(parts)} columns and no '[' data")
        cols, data = parts[:29], parts[29]
        tail = b"," + parts[30] if len(parts) == 31 else b""
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise fail("bad_value", f"data is neither a [...] list nor base64: {data[:20]!r}") from None
        values = np.frombuffer(raw, dtype=np.int8).astype(np.int64)
    if len(cols) not in _BY_WIDTH:
        raise fail("column_count", f"{len(cols)} columns before the data, expected 24, 14 or 29")
    return cols, values, tail.strip()


def _parse_one(line: bytes | str, line_no: int | None, source: str) -> Rows:
    """One line -> a one-row :class:`Rows` (fields not range-checked yet); raises ParseError."""
    if isinstance(line, str):
        line = line.encode("utf-8", "surrogateescape")
    text = line.strip(b" \t\r\n\x00")
    at = text.find(esp_text.CSI_TAG)
    if at < 0:
        kind = "header" if text.startswith(b"type,") else "not_csi"
        raise ParseError(kind, f"no CSI_DATA tag: {text[:40]!r}", source=source, line=line_no)
    cols, values, tail = _split(text[at:], source, line_no)
    kind = _BY_WIDTH[len(cols)]
    fields: dict[str, float] = {"layout": float(kind)}
    mac = None
    target = ""
    for name, tok in zip(LAYOUTS[kind], cols):
        if name == "type":
            if tok != esp_text.CSI_TAG:
                raise ParseError("column_count", f"first column {tok[:20]!r}", source=source, line=line_no)
        elif name == "mac":
            mac = esp_text.parse_mac(tok)
            if mac is None:
                raise ParseError("bad_mac", f"{tok[:20]!r}", source=source, line=line_no)
        elif name == "target":
            target = tok.decode("utf-8", "replace")
        else:
            value = esp_text.parse_int(tok)
            if value is None:
                raise ParseError("bad_field", f"{name}={tok[:20]!r}", source=source, line=line_no)
            fields[name] = float(value)
    if tail:
        host = esp_text.parse_float(tail[1:]) if tail.startswith(b",") else None
        if host is None:
            raise ParseError("trailing_garbage", f"{tail[:20]!r} after the data", source=source, line=line_no)
        fields["host_time"] = host
    return one_row(line_no, fields, FIELDS, mac, {"target": target}, TEXT, values)


# ---------------------------------------------------------------- vectorised path


def _rows(line_no: np.ndarray, seq: np.ndarray, table: np.ndarray, values: np.ndarray, counts: np.ndarray,
          mac: np.ndarray, host: np.ndarray, kind: int) -> Rows:
    n = line_no.shape[0]
    columns = dict(zip(LAYOUTS[kind][3:], table.T))
    columns["seq"] = seq
    nan = np.full(n, np.nan)
    fields = {name: columns.get(name, nan) for name in FIELDS}
    fields["host_time"] = host
    fields["layout"] = np.full(n, float(kind))
    return Rows(line_no, fields, mac, {"target": np.full(n, "")}, values, counts)


def _fast(text: esp_lines.TextLines, numbers: np.ndarray) -> tuple[list[Rows], list[int]]:
    """Canonical classic and C5/C6 lines (``text`` scanned with marks ``b"[],"``) -> Rows;
    returns (row tables, line numbers for the per-line parser).

    As ``esp32_csi_tool._fast``: columns from the positions of every ``[``, ``]``
    and ``,`` in the text, classic values read in place; C5/C6 values may have 4
    digits (12-bit) and go through ``esp_text.parse_values``. A block of lines
    that is not canonical is halved until its culprits are found.
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
    ok = close + 1 < end
    ok[ok] = (buf[open_[ok] - 1] == 34) & (buf[close[ok] + 1] == 34)  # the data is one quoted field: "[...]"
    first_comma = np.searchsorted(commas, start)  # the one after "CSI_DATA"
    width = np.searchsorted(commas, open_) - first_comma
    kind = np.full(n, -1)
    for k in (CLASSIC, C5C6):
        kind[width == len(LAYOUTS[k])] = k
    ok &= kind >= 0
    seq_end = commas[np.minimum(first_comma + 1, commas.shape[0] - 1)]
    mac_end = commas[np.minimum(first_comma + 2, commas.shape[0] - 1)]
    ok &= mac_end == seq_end + 18  # "aa:bb:cc:dd:ee:ff" is 17 bytes
    host = np.full(n, np.nan)
    tail = np.flatnonzero(ok & (close + 2 != end))
    if tail.size:  # appended host time: ",1612345678.123" (then maybe "\r")
        tails = [t.rstrip(b"\r") for t in slices(data, close[tail] + 2, line_end[tail])]
        times = None
        if all(t.startswith(b",") for t in tails):
            times = esp_text.parse_numeric_rows([t[1:] + b"," for t in tails], 1, float_col=0)
        if times is None:
            ok[tail] = False
        else:
            host[tail] = times[:, 0]
    mac = np.zeros(n, dtype=np.uint64)
    checked = np.flatnonzero(ok)
    mac[checked], ok[checked] = esp_text.macs_at(buf, seq_end[checked] + 1)
    # classic values: int8, read in place ("1,2,3]": each token ends at ',' or the closing ']')
    classic = np.flatnonzero(ok & (kind == CLASSIC))
    values, counts, good = esp_int_lists.parse_int_lists(data, buf, open_[classic] + 1, close[classic] + 1, b",]")
    first_value = np.cumsum(counts) - counts
    ok[classic[~good]] = False
    slow = numbers[~ok].tolist()
    parts: list[Rows] = []
    for k in (CLASSIC, C5C6):
        group = np.flatnonzero(ok & (kind == k))
        stack = [group] if group.size else []
        while stack:
            at = stack.pop()
            seq = esp_text.parse_numeric_rows(slices(data, start[at] + 9, seq_end[at] + 1), 1)
            table = None if seq is None else \
                esp_text.parse_numeric_rows(slices(data, mac_end[at] + 1, open_[at] - 1), len(LAYOUTS[k]) - 3)
            got = None
            if table is not None and k == CLASSIC:
                i = np.searchsorted(classic, at)
                got = values[esp_lines.ranges(first_value[i], first_value[i] + counts[i])], counts[i]
            elif table is not None:
                got = esp_text.parse_values(slices(data, open_[at] + 1, close[at]), b",", terminated=False,
                                            max_digits=4)
            if got is not None:
                parts.append(_rows(numbers[at], seq[:, 0], table, *got, mac[at], host[at], k))
            elif at.shape[0] <= 4:
                slow.extend(numbers[at].tolist())
            else:
                half = at.shape[0] // 2
                stack += [at[half:], at[:half]]
    return parts, slow


# ---------------------------------------------------------------- checks and batches


def _reasons(rows: Rows) -> list[tuple[int, str, str]]:
    """(row, reason, detail) for every row that parsed but breaks a rule."""
    out: list[tuple[int, str, str]] = []
    bad, which = out_of_range(rows, RANGES)
    host = rows.fields["host_time"]
    inf = np.isinf(host)
    for k in np.flatnonzero(inf & ~bad).tolist():
        which[k] = "host_time"
    bad |= inf
    for k in np.flatnonzero(bad).tolist():
        out.append((k, "bad_field", f"{which[k]}={rows.fields[which[k]][k]!r}"))
    n = rows.counts
    length = rows.fields["len"]
    mismatch = ~bad & (n != length)
    for k in np.flatnonzero(mismatch).tolist():
        out.append((k, "len_mismatch", f"{n[k]} values, len={length[k]:.0f}"))
    bad |= mismatch
    odd = ~bad & ((n == 0) | (n % 2 == 1))
    for k in np.flatnonzero(odd).tolist():
        out.append((k, "value_count", f"{n[k]} values (pairs of imag, real expected)"))
    bad |= odd
    if rows.values.size:
        limit = np.array([_VALUE_LIMIT[k] for k in (CLASSIC, C5C6, CONSOLE)])[rows.fields["layout"].astype(np.intp)]
        if (limit == limit[0]).all():  # one layout (the usual case): compare with one bound
            pos = np.flatnonzero((rows.values < -limit[0]) | (rows.values >= limit[0]))
        else:
            v = rows.values.astype(np.int32)
            bound = np.repeat(limit, n)
            pos = np.flatnonzero((v < -bound) | (v >= bound))
        for k in np.unique(np.searchsorted(rows.offsets, pos, side="right") - 1).tolist():
            if not bad[k]:
                out.append((k, "value_range", f"a value outside ±{limit[k]}"))
    return out


def _batches(rows: Rows, *, ltf: int, chip: str | None, received: float | None) -> list[CSIBatch]:
    f = rows.fields
    n = len(rows)
    counts = rows.counts
    kind = f["layout"].astype(np.int64)

    def key(name: str) -> np.ndarray:
        return np.nan_to_num(f[name], nan=0.0).astype(np.int64)

    uniq, mapping_id = layout_keys([kind, counts, key("len"), key("secondary_channel"), key("sig_mode"), key("cwb"),
                                    key("stbc")], [3, 1 << 20, 1 << 16, 16, 4, 2, 4])
    mappings = []
    for k, c, ln, sec, sig, cwb, stbc in uniq.tolist():
        if k == CLASSIC:
            mappings.append(layout.classic_mapping(c // 2, ln, sec, sig, cwb, stbc, ltf))
        else:  # C5/C6 and console rows: raw; cwb is known on the console tool only
            mappings.append(layout.raw_mapping(c // 2, (20, 40)[cwb] if k == CONSOLE else -1))
    if chip:
        chips, chip_id = [chip], np.zeros(n, np.intp)
    else:
        chips = [CHIPS[CLASSIC], CHIPS[C5C6]]
        chip_id = (kind == C5C6).astype(np.intp)
    local = unwrap_u32(f["local_timestamp"])
    noise = f["noise_floor"]
    extra = int_columns(f, EXTRA)
    extra["local_timestamp"] = np.where(extra["local_timestamp"] < 0, extra["local_timestamp"] + (1 << 32),
                                        extra["local_timestamp"])
    extra["host_time"] = f["host_time"].copy()
    extra["columns"] = np.array([_COLUMNS_PRINTED[k] for k in (CLASSIC, C5C6, CONSOLE)], np.int8)[kind]
    extra["n_values"] = counts.astype(np.int32)
    extra["target"] = rows.text["target"]
    extra["line"] = rows.line.copy()
    seq = np.mod(int_column(f["seq"]), 1 << 32)  # printed with %d: negative above 2**31
    cols = Columns(time=packet_time(rows, local, received), mac=rows.mac, seq=seq, rssi=f["rssi"].astype(np.float32),
                   noise=np.where(noise > 127, noise - 256, noise).astype(np.float32),
                   channel=f["channel"].astype(np.int16), extra=extra)
    return build_batches(rows, cols, format=NAME, chips=chips, chip_id=chip_id, mappings=mappings,
                         mapping_id=mapping_id, first_word_bad=f["first_word_invalid"] == 1,
                         packet_index=np.arange(n, dtype=np.int64))


# ---------------------------------------------------------------- public API


_DIALECT = LineDialect(NAME, "not_esp_csi", _HEADER, FIELDS, TEXT, fast=_fast, parse_one=_parse_one,
                       reasons=_reasons, batches=_batches)


def read(data: bytes, *, source: str = "", ltf: str = "lltf", chip: str | None = None) -> Capture:
    """A whole esp-csi capture (any of the three layouts, mixed); bad lines are counted in ``Capture.bad``.

    ``ltf``: which training field of a classic-chip buffer becomes ``csi``
    ("lltf", "htltf", "stbc-htltf"). ``chip``: record this chip name for every
    row instead of "esp32" (classic, console) / "esp32c5c6" (15 columns).
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
