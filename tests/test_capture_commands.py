"""``edgecsi inspect | convert | plot`` on real captures (typer's CliRunner; one real subprocess for
the error path through ``edgecsi.cli.main``)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from edgecsi.cli import app
from edgecsi.firmware_bridge import read
from edgecsi.firmware_bridge.inspect import summarize

NEXMON_4339 = "captures/nexmon/csikit_example_4339.pcap"
NEXMON_43455 = "captures/nexmon/csikit_example_43455c0.pcap"
INTEL = "captures/intel5300/sample_0x5_64_3000.dat"
ESP32_TRUNCATED = "captures/esp32-csi-tool/csikit_example_100hz_pitraffic.csv"

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_inspect_json_nexmon_streams(shared_dir):
    summary = json.loads(invoke("inspect", shared_dir / NEXMON_4339, "--json"))
    assert summary["format"] == "nexmon-pcap" and summary["chips"] == ["4339"]
    assert summary["packets"] == 2850 and summary["bad_total"] == 0
    assert summary["duration_s"] == pytest.approx(14.97, abs=0.01)
    assert summary["rate_hz"] == pytest.approx(2849 / summary["duration_s"], rel=1e-3)
    assert summary["bandwidth_mhz"] == {"80": 2850} and summary["channels"] == {"42": 2850}
    assert summary["rssi_dbm"] is None  # the old Nexmon header has no RSSI
    [layout] = summary["layouts"]
    assert (layout["subcarriers"], layout["subcarrier_range"], layout["rx"], layout["tx"]) == (256, [-128, 127], 1, 1)
    assert layout["valid_subcarriers"] == 242  # 80 MHz: guards and the 3 DC bins hold no CSI
    streams = summary["streams"]
    assert [(s["mac"], s["core"], s["stream"], s["packets"]) for s in streams] == [
        ("11:22:33:44:55:66", 0, k, 950) for k in range(3)]
    assert summary["bytes"] == (shared_dir / NEXMON_4339).stat().st_size


def test_inspect_text_reports_rssi_and_bad_lines(shared_dir):
    pytest.importorskip("edgecsi.firmware_bridge.formats.esp32_csi_tool")
    text = invoke("inspect", shared_dir / ESP32_TRUNCATED)
    capture = read(shared_dir / ESP32_TRUNCATED)
    assert f"packets     {capture.n_packets:,}" in text
    assert "rssi        mean" in text
    reason, count = next(iter(capture.bad.as_dict().items()))
    assert f"bad         {count}: {reason} {count}" in text
    assert "line" in text.split("bad         ")[1]  # the example names the line


def test_inspect_intel_noise_and_antennas(shared_dir):
    summary = summarize(read(shared_dir / INTEL))
    assert summary["packets"] == 2998 and summary["rssi_dbm"]["count"] == 2998
    assert summary["noise_dbm"] is None  # this capture logs noise -127, "not measured"
    assert (summary["layouts"][0]["rx"], summary["layouts"][0]["tx"]) == (3, 1)
    assert summary["channels"] == {"unknown": 2998}
    summary = summarize(read(shared_dir / "captures/intel5300/csikit_example.dat"))
    assert summary["noise_dbm"]["count"] == 26 and summary["noise_dbm"]["max"] < -60


def test_convert_writes_every_column(shared_dir, tmp_path):
    out = tmp_path / "c.npz"
    shapes = json.loads(invoke("convert", shared_dir / NEXMON_4339, out, "--json"))
    assert shapes["packets"] == 2850 and shapes["arrays"]["csi"] == [2850, 1, 1, 256]
    batch = read(shared_dir / NEXMON_4339).batch
    with np.load(out) as z:
        assert z["csi"].dtype == np.complex64
        np.testing.assert_array_equal(z["csi"], batch.csi)
        np.testing.assert_array_equal(z["invalid"], batch.invalid)
        np.testing.assert_array_equal(z["subcarriers"], np.arange(-128, 128))
        for column in ("time", "mac", "seq", "rssi", "noise", "channel", "bandwidth_mhz", "core", "stream",
                       "packet_index"):
            np.testing.assert_array_equal(z[column], getattr(batch, column))
        for name, column in batch.extra.items():
            np.testing.assert_array_equal(z[f"extra.{name}"], column)
        assert str(z["format"]) == "nexmon-pcap" and str(z["chip"]) == "4339"
        assert json.loads(str(z["bad"])) == {} and int(z["n_layouts"]) == 1


def test_convert_two_layouts_get_prefixes(shared_dir, tmp_path):
    # Two chips in one pcap (records of the 43455c0 capture appended to the 4339 one): two layouts.
    a = (shared_dir / NEXMON_4339).read_bytes()
    b = (shared_dir / NEXMON_43455).read_bytes()
    mixed = tmp_path / "mixed.pcap"
    mixed.write_bytes(a + b[24:])
    out = tmp_path / "mixed.npz"
    invoke("convert", mixed, out, "--compress")
    with np.load(out) as z:
        assert int(z["n_layouts"]) == 2 and "csi" not in z.files
        assert z["layout0/csi"].shape == (2850, 1, 1, 256) and str(z["layout0/chip"]) == "4339"
        assert z["layout1/csi"].shape == (566, 1, 1, 256) and str(z["layout1/chip"]) == "43455c0"
        order = np.concatenate([z["layout0/packet_index"], z["layout1/packet_index"]])
        assert sorted(order.tolist()) == list(range(2850 + 566))


def test_plot_writes_a_png_with_a_picture(shared_dir, tmp_path):
    import matplotlib.image

    out = tmp_path / "p.png"
    text = invoke("plot", shared_dir / NEXMON_43455, out)
    assert "566 packets" in text
    image = matplotlib.image.imread(out)
    assert image.shape[0] > 400 and image.shape[1] > 600
    assert len(np.unique(image.reshape(-1, image.shape[2]), axis=0)) > 50  # a heat map, not a blank page
    out2 = tmp_path / "intel.png"
    assert "500 packets" in invoke("plot", shared_dir / INTEL, out2, "--rx", "2", "--max-packets", "500")
    assert out2.stat().st_size > 10_000


def test_plot_rejects_a_stream_that_is_not_there(shared_dir, tmp_path):
    result = runner.invoke(app, ["plot", str(shared_dir / NEXMON_4339), str(tmp_path / "x.png"), "--stream", "3"])
    assert result.exit_code == 2 and "3 streams" in result.output


def test_unknown_file_is_an_error_naming_it(tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01 not a capture " * 10)
    done = subprocess.run([sys.executable, "-c", "from edgecsi.cli import main; main()", "inspect", str(junk)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "junk.bin" in done.stderr and "unknown_format" in done.stderr
