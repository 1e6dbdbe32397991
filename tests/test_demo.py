"""The main job end to end (README's first command), as CI runs it: train -> export int8 -> pty replay -> agent."""

from __future__ import annotations

import json

import pytest

from edgecsi.demo import run_demo


def test_main_job_end_to_end(tmp_path):
    report = run_demo(tmp_path / "demo", replay_day="D2", speed=10.0, epochs=12, seed=0, verbose=False)
    # Held-out D1 sequences (e09, e10), never trained on: the published CNN reaches 85.1%.
    assert report.heldout_accuracy_torch >= 70.0
    assert abs(report.heldout_accuracy_torch - report.heldout_accuracy_int8) <= 1.0
    # Every ESP32 line written into the pseudo-terminal reached the agent and parsed.
    assert report.replay_packets_parsed == report.replay_packets_sent == 3691
    assert report.replay_windows >= 120
    # A later day is hard (published source-only: 40.4%), but far above chance (10 classes).
    assert report.replay_accuracy_raw >= 20.0
    assert json.loads((tmp_path / "demo" / "report.json").read_text())["replay_day"] == "D2"
    assert (tmp_path / "demo" / "bundle" / "manifest.json").exists()
    # The run records the lines it was trained from, so `edgecsi export runs/demo/run` finds its own held-out
    # windows: the same ones the main job checked parity on.
    from edgecsi.export.export_run import heldout_from_run
    from edgecsi.training.train import load_run, predict

    model, config = load_run(tmp_path / "demo" / "run")
    held = heldout_from_run(config)
    accuracy = 100.0 * float((predict(model, held.x).argmax(1) == held.y).mean())
    assert accuracy == pytest.approx(report.heldout_accuracy_torch)
