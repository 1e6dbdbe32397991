"""ESP32 text formats: ESP32-CSI-Tool and esp-csi readers, and the line writers.

Real captures (../shared/captures/esp32-csi-tool, ../shared/captures/esp-csi)
are checked against their reference.json; variants the samples lack (old
firmware columns, no brackets, HT-LTF buffers, unknown layouts, wraps) are
built by editing a real line; property tests and a seeded fuzz run feed
garbage through read() and parse_line().
"""

from __future__ import annotations

import json
import random
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgecsi.errors import ParseError
from edgecsi.firmware_bridge import formats
from edgecsi.firmware_bridge.formats import esp32_csi_tool as tool
from edgecsi.firmware_bridge.formats import esp_csi
from edgecsi.firmware_bridge.read import read as read_any
from edgecsi.firmware_bridge.writers import esp32_lines
from edgecsi.frames import concat, make_batch, mac_to_int

TOOL_DIR = "captures/esp32-csi-tool"
ESP_CSI_DIR = "captures/esp-csi"
HYPO = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def references(shared_dir, folder):
    ref = json.loads((shared_dir / folder / "reference.json").read_text())
    return {entry["file"]: entry for entry in ref["files"]}


def entry_position(batch, entry: int) -> int:
    """Index into batch.csi's subcarrier axis of buffer entry ``entry`` (L-LTF or raw rows)."""
    if not batch.extra["layout_known"][0]:
        return entry
    secondary = int(batch.extra["secondary_channel"][0])
    subcarrier = (entry if entry < 32 else entry - 64) if secondary == 0 else entry - 32
    return int(np.searchsorted(batch.subcarriers, subcarrier))


def body_lines(path) -> list[bytes]:
    return [line for line in path.read_bytes().split(b"\n") if line.startswith(b"CSI_DATA")]


@pytest.fixture(scope="module")
def tool_line(shared_dir) -> bytes:
    """First CSI line of CSIKit's example_data.csv (current firmware, HT20 STBC, len 384, 128 values)."""
    return body_lines(shared_dir / TOOL_DIR / "csikit_example_data.csv")[0].rstrip(b"\r")


@pytest.fixture(scope="module")
def esp_line(shared_dir) -> bytes:
    return body_lines(shared_dir / ESP_CSI_DIR / "esp32_csi_recv_router_readme.csv")[0].rstrip(b"\r")


# ---------------------------------------------------------------- real captures vs reference.json


def test_tool_captures_match_csiread_reference(shared_dir):
    for name, ref in references(shared_dir, TOOL_DIR).items():
        path = shared_dir / TOOL_DIR / name
        data = path.read_bytes()
        assert tool.sniff(data[:4096]) and not esp_csi.sniff(data[:4096]), name
        cap = tool.read(data, source=str(path))
        assert cap.format == "esp32-csi-tool"
        rows = ref["csi_data_rows"]
        good = cap.n_packets
        assert good + cap.bad.total == rows, name
        b = cap.batch  # L-LTF of every packet: one layout even with legacy and HT packets mixed
        assert b.csi.shape == (good, 1, 1, 64) and b.chip == "esp32"
        np.testing.assert_array_equal(b.subcarriers, np.arange(-32, 32))
        assert sorted(set(b.extra["len"].tolist())) == sorted(int(x) for x in ref["distinct_len_field"])
        csiread_ref = ref["parsers"]["csiread.ESP32"]
        if "error" in csiread_ref:
            # csiread and CSIKit both lose this whole file to its one 127-value row;
            # we count that row as bad and keep the other 833
            assert name == "csikit_example_100hz_pitraffic.csv"
            assert cap.bad.as_dict() == {"value_count": 1}
            assert "line 19" in cap.bad.examples[0]
            continue
        assert cap.bad.total == 0
        assert good == csiread_ref["count"]
        first4 = [complex(b.csi[0, 0, 0, entry_position(b, k)]) for k in range(4)]
        assert first4 == [complex(re_, im) for re_, im in csiread_ref["first4"]], name
        assert b.rssi[:3].tolist() == csiread_ref["rssi_first3"]
        assert b.noise[0] == csiread_ref["noise_floor_first"]
        assert b.extra["len"][0] == csiread_ref["len_first"]
        csikit = ref["parsers"]["CSIKit.CSVBeamformReader"]
        if "first4" in csikit:
            # CSIKit reads each (even, odd) pair as (real, imag); Espressif prints (imag, real)
            # (spec 1.3 / 7.1: IDF docs, the tool's parse_csi.py, csiread). So CSIKit's real part
            # is our imaginary part and vice versa.
            swapped = [complex(im, re_) for re_, im in csikit["first4"]]
            assert first4 == swapped, name
            assert csikit["count"] == good


