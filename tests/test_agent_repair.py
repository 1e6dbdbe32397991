"""The optional repair step end to end: `edgecsi export --repair` puts a UNIR generator (trained briefly on
real Nexmon windows) into the bundle, the agent runs it on every window before the model, and a repair file
that does not fit or does not match its hash is refused."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edgecsi.edge.agent import Agent, AgentOptions, _Model
from edgecsi.edge.bundle import BundleError, load_bundle
from edgecsi.firmware_bridge import read


def _windows(bundle_dir, capture) -> tuple[np.ndarray, np.ndarray]:
    """The bundle's own pipeline over the capture; labels as the bundle was trained (first half empty)."""
    from edgecsi.edge.pipeline.config import PipelineConfig
    from edgecsi.edge.pipeline.pipeline import Pipeline
    from edgecsi.edge.pipeline.streams import split_streams

    pipe = Pipeline(PipelineConfig.from_dict(json.loads((bundle_dir / "manifest.json").read_text())["pipeline"]))
    batch = read(capture).batch
    half = len(batch) // 2
    xs, ys = [], []
    for label, part in enumerate((batch.select(slice(0, half)), batch.select(slice(half, None)))):
        for stream in split_streams(part).values():
            w = pipe.transform(stream)
            xs.append(w)
            ys.append(np.full(len(w), label, np.int64))
    return np.concatenate(xs), np.concatenate(ys)


@pytest.fixture(scope="module")
def repair_setup(nexmon_bundle, nexmon_capture, tmp_path_factory):
    from edgecsi.export.export_run import HeldOut, export_run
    from edgecsi.training.generative.corruption import CorruptionConfig
    from edgecsi.training.generative.repair_onnx import export_repair_onnx
    from edgecsi.training.generative.unir import UNIRConfig, train_unir

    tmp = tmp_path_factory.mktemp("repair")
    x, y = _windows(nexmon_bundle, nexmon_capture)
    corruption = CorruptionConfig(packet_loss=0.1, burst=2, subcarrier_drop=0.05, agc_db=1.0)
    result = train_unir(x, corruption, UNIRConfig(steps=20), seed=0, threads=1)
    repair_path = export_repair_onnx(result.model, tmp / "repair.onnx", n_time=x.shape[1],
                                     metadata={"corruption": corruption.as_dict()})
    bundle = tmp / "bundle"
    export_run(nexmon_bundle.parent / f"{nexmon_bundle.name}.run", bundle, heldout=HeldOut(x[:64], x, y),
               bundle_version=12, max_int8_drop=100.0, repair=repair_path)
    return bundle, repair_path, x, y


def test_export_puts_the_repair_model_in_the_signed_contract(repair_setup):
    bundle, repair_path, x, _ = repair_setup
    manifest = json.loads((bundle / "manifest.json").read_text())
    entry = manifest["repair"]
    assert entry["file"] == "repair.onnx" and entry["n_features"] == x.shape[2]
    assert "repair.onnx" in manifest["files"]  # hashed like the model
    assert (bundle / "repair.onnx").read_bytes() == repair_path.read_bytes()
    assert entry["corruption"]["packet_loss"] == pytest.approx(0.1)
    assert set(entry["heldout_metric"]) == {"without_repair", "with_repair"}


def test_agent_runs_repair_before_the_model(repair_setup, nexmon_capture):
    bundle, repair_path, x, _ = repair_setup
    from edgecsi.edge.repair import OnnxRepair
    from edgecsi.edge.runtime import make_session

    model = _Model(load_bundle(bundle), threads=1)
    assert model.repair is not None
    y = x[:8].copy()
    y[:, 3:5] = 0.0  # two lost packets
    expected = make_session((bundle / "model.onnx").read_bytes()).run(["logits"], {"x": OnnxRepair(repair_path)(y)})[0]
    np.testing.assert_allclose(model.infer(y), expected, rtol=1e-5, atol=1e-5)
    plain = make_session((bundle / "model.onnx").read_bytes()).run(["logits"], {"x": y})[0]
    assert not np.allclose(plain, expected, atol=1e-4)  # the repair really changed what the model saw
    assert _Model(load_bundle(bundle), threads=1, use_repair=False).repair is None

    events = []
    agent = Agent(AgentOptions(bundle=bundle, sources=[f"file:{nexmon_capture}?speed=0"], http=None, stdout=False,
                               every_window=True, max_queue=100000), on_event=events.append)
    assert agent.bundle_info()["repair_active"] is True
    stats = agent.run(install_signals=False)
    assert stats["windows"] > 10 and stats["repaired_windows"] == stats["inferences"] == stats["windows"]
    assert stats["inference_errors"] == 0
    assert {e.state for e in events if e.kind == "window"} <= {"empty", "present"}


def test_repair_that_does_not_fit_or_was_changed_is_refused(repair_setup, nexmon_bundle, tmp_path):
    from edgecsi.export.export_run import ExportError, HeldOut, export_run
    from edgecsi.training.generative.repair_net import RepairNet
    from edgecsi.training.generative.repair_onnx import export_repair_onnx

    bundle, _, x, y = repair_setup
    wrong = export_repair_onnx(RepairNet(x.shape[2] + 1), tmp_path / "wrong.onnx", n_time=x.shape[1])
    with pytest.raises(ExportError, match="features"):
        export_run(nexmon_bundle.parent / f"{nexmon_bundle.name}.run", tmp_path / "b", heldout=HeldOut(x[:64], x, y),
                   max_int8_drop=100.0, repair=wrong)
    changed = tmp_path / "changed"
    shutil.copytree(bundle, changed)
    data = bytearray((changed / "repair.onnx").read_bytes())
    data[-1] ^= 0xFF
    (changed / "repair.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="repair.onnx"):
        load_bundle(changed)
    # A manifest naming a repair file it does not hash: the agent refuses the bundle.
    unhashed = tmp_path / "unhashed"
    shutil.copytree(bundle, unhashed)
    manifest = json.loads((unhashed / "manifest.json").read_text())
    manifest["repair"]["file"] = "other.onnx"
    (unhashed / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="not among the hashed files"):
        _Model(load_bundle(unhashed), threads=1)


def test_site_head_is_fitted_on_repaired_windows_and_tied_to_the_repair(repair_setup, nexmon_capture, tmp_path):
    """`edgecsi calibrate` embeds windows as the agent sees them (repaired); a head fitted that way is not
    blended into an agent running --no-repair, and the other way round."""
    from edgecsi.edge.site_calibration import base_model_sha256, calibrate

    bundle, _, x, y = repair_setup
    live = tmp_path / "live"
    shutil.copytree(bundle, live)
    windows = tmp_path / "w.npz"
    np.savez(windows, x=np.concatenate([x[:20], x[-20:]]), labels=np.array(["empty"] * 20 + ["present"] * 20))
    report = calibrate(live, [(windows, None)])
    loaded = load_bundle(live)
    assert report.base_model_sha256 == base_model_sha256(loaded) != base_model_sha256(loaded, with_repair=False)
    with_repair = _Model(loaded, threads=1)
    assert with_repair.site_head is not None and with_repair.repair is not None
    without = _Model(loaded, threads=1, use_repair=False)
    assert without.site_head is None and "refit it" in without.site_head_error
    # Fitted for --no-repair: the repairing agent refuses it instead.
    shutil.rmtree(live / "site")
    calibrate(live, [(windows, None)], with_repair=False)
    assert _Model(load_bundle(live), threads=1, use_repair=False).site_head is not None
    assert _Model(load_bundle(live), threads=1).site_head is None
