"""Command flows a user runs one after another, through the real `edgecsi` entry point."""

from __future__ import annotations

import json
import subprocess
import sys


def edgecsi(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "edgecsi.cli", *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_simulate_then_inspect_shows_the_expected_packets(tmp_path):
    out = tmp_path / "x.pcap"
    edgecsi("simulate", "--scenario", "presence", "--format", "nexmon-43455c0", "--seconds", "2", "--rate", "100",
            "--seed", "0", "--loss", "0", "--out", str(out))
    info = json.loads(edgecsi("inspect", str(out), "--json"))
    assert info["format"] == "nexmon-pcap"
    assert info["packets"] == 200
    assert info["bad_total"] == 0
    assert info["chips"] == ["43455c0"] and info["bandwidth_mhz"] == {"80": 200}
    assert 99 < info["rate_hz"] < 101
    assert info["layouts"][0]["subcarriers"] == 256


def test_bad_input_is_one_line_and_exit_status_2(tmp_path):
    """A missing capture list, a run directory that is not one: a clear line naming the path, no traceback."""
    for args, names in ((["train", "--task", "presence", "--data", str(tmp_path / "none.txt"), "--out",
                          str(tmp_path / "run")], "none.txt"),
                        (["export", str(tmp_path), "--out", str(tmp_path / "b")], "config.json")):
        proc = subprocess.run([sys.executable, "-m", "edgecsi.cli", *args], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert "Traceback" not in proc.stderr and proc.stderr.startswith("edgecsi: error:") and names in proc.stderr