def test_tool_values_equal_csiread_everywhere(shared_dir, tmp_path):
    csiread = pytest.importorskip("csiread")
    for name in ("csikit_example_data.csv", "csikit_example_fast2_100hz_pitraffic.csv",
                 "esp32csitool_example_csi.csv"):
        path = shared_dir / TOOL_DIR / name
        body = tmp_path / name
        body.write_bytes(b"\n".join(body_lines(path)) + b"\n")  # csiread cannot skip a header row
        theirs = csiread.ESP32(str(body), if_report=False)
        theirs.read()
        b = tool.read(path.read_bytes()).batch
        secondary = b.extra["secondary_channel"]
        for sec in np.unique(secondary):
            rows = secondary == sec
            order = [entry_position(b.select(rows), k) for k in range(64)]
            np.testing.assert_array_equal(b.csi[rows, 0, 0][:, order], theirs.csi[rows].astype(np.complex64))
        np.testing.assert_array_equal(b.rssi, theirs.rssi)
        np.testing.assert_array_equal(b.mac, [mac_to_int(m) for m in theirs.mac])


def test_tool_masks(shared_dir):
    none = tool.read((shared_dir / TOOL_DIR / "csikit_example_fast2_100hz_pitraffic.csv").read_bytes()).batch
    above = tool.read((shared_dir / TOOL_DIR / "esp32csitool_example_csi.csv").read_bytes()).batch
    legacy_guards = {*range(-32, -26), 0, *range(27, 32)}
    # secondary none: FFT order, so the unflagged first word hits subcarriers 0 and +1 (spec 2.4)
    assert set(none.subcarriers[none.invalid[0]].tolist()) == legacy_guards | {1}
    assert (none.invalid == none.invalid[0]).all()
    # secondary above: the first word is on guard bins -32, -31
    assert set(above.subcarriers[above.invalid[0]].tolist()) == legacy_guards
    assert (none.extra["first_word_invalid"] == -1).all()  # the tool does not print the flag
    # the real captures print zeros exactly on guards (FFT idx 27..37 for secondary none)
    guards = np.isin(none.subcarriers, [k for k in legacy_guards if k != 0])
    assert not none.csi[:, 0, 0, guards].any()
    assert none.valid_csi()[:, 0, 0, np.searchsorted(none.subcarriers, [0, 1])].sum() == 0


def test_tool_metadata_columns(shared_dir):
    b = tool.read((shared_dir / TOOL_DIR / "csikit_example_fast2_100hz_pitraffic.csv").read_bytes()).batch
    assert b.macs() == ["11:22:33:44:55:66", "78:11:dc:66:ec:94"]
    assert (b.mac == mac_to_int("78:11:dc:66:ec:94")).sum() == 5
    assert (b.extra["role"] == "PASSIVE").all()
    assert (b.channel == 8).all() and (b.bandwidth_mhz == 20).all() and (b.seq == -1).all()
    # time = real_timestamp when the firmware prints it
    np.testing.assert_array_equal(b.time, b.extra["real_timestamp"])
    assert b.time[0] == 0.206678
    assert sorted(set(b.extra["sig_mode"].tolist())) == [0, 1]  # 1597 legacy + 2 HT packets, one batch
    np.testing.assert_array_equal(b.packet_index, np.arange(len(b)))
    np.testing.assert_array_equal(b.extra["line"], np.arange(2, len(b) + 2))


