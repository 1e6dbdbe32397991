"""Site adaptation on real windows (ESP32-S2 D1 -> D4), side-tuned ONNX export, the gateway's numpy head.

Fast by construction: one small source model trained for a few epochs, short adaptation runs on
one thread. The full grid is ``python -m edgecsi.training.adapt.report`` (docs/results/adaptation.md).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

DATASET = "esp32s2_temporal_har_geotecinit"
TARGET = "day=D4"
POOL = "sequence=D4/e01_rx_tx"
SHORT = {"fc": {"steps": 150}, "side": {"distill_steps": 100, "steps": 100},
         "ccsa": {"steps": 80}, "lmmd": {"steps": 80}, "aad": {"steps": 80}}


@pytest.fixture(scope="module")
def ws(shared_dir):
    from edgecsi.training.datasets import load

    return load(DATASET)


@pytest.fixture(scope="module")
def base_run(tmp_path_factory, ws):
    from edgecsi.training.train import train

    run = tmp_path_factory.mktemp("adapt") / "base"
    train("activity", ws, "published", "activity_cnn", epochs=10, seed=0, out_dir=run, progress=False, threads=1)
    return run


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _spec(per_class=5):
    from edgecsi.training.adapt import TargetSpec

    return TargetSpec(None, TARGET, POOL, per_class, seed=0)


# -- the target split ------------------------------------------------------------------------------
def test_target_split_never_tests_on_the_labelled_pool(ws):
    from edgecsi.training.adapt import split_target

    sp = split_target(ws, _spec(5))
    seq = ws.domains["sequence"]
    assert set(seq[sp.pool]) == {"D4/e01_rx_tx"}
    assert not set(seq[sp.test]) & {"D4/e01_rx_tx"}
    assert set(ws.domains["day"][sp.test]) == {"D4"}
    assert np.isin(sp.labelled, sp.pool).all() and not np.isin(sp.labelled, sp.test).any()
    counts = np.bincount(ws.y[sp.labelled], minlength=ws.n_classes)
    assert counts.max() <= 5 and (counts[np.unique(ws.y[sp.pool])] >= 1).all()
    assert len(split_target(ws, _spec(None)).labelled) == len(sp.pool)
    assert len(sp.test) + len(sp.pool) == int(ws.where(day="D4").sum())


# -- every method beats source-only on held-out target windows ---------------------------------------
@pytest.mark.parametrize("method", ["fc", "side", "ccsa", "lmmd", "aad"])
def test_method_beats_source_only_on_held_out_target(method, base_run, ws, tmp_path):
    from edgecsi.training.adapt import adapt
    from edgecsi.training.train import load_run

    before = _sha(base_run / "model.safetensors")
    res = adapt(base_run, method, _spec(5), out_dir=tmp_path / method, options=SHORT[method], threads=1,
                max_source=400, source=ws, target_set=ws)
    assert res.accuracy > res.source_only_accuracy + 0.03, res.summary()
    # The base run is never modified; the adapted run names it and loads like any run.
    assert _sha(base_run / "model.safetensors") == before
    a = res.config["adaptation"]
    assert a["base_model_sha256"] == before and a["method"] == method
    model, config = load_run(tmp_path / method)
    assert config["model"]["name"] == ("side_tuned" if method == "side" else "activity_cnn")
    from safetensors.numpy import load_file

    site = load_file(str(tmp_path / method / "site.safetensors"))
    if method == "fc":
        assert sorted(site) == ["head.bias", "head.weight"]          # the body is the base's, bit for bit
    if method == "side":
        assert all(k.startswith(("side.", "head.", "alpha")) for k in site)
        assert not any(k.startswith("base.") for k in site)


@pytest.mark.slow
def test_lmmd_without_target_labels(base_run, ws, tmp_path):
    from edgecsi.training.adapt import adapt

    res = adapt(base_run, "lmmd", _spec(0), out_dir=tmp_path / "lmmd", threads=1, source=ws, target_set=ws)
    assert res.config["adaptation"]["n_labelled"] == 0
    assert res.accuracy > res.source_only_accuracy, res.summary()


def test_aad_without_labels_keeps_the_classifier_and_plays_the_game(base_run, ws):
    """AAD unsupervised: C is the base's head bit for bit, only the encoder moves, D is trained.

    (Whether it then beats source-only depends on the case: it does on every ESP32-S2 day with the
    grid's source model and does not on Intel cross-room -- see docs/results/adaptation.md.)
    """
    import torch

    from edgecsi.training.adapt import adapt_data, split_target
    from edgecsi.training.adapt.aad import AADConfig, adapt_aad
    from edgecsi.training.adapt.run import source_windows
    from edgecsi.training.train import load_run

    base, config = load_run(base_run)
    _, src = source_windows(config, ws)
    data = adapt_data(ws, src, ws, split_target(ws, _spec(0)), max_source=200)
    assert len(data.y_labelled) == 0
    res = adapt_aad(base, data, AADConfig(steps=20))
    assert torch.equal(res.model.head.weight, base.head.weight) and torch.equal(res.model.head.bias, base.head.bias)
    assert not any(n.startswith("head.") for n in res.trainable)
    moved = [n for n, p in res.model.named_parameters() if not torch.equal(p, dict(base.named_parameters())[n])]
    assert moved and all(not n.startswith("head.") for n in moved)
    assert len(res.history["d_loss"]) >= 2 and all(np.isfinite(res.history["kd_loss"]))


# -- side-tuning exports as one ONNX graph ------------------------------------------------------------
def test_side_tuned_exports_to_one_onnx_graph_matching_torch(base_run, ws, tmp_path):
    import onnx
    import torch

    from edgecsi.edge.runtime import make_session, run_model
    from edgecsi.export.onnx_export import export_onnx
    from edgecsi.training.adapt import AdaptData
    from edgecsi.training.adapt.side_tuning import SideConfig, adapt_side
    from edgecsi.training.train import load_run

    base, _ = load_run(base_run)
    d4 = np.flatnonzero(ws.where(day="D4"))
    data = AdaptData(x_source=ws.x[:64], y_source=ws.y[:64], x_labelled=ws.x[d4[:20]], y_labelled=ws.y[d4[:20]],
                     x_unlabelled=ws.x[d4[20:60]], n_classes=ws.n_classes)
    st = adapt_side(base, data, SideConfig(distill_steps=10, steps=10)).model
    path = export_onnx(st, n_time=50, n_features=56, path=tmp_path / "side.onnx", dynamic_time=st.time_axis == "any")
    proto = onnx.load(str(path))
    assert [o.name for o in proto.graph.output] == ["logits", "embedding"]
    session = make_session(str(path))
    for n_time in (50, 64) if st.time_axis == "any" else (50,):
        for batch in (1, 5):
            x = ws.x[d4[:batch]]
            if n_time != 50:
                x = np.concatenate([x, x[:, : n_time - 50]], axis=1)
            out = run_model(session, x)
            with torch.no_grad():
                z = st.embed(torch.from_numpy(x))
                logits = st.head(z)
            np.testing.assert_allclose(out["logits"], logits.numpy(), atol=1e-4)
            np.testing.assert_allclose(out["embedding"], z.numpy(), atol=1e-4)
    # The blend weight is in the graph: alpha = sigmoid(alpha_logit).
    assert 0.0 < float(st.alpha().detach()) < 1.0


# -- the gateway's numpy head -------------------------------------------------------------------------
def test_calibration_module_imports_no_torch_scipy_sklearn(repo_dir):
    code = ("import sys; import edgecsi.edge.calibration; "
            "bad = [m for m in ('torch', 'scipy', 'sklearn', 'onnx', 'onnxruntime') if m in sys.modules]; "
            "print(','.join(bad)); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=repo_dir)
    assert proc.returncode == 0, f"edge.calibration pulled in: {proc.stdout} {proc.stderr}"


@pytest.fixture(scope="module")
def embedded(base_run, ws):
    """Base-model embeddings and probabilities of the labelled and held-out D4 windows."""
    import torch

    from edgecsi.edge.calibration import softmax
    from edgecsi.training.adapt import split_target
    from edgecsi.training.train import load_run

    base, _ = load_run(base_run)
    sp = split_target(ws, _spec(5))
    with torch.no_grad():
        def run(idx):
            z = base.embed(torch.from_numpy(ws.x[idx]))
            return z.numpy(), softmax(base.head(z).numpy())
        return sp, run(sp.labelled), run(sp.test)


@pytest.mark.parametrize("method", ["logistic", "ridge"])
def test_site_head_fits_and_blends(method, embedded, ws):
    from edgecsi.edge.calibration import blend, fit_site_head

    sp, (emb_l, p_l), (emb_t, p_t) = embedded
    head = fit_site_head(emb_l, ws.y[sp.labelled], ws.labels, method=method, p_base=p_l)
    assert set(np.flatnonzero(head.seen)) == set(np.unique(ws.y[sp.labelled]))
    ph = head.predict_proba(emb_t)
    assert ph.shape == (len(sp.test), ws.n_classes)
    np.testing.assert_allclose(ph.sum(1), 1.0, atol=1e-5)
    assert (ph[:, ~head.seen] == 0).all()
    p = blend(p_t, ph, head.alpha, seen=head.seen)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    np.testing.assert_allclose(blend(p_t, ph, 1.0, seen=head.seen), p_t, atol=1e-6)
    # Fitting windows are learnt (a sanity floor, not a benchmark).
    assert (head.predict_proba(emb_l).argmax(1) == ws.y[sp.labelled]).mean() >= 0.8
    # On held-out windows the blended head beats the base model alone.
    y = ws.y[sp.test]
    assert (p.argmax(1) == y).mean() > (p_t.argmax(1) == y).mean()


def test_site_head_save_load_versions_and_refuses_other_base(embedded, ws, tmp_path):
    from edgecsi.edge.calibration import CalibrationError, SiteHead, fit_site_head

    sp, (emb_l, p_l), (emb_t, _) = embedded
    sha_a, sha_b = "a" * 64, "b" * 64
    head = fit_site_head(emb_l, ws.y[sp.labelled], ws.labels)
    head.save(tmp_path, sha_a)
    loaded = SiteHead.load(tmp_path, sha_a)
    assert loaded.version == 1 and loaded.label_names == ws.labels and loaded.base_model_sha256 == sha_a
    np.testing.assert_allclose(loaded.predict_proba(emb_t), head.predict_proba(emb_t), atol=1e-6)
    doc = json.loads((tmp_path / "head.json").read_text())
    assert doc["base_model_sha256"] == sha_a and doc["labels"] == ws.labels and doc["created"]
    head.save(tmp_path, sha_a)
    assert SiteHead.load(tmp_path, sha_a).version == 2
    with pytest.raises(CalibrationError, match="base model"):
        SiteHead.load(tmp_path, sha_b)
    # A head altered on disk is refused too.
    raw = bytearray((tmp_path / "head.npz").read_bytes())
    raw[-10] ^= 0xFF
    (tmp_path / "head.npz").write_bytes(bytes(raw))
    with pytest.raises(CalibrationError, match="sha256"):
        SiteHead.load(tmp_path, sha_a)


def test_calibrate_cli_appends_to_the_store_and_refits(base_run, ws, tmp_path):
    from typer.testing import CliRunner

    from edgecsi.cli import app
    from edgecsi.edge.calibration import SiteHead
    from edgecsi.edge.site_calibration import base_model_sha256
    from edgecsi.edge.bundle import load_bundle
    from edgecsi.export.bundle_writer import write_bundle
    from edgecsi.export.onnx_export import export_onnx, output_names
    from edgecsi.training.train import load_run

    model, config = load_run(base_run)
    onnx_path = export_onnx(model, n_time=50, n_features=56, path=tmp_path / "work" / "model.onnx", dynamic_time=True)
    bundle = write_bundle(tmp_path / "bundle", files={"model.onnx": onnx_path}, model_file="model.onnx",
                          task="activity", labels=config["labels"], input_spec={"name": "x", **config["input"]},
                          outputs=output_names(model), pipeline={}, source_formats=["esp32-csi-tool"], bundle_version=1)
    d4 = ws.where(day="D4")
    files = []
    for c in (0, 5, 7):
        idx = np.flatnonzero(d4 & (ws.y == c))[:5]
        np.savez(tmp_path / f"c{c}.npz", x=ws.x[idx])
        files.append((tmp_path / f"c{c}.npz", ws.labels[c]))
    runner = CliRunner()
    first = runner.invoke(app, ["calibrate", "--bundle", str(bundle), "--windows", str(files[0][0]),
                                "--label", files[0][1], "--json"])
    assert first.exit_code == 0, first.output
    assert json.loads(first.output)["head"] is None               # one label: nothing to separate yet
    args = ["calibrate", "--bundle", str(bundle), "--json"]
    for path, label in files[1:]:
        args += ["--windows", str(path), "--label", label]
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    report = json.loads(second.output)
    assert report["store_counts"] == {ws.labels[0]: 5, ws.labels[5]: 5, ws.labels[7]: 5}
    sha = base_model_sha256(load_bundle(bundle))
    head = SiteHead.load(bundle / "site", sha)
    assert head.version == 1 and head.n_windows == 15
    bad = runner.invoke(app, ["calibrate", "--bundle", str(bundle), "--windows", str(files[0][0]), "--label", "flying"])
    assert bad.exit_code != 0 and "flying" in str(bad.exception)


def test_adapt_cli_writes_a_run_export_can_read(base_run, ws, tmp_path):
    from typer.testing import CliRunner

    from edgecsi.cli import app
    from edgecsi.export.export_run import heldout_from_run

    out = tmp_path / "fc"
    result = CliRunner().invoke(app, ["adapt", str(base_run), "--method", "fc", "--target-data", TARGET,
                                      "--labelled-from", POOL, "--labelled-per-class", "all", "--out", str(out),
                                      "--option", "steps=50", "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    n_pool = int(ws.where(sequence="D4/e01_rx_tx").sum())
    n_test = int(ws.where(day="D4").sum()) - n_pool
    assert info["n_labelled"] == n_pool and info["n_test"] == n_test
    config = json.loads((out / "config.json").read_text())
    held = heldout_from_run(config)                               # what `edgecsi export` checks parity on
    assert len(held.x) == n_test and len(held.calibration) == n_pool


@pytest.mark.slow
def test_adapted_side_run_exports_as_a_bundle_naming_its_base(base_run, ws, tmp_path):
    from edgecsi.edge.bundle import load_bundle
    from edgecsi.export.export_run import export_run
    from edgecsi.training.adapt import adapt

    res = adapt(base_run, "side", _spec(5), out_dir=tmp_path / "side", threads=1, source=ws, target_set=ws)
    result = export_run(tmp_path / "side", tmp_path / "bundle", bundle_version=7, allow_fp32_fallback=True)
    bundle = load_bundle(result.bundle)
    assert bundle.manifest["base_model_sha256"] == res.config["adaptation"]["base_model_sha256"]
    assert bundle.manifest["outputs"] == ["logits", "embedding"]
    assert result.parity.n_windows == res.config["adaptation"]["n_test"]
    assert result.parity.max_abs_diff_fp32 < 1e-4


@pytest.mark.slow
def test_calibrate_from_capture_files_through_the_bundle_pipeline(shared_dir, tmp_path):
    from bundle_factory import make_capture_bundle

    from edgecsi.edge.calibration import SiteHead
    from edgecsi.edge.site_calibration import calibrate
    from edgecsi.firmware_bridge.read import read

    quiet = shared_dir / "captures/esp32-csi-tool/csikit_example_100hz_pitraffic.csv"
    busy = shared_dir / "captures/esp32-csi-tool/csikit_example_fast2_100hz_pitraffic.csv"
    bundle = make_capture_bundle([read(quiet).batch], [0], tmp_path / "bundle", epochs=1)
    first = calibrate(bundle, [(quiet, "empty")])
    assert first.head is None and first.store_counts["empty"] > 5
    second = calibrate(bundle, [(busy, "present")])
    assert second.head is not None and set(second.store_counts) == {"empty", "present"}
    head = SiteHead.load(bundle / "site", second.base_model_sha256)
    assert head.n_windows == sum(second.store_counts.values())


def test_site_captures_train_adapt_export_run(tmp_path):
    """The whole per-site path on capture files alone: a presence model trained from one room's
    simulated Nexmon captures, adapted (LMMD, 5 labelled windows per class from one pair of captures)
    to a changed room's captures through the CLI, exported without a held-out file (the site's
    captures are cut again by the base pipeline) and run by the agent on a held-out site capture."""
    from typer.testing import CliRunner

    from edgecsi.cli import app
    from edgecsi.edge.agent import Agent, AgentOptions
    from edgecsi.export.export_run import export_run
    from edgecsi.training.simulate import simulate, write_simulation
    from edgecsi.training.train_captures import read_capture_list, train_from_captures

    def captures(folder: Path, room: str, seeds) -> Path:
        folder.mkdir()
        lines = []
        for seed in seeds:
            for label, scenario in (("empty", "empty"), ("present", "presence")):
                sim = simulate(scenario, fmt="nexmon-43455c0", seconds=8, seed=seed, room=room)
                write_simulation(sim, folder / f"{label}{seed}.pcap")
                lines.append(f"{label}{seed}.pcap,{label}")
        (folder / "captures.txt").write_text("\n".join(lines) + "\n")
        return folder / "captures.txt"

    base_list = captures(tmp_path / "base", "base", (0, 1, 2))
    site_list = captures(tmp_path / "site", "changed", (10, 11, 12))
    train_from_captures("presence", read_capture_list(base_list), out_dir=tmp_path / "run", epochs=4, progress=False)
    out = tmp_path / "adapted"
    result = CliRunner().invoke(app, ["adapt", str(tmp_path / "run"), "--method", "lmmd", "--target-data",
                                      str(site_list), "--labelled-from", "file=empty10.pcap+present10.pcap",
                                      "--labelled-per-class", "5", "--out", str(out), "--option", "steps=150",
                                      "--threads", "1", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["n_labelled"] == 10
    config = json.loads((out / "config.json").read_text())
    assert config["dataset"]["captures"]["items"][0][0] == str((tmp_path / "site" / "empty10.pcap").resolve())
    exported = export_run(out, tmp_path / "bundle", max_int8_drop=100.0)
    assert exported.parity.n_windows == info["n_test"]             # the held-out site windows, cut again
    assert exported.parity.metric_torch == pytest.approx(100 * info["accuracy"])
    # Source-only sits at chance in the changed room; the adapted model must not (measured 76.7 % vs 50 %).
    assert info["accuracy"] > info["source_only_accuracy"] + 0.15
    stats = Agent(AgentOptions(bundle=tmp_path / "bundle", sources=[f"file:{tmp_path / 'site' / 'present12.pcap'}?speed=0"],
                               http=None, stdout=False)).run(install_signals=False)
    assert stats["windows"] > 0 and stats["inferences"] == stats["windows"] and stats["inference_errors"] == 0


def test_site_captures_are_read_and_labelled_like_the_base_runs(tmp_path):
    """A base run labelled by a sidecar column other than 'label': the site's captures are labelled by
    the same column; a run whose recorded captures now cut other windows is refused."""
    from edgecsi.firmware_bridge import read
    from edgecsi.training.adapt.run import capture_target, run_windows
    from edgecsi.training.from_captures import default_config
    from edgecsi.training.simulate import simulate, write_simulation
    from edgecsi.training.train import _resolve_dataset
    from edgecsi.training.train_captures import capture_windows, read_capture_list

    for seed in (0, 1):
        path = tmp_path / f"c{seed}.pcap"
        write_simulation(simulate("presence", fmt="nexmon-43455c0", seconds=4, seed=seed), path)
        n = read(path).n_packets
        labels = np.where(np.arange(n) < n // 2, "empty", "present")
        (tmp_path / f"c{seed}.labels.csv").write_text("activity\n" + "\n".join(labels) + "\n")
    (tmp_path / "list.txt").write_text("c0.pcap\nc1.pcap\n")
    ws, fitted = capture_windows("presence", read_capture_list(tmp_path / "list.txt"), default_config(),
                                 label_column="activity")
    _, desc = _resolve_dataset("presence", ws, None)
    config = {"task": "presence", "pipeline": fitted.to_dict(), "labels": list(ws.labels), "dataset": desc}
    site = capture_target(config, tmp_path / "list.txt")
    assert site.x.shape == ws.x.shape and (site.y == ws.y).all()
    assert len(run_windows(config)) == len(ws)
    _, part = _resolve_dataset("presence", ws.subset(ws.where(file="c0.pcap")), None)
    with pytest.raises(ValueError, match="selection"):
        run_windows({**config, "dataset": part})