def test_esp_csi_captures_match_reference(shared_dir):
    for name, ref in references(shared_dir, ESP_CSI_DIR).items():
        path = shared_dir / ESP_CSI_DIR / name
        data = path.read_bytes()
        assert esp_csi.sniff(data[:4096]) and not tool.sniff(data[:4096]), name
        cap = esp_csi.read(data, source=str(path))
        parser = ref["parsers"]["esp-csi csi_data_read_parse algorithm"]
        assert cap.bad.total == 0 and cap.n_packets == parser["count"] == ref["count"]
        b = cap.batch
        first = parser["first_packet"]
        assert b.macs() == [first["mac"]]
        assert b.seq[0] == int(first["seq"]) and b.rssi[0] == int(first["rssi"])
        noise = int(first["noise_floor"])
        assert b.noise[0] == (noise - 256 if noise > 127 else noise)  # esp-crab prints 159 = -97
        assert b.extra["len"][0] == parser["len_field"][0] == parser["values_in_data"][0]
        assert b.extra["first_word_invalid"][0] == parser["first_word_field"][0]
        assert b.time[0] == int(first["local_timestamp"]) / 1e6
        first4 = [complex(b.csi[0, 0, 0, entry_position(b, k)]) for k in range(4)]
        assert first4 == [complex(re_, im) for re_, im in parser["first4"]]
        raw8 = parser["first_raw_int8_first8"]
        assert first4 == [complex(raw8[2 * k + 1], raw8[2 * k]) for k in range(4)]  # (imag, real) pairs
        if len(ref["header"]) == 25:  # classic chip: the layout table applies
            assert b.chip == "esp32" and b.extra["layout_known"].all()
            np.testing.assert_array_equal(b.subcarriers, np.arange(-32, 32))
            # HT40 "below", first_word=1: entries 0, 1 = subcarriers -32, -31 flagged (guards anyway)
            assert b.invalid[:, :2].all()
        else:  # C5/C6: undocumented layouts kept raw, never guessed
            assert b.chip == "esp32c5c6" and not b.extra["layout_known"].any()
            np.testing.assert_array_equal(b.subcarriers, np.arange(int(first["len"]) // 2))
            assert not b.invalid.any()  # first_word 0


def test_auto_detection_dispatches(shared_dir):
    for folder, name in ((TOOL_DIR, "esp32-csi-tool"), (ESP_CSI_DIR, "esp-csi")):
        for path in sorted((shared_dir / folder).glob("*.csv")):
            assert read_any(path).format == name, path
    assert {m.NAME for m in formats.available()} >= {"esp32-csi-tool", "esp-csi"}


# ---------------------------------------------------------------- per-line parser == file reader


@pytest.mark.parametrize("module,folder", [(tool, TOOL_DIR), (esp_csi, ESP_CSI_DIR)])
def test_parse_line_equals_read(shared_dir, module, folder):
    for path in sorted((shared_dir / folder).glob("*.csv")):
        cap = module.read(path.read_bytes())
        whole = concat(cap.batches) if len({b.layout_key for b in cap.batches}) == 1 else None
        lines = path.read_bytes().split(b"\n")[:400]  # enough rows; keeps the test fast
        one = []
        for no, line in enumerate(lines, 1):
            if line.startswith(b"CSI_DATA"):
                try:
                    one.append(module.parse_line(line, line_no=no, source=path.name))
                except ParseError as exc:
                    assert exc.line == no and path.name in str(exc)
        assert len(one) == sum(int(b.extra["line"].searchsorted(len(lines), "right")) for b in cap.batches)
        if whole is None:
            continue
        for i, b in enumerate(one):
            np.testing.assert_array_equal(b.csi[0], whole.csi[i])
            np.testing.assert_array_equal(b.invalid[0], whole.invalid[i])
            assert b.time[0] == whole.time[i] and b.mac[0] == whole.mac[i] and b.rssi[0] == whole.rssi[i]
            assert b.extra["line"][0] == whole.extra["line"][i]
            assert set(b.extra) == set(whole.extra)


def test_parse_line_received_time_and_errors(tool_line, esp_line):
    assert tool.parse_line(tool_line).time[0] == 2.695925  # real_timestamp
    assert tool.parse_line(tool_line.decode(), received=1700000000.5).time[0] == 1700000000.5
    assert tool.parse_line(tool_line + b",1700000000.25", received=5.0).time[0] == 1700000000.25
    assert esp_csi.parse_line(esp_line, received=12.5).time[0] == 12.5
    for module in (tool, esp_csi):
        for bad, reason in ((b"", "not_csi"), (b"I (234) wifi: boot", "not_csi"), (b"type,role,mac", "header")):
            with pytest.raises(ParseError) as exc:
                module.parse_line(bad, source="ttyUSB0", line_no=7)
            assert exc.value.reason == reason and "ttyUSB0: line 7" in str(exc.value)
    with pytest.raises(ParseError, match="truncated"):
        tool.parse_line(tool_line[:200], line_no=3)
    with pytest.raises(ParseError, match="truncated"):
        esp_csi.parse_line(esp_line[:150], line_no=3)
    with pytest.raises(ValueError):
        tool.parse_line(tool_line, ltf="vht")


# ---------------------------------------------------------------- firmware generations and layouts


def _tool_fields(line: bytes) -> tuple[list[bytes], list[int]]:
    head, _, rest = line.partition(b"[")
    return head[:-1].split(b","), [int(v) for v in rest.partition(b"]")[0].split()]


def _tool_line(cols: list[bytes], values, *, brackets: bool = True, tail: bytes = b"") -> bytes:
    body = b"".join(b"%d " % v for v in values)
    return b",".join(cols) + (b",[" + body + b"]" if brackets else b"," + body) + tail


def _set(cols: list[bytes], **fields) -> list[bytes]:
    names = ("type", "role", "mac") + tool.NUMERIC_NEW
    out = list(cols)
    for name, value in fields.items():
        out[names.index(name)] = str(value).encode()
    return out


def test_tool_firmware_variants(tool_line):
    cols, values = _tool_fields(tool_line)
    ref = tool.parse_line(tool_line)
    old_cols = cols[:22] + cols[24:]  # before 2019-07-10: no real_time_set, real_timestamp
    variants = {
        "header+crlf": b"type,role,mac\r\n" + tool_line + b"\r\n",
        "cr only": b"type,role,mac\r" + tool_line + b"\r",
        "no brackets": _tool_line(cols, values, brackets=False) + b"\n",
        "old columns": _tool_line(old_cols, values) + b"\n",
        "old, no brackets": _tool_line(old_cols, values, brackets=False) + b"\n",
        "host time": tool_line + b",1612345678.125\r\n",
        "old, no brackets, host time": _tool_line(old_cols, values, brackets=False, tail=b",1612345678.125") + b"\n",
        "boot junk": b"ets Jun  8 2016 00:22:57\r\nrst:0x1 (POWERON_RESET)\r\n\x00\xff\xfe\r\n" + tool_line + b"\n",
        "junk prefix": b"I (31) wifi:" + tool_line + b"\n",
    }
    for name, text in variants.items():
        assert tool.sniff(text), name
        cap = tool.read(text)
        assert cap.n_packets == 1, (name, cap.bad.examples)
        b = cap.batch
        np.testing.assert_array_equal(b.csi, ref.csi, err_msg=name)
        np.testing.assert_array_equal(b.invalid, ref.invalid, err_msg=name)
        assert b.rssi[0] == ref.rssi[0] and b.mac[0] == ref.mac[0]
        if "host time" in name:
            assert b.time[0] == 1612345678.125
        elif "old" in name:
            assert b.time[0] == int(cols[18]) / 1e6 and b.extra["real_time_set"][0] == -1
        else:
            assert b.time[0] == ref.time[0]
    junk = tool.read(variants["boot junk"])
    assert junk.bad.as_dict() == {"not_csi": 3}


def _pattern(n_entries: int) -> list[int]:
    """(imag, real) int8 pairs that encode each entry's index: e = imag * 200 + real + 100."""
    out = []
    for e in range(n_entries):
        out += [e // 200, e % 200 - 100]
    return out


def _entry(values: np.ndarray) -> np.ndarray:
    return (np.rint(values.imag) * 200 + np.rint(values.real) + 100).astype(int)


@pytest.mark.parametrize("secondary,sig_mode,cwb,stbc,length,want,n_sc,first_entry,order", [
    # secondary none, HT20 STBC: L-LTF | HT-LTF | STBC-HT-LTF, each FFT order 0..31,-32..-1
    (0, 1, 0, 1, 384, "lltf", 64, 0, "fft"),
    (0, 1, 0, 1, 384, "htltf", 64, 64, "fft"),
    (0, 1, 0, 1, 384, "stbc-htltf", 64, 128, "fft"),
    (0, 1, 0, 0, 256, "stbc-htltf", 64, 64, "fft"),  # no STBC-HT-LTF: falls back to the HT-LTF
    (0, 0, 0, 0, 128, "htltf", 64, 0, "fft"),  # legacy packet: only the L-LTF
    # below, HT20: grid 0..63 = local -32..31, ascending
    (2, 1, 0, 0, 256, "htltf", 64, 64, "asc"),
    # HT40 (above or below): HT-LTF on the 40 MHz grid, FFT order 0..63,-64..-1
    (1, 1, 1, 0, 384, "htltf", 128, 64, "fft"),
    (2, 1, 1, 0, 384, "lltf", 64, 0, "asc"),
])
def test_tool_full_buffer_layouts(tool_line, secondary, sig_mode, cwb, stbc, length, want, n_sc, first_entry, order):
    cols, _ = _tool_fields(tool_line)
    cols = _set(cols, secondary_channel=secondary, sig_mode=sig_mode, cwb=cwb, stbc=stbc, len=length)
    b = tool.parse_line(_tool_line(cols, _pattern(length // 2)), ltf=want)
    assert b.csi.shape[-1] == n_sc and b.extra["layout_known"][0]
    sc = b.subcarriers.astype(int)
    nfft = n_sc
    expect = first_entry + (np.mod(sc, nfft) if order == "fft" else sc + nfft // 2)
    np.testing.assert_array_equal(_entry(b.csi[0, 0, 0]), expect)
    assert b.bandwidth_mhz[0] == (40 if n_sc == 128 else 20)
    assert b.extra["ltf"][0] == {0: 0, 64: 1, 128: 2}[first_entry]
    # nulls follow the table of the LTF: legacy for the L-LTF, HT for HT-LTFs
    edge = 26 if first_entry == 0 else (28 if n_sc == 64 else 58)
    assert b.invalid[0, np.abs(sc) > edge].all() and b.invalid[0, sc == 0].all()
    assert not b.invalid[0, (np.abs(sc) <= edge) & (np.abs(sc) > 1)].any()


def test_stbc_layouts_pad_unreported_bins(tool_line):
    cols, _ = _tool_fields(tool_line)
    # above, HT20, STBC: HT-LTF lists grid -62..-1 = local -30..31 (62 entries), 376 bytes
    cols = _set(cols, secondary_channel=1, sig_mode=1, cwb=0, stbc=1, len=376)
    b = tool.parse_line(_tool_line(cols, _pattern(188)), ltf="htltf")
    sc = b.subcarriers.astype(int)
    assert b.csi.shape[-1] == 64 and not b.csi[0, 0, 0, sc < -30].any() and b.invalid[0, sc < -30].all()
    np.testing.assert_array_equal(_entry(b.csi[0, 0, 0, sc >= -30]), 64 + np.arange(62))
    # HT40 STBC: 0..60,-60..-1 per HT-LTF, 612 bytes
    cols = _set(cols, secondary_channel=2, cwb=1, len=612)
    b = tool.parse_line(_tool_line(cols, _pattern(306)), ltf="stbc-htltf")
    sc = b.subcarriers.astype(int)
    inside = np.abs(sc) <= 60
    # the STBC-HT-LTF starts after L-LTF (64) and HT-LTF (121); k >= 0 first, then -60..-1
    np.testing.assert_array_equal(_entry(b.csi[0, 0, 0, inside]), 185 + np.where(sc[inside] >= 0, sc[inside],
                                                                                  121 + sc[inside]))
    assert b.invalid[0, ~inside].all() and b.extra["ltf"][0] == 2


def test_unknown_layouts_are_kept_raw(tool_line, esp_line):
    cols, _ = _tool_fields(tool_line)
    for fields in (dict(len=244), dict(sig_mode=3, len=256), dict(secondary_channel=3, len=256)):
        n_values = fields["len"]
        line = _tool_line(_set(cols, **fields), _pattern(n_values // 2))
        b = tool.parse_line(line, ltf="htltf")
        assert not b.extra["layout_known"][0] and b.extra["ltf"][0] == -1
        np.testing.assert_array_equal(b.subcarriers, np.arange(n_values // 2))
        np.testing.assert_array_equal(_entry(b.csi[0, 0, 0]), np.arange(n_values // 2))
        assert set(np.flatnonzero(b.invalid[0]).tolist()) == {0, 1}  # only the first word
    # a raw row and an L-LTF row of one file land in different batches
    cap = tool.read(tool_line + b"\n" + _tool_line(_set(cols, len=244), _pattern(122)) + b"\n")
    assert [len(b) for b in cap.batches] == [1, 1]
    assert [int(b.packet_index[0]) for b in cap.batches] == [0, 1]
    # the 127-value kind of row is bad, not raw
    bad = _tool_line(cols, _pattern(64)[:127])
    with pytest.raises(ParseError, match="value_count"):
        tool.parse_line(bad)


def test_esp_csi_layouts_and_first_word(esp_line):
    head, _, data = esp_line.partition(b',"[')
    cols = head.split(b",")
    names = esp_csi.LAYOUTS[esp_csi.CLASSIC]

    def line(values, **fields):
        out = list(cols)
        for k, v in fields.items():
            out[names.index(k)] = str(v).encode()
        return b",".join(out) + b',"[' + b",".join(b"%d" % v for v in values) + b']"'

    # HT40 below, no STBC, whole buffer printed, first word valid
    b = esp_csi.parse_line(line(_pattern(192), len=384, stbc=0, first_word_invalid=0), ltf="htltf")
    sc = b.subcarriers.astype(int)
    assert b.csi.shape[-1] == 128 and b.bandwidth_mhz[0] == 40
    np.testing.assert_array_equal(_entry(b.csi[0, 0, 0]), 64 + np.mod(sc, 128))
    fw0 = esp_csi.parse_line(line(_pattern(64), len=128, secondary_channel=0, first_word_invalid=0))
    fw1 = esp_csi.parse_line(line(_pattern(64), len=128, secondary_channel=0, first_word_invalid=1))
    plus1 = int(np.searchsorted(fw0.subcarriers, 1))
    assert not fw0.invalid[0, plus1] and fw1.invalid[0, plus1]
    with pytest.raises(ParseError, match="len_mismatch"):
        esp_csi.parse_line(line(_pattern(64), len=384))
    with pytest.raises(ParseError, match="value_range"):
        esp_csi.parse_line(line([200] + _pattern(64)[1:]))
    # a %d-printed local_timestamp past 2**31 µs is negative; it is the same u32
    neg = esp_csi.parse_line(line(_pattern(64), local_timestamp=-1000))
    assert neg.extra["local_timestamp"][0] == 2**32 - 1000 and neg.time[0] == (2**32 - 1000) / 1e6


def test_esp_csi_c5_twelve_bit_and_console_rows(shared_dir):
    header, c5 = (shared_dir / ESP_CSI_DIR / "esp32c5_esp_crab_readme.csv").read_bytes().split(b"\n")[:2]
    cols = c5.partition(b',"[')[0].split(b",")
    values = [2047, -2048] + [5] * 114
    twelve = b",".join(cols) + b',"[' + b",".join(b"%d" % v for v in values) + b']"'
    twelve = twelve.replace(b",234,0,", b",116,0,")
    b = esp_csi.parse_line(twelve)
    assert b.csi[0, 0, 0, 0] == complex(-2048, 2047) and b.csi.shape[-1] == 58
    console = (b"CSI_DATA,7,123456,0,unknown,aa:bb:cc:dd:ee:ff,-40,11,1,0,0,0,1,0,0,0,0,-90,0,11,2,99,0,40,0,"
               b"30,20,8,0,\"[1,2,3,4,5,6,7,8]\"")
    c = esp_csi.read(header + b"\n" + twelve + b"\n" + console + b"\n")
    assert c.bad.total == 0 and [b.chip for b in c.batches] == ["esp32c5c6", "esp32"]
    row = c.batches[1]
    assert row.extra["columns"][0] == 30 and row.extra["agc_gain"][0] == 30 and row.extra["fft_gain"][0] == 20
    assert row.extra["target"][0] == "unknown" and row.extra["log_timestamp_ms"][0] == 123456
    np.testing.assert_array_equal(row.csi[0, 0, 0], [2 + 1j, 4 + 3j, 6 + 5j, 8 + 7j])
    b64 = console.replace(b'"[1,2,3,4,5,6,7,8]"', b"AQIDBAUGBwg=")
    np.testing.assert_array_equal(esp_csi.parse_line(b64).csi, row.csi)
    assert esp_csi.sniff(b64)


def test_local_timestamp_wraps_are_unwrapped(tool_line):
    cols, values = _tool_fields(tool_line)
    old = cols[:22] + cols[24:]
    stamps = [2**32 - 3_000_000, 2**32 - 1_000_000, 500_000, 2_500_000]
    text = b"".join(_tool_line(_set_old(old, ts), values) + b"\n" for ts in stamps)
    t = tool.read(text).batch.time
    np.testing.assert_allclose(np.diff(t), [2.0, 1.5, 2.0])


def _set_old(cols, local_timestamp):
    out = list(cols)
    out[18] = str(local_timestamp).encode()
    return out


# ---------------------------------------------------------------- writers


@pytest.mark.parametrize("folder", [TOOL_DIR, ESP_CSI_DIR])
def test_writers_round_trip_real_captures(shared_dir, folder):
    module = tool if folder == TOOL_DIR else esp_csi
    for path in sorted((shared_dir / folder).glob("*.csv")):
        cap = module.read(path.read_bytes())
        outputs = [(esp_csi, esp32_lines.esp_csi_text(cap.batches, host_time=True))]
        if folder == TOOL_DIR:  # esp-csi's C5 rows are raw 12-bit capable: the tool writer is for ESP32 rows
            outputs += [(tool, esp32_lines.csi_tool_text(cap.batches)),
                        (tool, esp32_lines.csi_tool_text(cap.batches, real_time=False, host_time=True))]
        for reader, text in outputs:
            back = reader.read(text.encode())
            assert back.bad.total == 0 and back.n_packets == cap.n_packets
            for a, b in zip(cap.batches, back.batches):
                np.testing.assert_array_equal(a.subcarriers, b.subcarriers)
                np.testing.assert_array_equal(a.csi, b.csi)
                np.testing.assert_array_equal(a.invalid, b.invalid)
                for name in ("mac", "rssi", "noise", "channel"):
                    np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
                if a.chip == "esp32":  # a C5 row comes back as a classic line (cwb 0: 20 MHz)
                    np.testing.assert_array_equal(a.bandwidth_mhz, b.bandwidth_mhz)
                np.testing.assert_allclose(a.time, b.time, rtol=0, atol=1e-6)
            # replay line by line (a serial pty hands parse_line one line at a time)
            lines = [ln for ln in text.split("\n") if ln.startswith("CSI_DATA")]
            first = reader.parse_line(lines[0], received=1.0)
            np.testing.assert_array_equal(first.csi[0], cap.batches[0].csi[0])


def test_writer_ht_batches_and_files(tool_line, tmp_path):
    cols, _ = _tool_fields(tool_line)
    for fields, want in ((dict(secondary_channel=2, cwb=1, stbc=0, len=384), "htltf"),
                         (dict(secondary_channel=0, cwb=0, stbc=0, len=256), "htltf")):
        ht = tool.parse_line(_tool_line(_set(cols, **fields), _pattern(fields["len"] // 2)), ltf=want)
        for reader, text in ((tool, esp32_lines.csi_tool_text(ht)), (esp_csi, esp32_lines.esp_csi_text(ht))):
            back = reader.read(text.encode(), ltf=want).batch
            np.testing.assert_array_equal(back.csi, ht.csi)
            np.testing.assert_array_equal(back.invalid, ht.invalid)
    n = esp32_lines.write_esp_csi_lines(ht, tmp_path / "a.csv")
    m = esp32_lines.write_csi_tool_lines(ht, tmp_path / "b.csv", header=False)
    assert n == m == 1
    assert read_any(tmp_path / "a.csv").format == "esp-csi" and read_any(tmp_path / "b.csv").format == "esp32-csi-tool"


@HYPO
@given(n=st.integers(1, 6), secondary=st.sampled_from([0, 1, 2]), seed=st.integers(0, 2**32 - 1),
       tool_format=st.booleans())
def test_writer_round_trip_random_batches(n, secondary, seed, tool_format):
    rng = np.random.default_rng(seed)
    csi = (rng.integers(-128, 128, (n, 64)) + 1j * rng.integers(-128, 128, (n, 64))).astype(np.complex64)
    batch = make_batch(format="sim", chip="esp32", subcarriers=np.arange(-32, 32), csi=csi,
                       time=1000 + np.cumsum(rng.random(n)), mac=rng.integers(0, 2**48, n, dtype=np.uint64),
                       seq=np.arange(n) + 5, rssi=rng.integers(-100, 0, n), noise=rng.integers(-100, -80, n),
                       channel=np.full(n, 6), extra={"secondary_channel": np.full(n, secondary)})
    if tool_format:
        back = tool.read(esp32_lines.csi_tool_text(batch).encode()).batch
    else:
        back = esp_csi.read(esp32_lines.esp_csi_text(batch, host_time=True).encode()).batch
        np.testing.assert_array_equal(back.seq, batch.seq)
    np.testing.assert_array_equal(back.csi, batch.csi)
    np.testing.assert_array_equal(back.mac, batch.mac)
    np.testing.assert_array_equal(back.rssi, batch.rssi)
    np.testing.assert_allclose(back.time, batch.time, rtol=0, atol=1e-6)


# ---------------------------------------------------------------- garbage in: properties and fuzz


def _check_read(module, data: bytes) -> None:
    """read() never raises on input its sniffer accepts; otherwise only ParseError."""
    try:
        cap = module.read(data, source="fuzz")
    except ParseError:
        assert not module.sniff(data[:4096]), data[:200]
        return
    for b in cap.batches:
        assert b.csi.dtype == np.complex64 and b.invalid.shape == (len(b), b.csi.shape[-1])


def _check_line(module, line: bytes) -> None:
    try:
        b = module.parse_line(line, source="fuzz", line_no=1)
    except ParseError as exc:
        assert exc.line == 1 and "fuzz" in str(exc)
        return
    assert len(b) == 1


@HYPO
@given(data=st.binary(max_size=600))
def test_random_bytes(data):
    for module in (tool, esp_csi):
        assert isinstance(module.sniff(data), bool)
        _check_read(module, data)
        _check_read(module, b"CSI_DATA," + data)
        _check_line(module, data)
        _check_line(module, b"CSI_DATA," + data)


def _mutations(line: bytes, rng: random.Random) -> list[bytes]:
    """Truncations, byte flips, corrupted numbers, inserted junk, duplicated separators."""
    n = len(line)
    cut = rng.randrange(1, n)
    pos = rng.randrange(n)
    numbers = [m.span() for m in re.finditer(rb"-?\d+", line)]
    a, b = numbers[rng.randrange(len(numbers))]
    return [
        line[:cut],
        line[:pos] + bytes([rng.randrange(256)]) + line[pos + 1:],
        line[:a] + rng.choice([b"", b"x", b"1e3", b"99999999999999999999", b"--1", b"+7", b"007", b"1.5", b" "])
        + line[b:],
        line[:pos] + rng.choice([b",", b" ", b"[", b"]", b'"', b"\r", b"\x00", b"CSI_DATA,"]) + line[pos:],
        line[:pos] + line[pos + 1:],
        line + rng.choice([b",", b" junk", b",1.5", b",nan", b"]"]),
    ]


def _fuzz_file(module, good: list[bytes], rng: random.Random) -> None:
    """A file of good and mutated lines: no exception, every good line read, and read() agrees
    with parse_line on every line."""
    lines, is_good = [good[0]], [True]  # the first line decides sniffing
    for _ in range(rng.randrange(1, 12)):
        if rng.random() < 0.5:
            lines.append(rng.choice(good))
            is_good.append(True)
        else:
            lines.append(rng.choice(_mutations(rng.choice(good), rng)))
            is_good.append(False)
    text = b"\n".join(lines) + rng.choice([b"", b"\n", b"\r\n"])
    assert module.sniff(text[:4096])
    cap = module.read(text, source="fuzz")
    one = []
    for no, line in enumerate(text.split(b"\n"), 1):
        if not line.strip(b" \t\r\n\x00"):
            continue
        try:
            one.append(module.parse_line(line, line_no=no))
        except ParseError:
            pass
    assert cap.n_packets == len(one) >= sum(is_good)
    got = sorted((int(b.extra["line"][i]), b.csi[i].tobytes(), b.invalid[i].tobytes(), float(b.rssi[i]),
                  int(b.mac[i]), b.subcarriers.tobytes()) for b in cap.batches for i in range(len(b)))
    want = sorted((int(b.extra["line"][0]), b.csi[0].tobytes(), b.invalid[0].tobytes(), float(b.rssi[0]),
                   int(b.mac[0]), b.subcarriers.tobytes()) for b in one)
    assert got == want
    assert cap.n_packets + cap.bad.total >= len([ln for ln in lines if b"CSI_DATA" in ln])


@pytest.fixture(scope="module")
def good_lines(shared_dir):
    tool_lines = []
    for name in ("csikit_example_data.csv", "esp32csitool_example_csi.csv", "csikit_example_fast2_100hz_pitraffic.csv"):
        tool_lines += body_lines(shared_dir / TOOL_DIR / name)[:8]
    esp_lines = []
    for path in sorted((shared_dir / ESP_CSI_DIR).glob("*.csv")):
        esp_lines += body_lines(path)[:6]
    return {tool: [ln.rstrip(b"\r") for ln in tool_lines], esp_csi: [ln.rstrip(b"\r") for ln in esp_lines]}


@HYPO
@given(seed=st.integers(0, 2**32 - 1))
def test_mutated_files_property(good_lines, seed):
    rng = random.Random(seed)
    for module, good in good_lines.items():
        _fuzz_file(module, good, rng)
        for line in _mutations(rng.choice(good), rng):
            _check_line(module, line)


def test_fuzz_run(good_lines):
    """A seeded fuzz run, bigger than the property test: 150 files per format."""
    rng = random.Random(20240611)
    for module, good in good_lines.items():
        for _ in range(150):
            _fuzz_file(module, good, rng)


def test_bad_lines_never_stop_a_big_file(shared_dir):
    path = shared_dir / TOOL_DIR / "csikit_example_fast2_100hz_pitraffic.csv"
    lines = path.read_bytes().split(b"\n")
    lines[100] = lines[100][:57]  # cut
    lines[200] = lines[200].replace(b"[", b"[1x2 ", 1)  # corrupted number
    lines[300] = lines[300].replace(b"[", b"[1000 ", 1)  # out of range, odd count
    lines.insert(400, b"\xff\xfe garbage \x00")
    cap = tool.read(b"\n".join(lines))
    assert cap.n_packets == 1599 - 3 and cap.bad.total == 4
    assert {e.split(": ")[1] for e in cap.bad.examples} == {"line 101", "line 201", "line 301", "line 401"}
