"""Generative tools on real windows (ESP32-S2 HAR from ../shared): corruption model, repair (UNIR) against
interpolation / Hampel, ONNX export of the repair generator, AAE, bi-directional adaptation, anti-aliasing.

Each method trains briefly on a slice of the real data and the test checks that its metric moves the right
way; the full-size runs behind docs/results/generative.md are benchmarks/generative.py.
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

DATASET = "esp32s2_temporal_har_geotecinit"


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def ws(shared_dir):
    from edgecsi.training.datasets import load

    return load(DATASET)


@pytest.fixture(scope="module")
def split(ws):
    from edgecsi.training.datasets.splits import split_published

    (sp,) = split_published(ws)
    return sp


# -- the corruption model ------------------------------------------------------------------------------
def test_corruption_model_rates_masks_and_determinism(ws):
    from edgecsi.training.generative.corruption import CorruptionConfig, corrupt, observed_mask_np

    cfg = CorruptionConfig(packet_loss=0.25, burst=4, subcarrier_drop=0.2, agc_db=2.0)
    x = ws.x[:400]
    y, keep = corrupt(x, cfg, seed=3)
    y2, keep2 = corrupt(x, cfg, seed=3)
    assert np.array_equal(y, y2) and np.array_equal(keep, keep2)
    assert not np.array_equal(corrupt(x, cfg, seed=4)[0], y)
    # The missing entries are readable from the measurement, and the rates are what was asked for.
    assert np.array_equal(observed_mask_np(y), keep)
    packet_lost = ~keep.any(axis=2)
    assert abs(packet_lost.mean() - 0.25) < 0.03
    dead = ~keep.any(axis=1)
    assert abs(dead.mean() - 0.2) < 0.03
    # Losses come in bursts: a lost packet's successor is lost far more often than the base rate.
    after = packet_lost[:, 1:][packet_lost[:, :-1]]
    assert after.mean() > 0.6
    # AGC: observed entries are scaled by one gain per packet, spread ~2 dB.
    ratio = np.where(keep, y / x, np.nan)
    arrived = ~packet_lost & (keep.sum(axis=2) > 1)
    rows = ratio[arrived]                                  # [packet, feature], NaN on dead subcarriers
    spread = np.nanmax(rows, axis=1) - np.nanmin(rows, axis=1)
    assert spread.max() < 1e-4 * np.nanmax(rows)           # one gain for the whole packet
    assert 1.5 < np.std(20 * np.log10(ratio[keep])) < 2.5


def test_corruption_phase_offsets_rotate_iq_and_keep_magnitude():
    from edgecsi.training.generative.corruption import CorruptionConfig, CorruptionModel, observed_mask

    cfg = CorruptionConfig(packet_loss=0.0, subcarrier_drop=0.0, agc_db=0.0, phase=np.pi, phase_slope=0.1,
                           iq=True, subcarriers=30)
    model = CorruptionModel(cfg, 180)
    x = torch.randn(4, 20, 180)
    y, theta = model(x, torch.Generator().manual_seed(0))
    mag = lambda v: torch.hypot(v[..., :90], v[..., 90:])
    assert torch.allclose(mag(x), mag(y), atol=1e-5)
    assert not torch.allclose(x, y)
    assert bool(observed_mask(y, iq=True).all())
    with pytest.raises(ValueError):
        CorruptionConfig(phase=0.5)                        # amplitudes carry no phase
    assert CorruptionConfig.parse("packet_loss=0.3,burst=5,iq=true,phase=1").burst == 5


def test_classical_baselines_reduce_the_error_of_missing_entries(ws, split):
    from edgecsi.training.generative.classical import hampel_repair, interpolate_and_normalise, interpolate_missing
    from edgecsi.training.generative.corruption import CorruptionConfig, corrupt
    from edgecsi.training.generative.unir import relative_error

    x = ws.x[split.test][:60]
    y, keep = corrupt(x, CorruptionConfig(agc_db=0.0), seed=5)
    none = relative_error(y, x, ~keep)
    assert relative_error(interpolate_missing(y), x, ~keep) < 0.3 * none
    assert relative_error(hampel_repair(y), x, ~keep) < none
    assert np.array_equal(interpolate_missing(y)[keep], y[keep])         # observed entries untouched
    y_gain, keep_g = corrupt(x, CorruptionConfig(), seed=6)
    assert relative_error(interpolate_and_normalise(y_gain), x) < relative_error(interpolate_missing(y_gain), x)


# -- UNIR repair -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def unir(ws, split):
    """UNIR trained briefly (paper config, 40 steps) on half of D1T, corrupted (never the clean windows);
    D1E corrupted with an independent theta for testing."""
    from edgecsi.training.generative.corruption import CorruptionConfig, corrupt
    from edgecsi.training.generative.unir import UNIRConfig, train_unir

    cfg = CorruptionConfig()
    y_train, _ = corrupt(ws.x[split.train][::2], cfg, seed=1)
    x_test = ws.x[split.test]
    y_test, keep = corrupt(x_test, cfg, seed=2)
    before = train_unir(y_train, cfg, UNIRConfig(steps=0), seed=0)
    after = train_unir(y_train, cfg, UNIRConfig(steps=40), seed=0)
    return {"before": before, "after": after, "y_test": y_test, "x_test": x_test, "keep": keep, "cfg": cfg}


def test_unir_repair_beats_its_start_and_the_classical_baselines(unir):
    from edgecsi.training.generative.classical import BASELINES
    from edgecsi.training.generative.unir import relative_error, repair

    x, y, keep = unir["x_test"], unir["y_test"], unir["keep"]
    err = {name: relative_error(fn(y), x) for name, fn in BASELINES.items()}
    start = relative_error(repair(unir["before"].model, y), x)
    trained = relative_error(repair(unir["after"].model, y), x)
    assert trained < start - 0.005, (start, trained)                     # training moved it the right way
    assert trained < min(err.values()), (trained, err)                   # and past every baseline
    missing = relative_error(repair(unir["after"].model, y), x, ~keep)
    assert missing < relative_error(BASELINES["interpolate"](y), x, ~keep)
    # What arrived is kept (up to the per-packet gain G divides out): no invented packets.
    x_hat = repair(unir["after"].model, y)
    ratio = x_hat[keep] / y[keep]
    assert np.all(np.isfinite(ratio)) and np.all((ratio > 0.5) & (ratio < 2.0))
    h = unir["after"].history
    assert len(h["d_loss"]) == len(h["rec"]) > 0 and np.isfinite(h["rec"]).all()


def test_repair_model_round_trips_and_exports_to_onnx_with_dynamic_batch(unir, tmp_path):
    import onnx

    from edgecsi.edge.repair import OnnxRepair
    from edgecsi.training.generative.repair_onnx import check_repair_onnx, export_repair_onnx
    from edgecsi.training.generative.unir import load_repair, repair, save_repair

    res, y = unir["after"], unir["y_test"]
    save_repair(res, tmp_path / "rep")
    model, config = load_repair(tmp_path / "rep")
    assert config["corruption"] == unir["cfg"].as_dict()
    assert np.array_equal(repair(model, y[:4]), repair(res.model, y[:4]))
    path = export_repair_onnx(model, tmp_path / "rep" / "repair.onnx", metadata={"corruption": unir["cfg"].as_dict()})
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[1].dim_param and dims[2].dim_value == y.shape[2]
    assert check_repair_onnx(model, path, y, batches=(1, 3, 16)) < 1e-3
    runner = OnnxRepair(path)
    assert runner(y[:7]).shape == (7,) + y.shape[1:]
    assert runner.corruption() == unir["cfg"].as_dict()


def test_edge_repair_module_imports_no_torch(repo_dir):
    import subprocess
    import sys

    code = ("import sys, edgecsi.edge.repair; bad = [m for m in ('torch', 'scipy', 'onnx') if m in sys.modules]; "
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], cwd=repo_dir).returncode == 0


# -- adversarial autoencoder -----------------------------------------------------------------------------
def test_aae_critic_pulls_codes_to_the_prior_and_codes_cluster_a_site(ws):
    from edgecsi.training.generative.aae import AAEConfig, encode, prior_mismatch, reconstruct, train_aae
    from edgecsi.training.generative.clustering import cluster_scores, kmeans

    site = ws.select(day="D3")
    k = len(np.unique(site.y))
    aae = train_aae(site.x, AAEConfig(steps=250, latent=8, pool="mean"), seed=0)
    plain = train_aae(site.x, AAEConfig(steps=60, latent=8, pool="mean", adv_weight=0.0), seed=0)
    z_aae, z_plain = encode(aae.model, site.x), encode(plain.model, site.x)
    # The critic does its job: the AAE's codes are far closer to N(0, I) than the plain autoencoder's
    # (which drift further away the longer it trains).
    assert prior_mismatch(z_aae) < 0.4 * prior_mismatch(z_plain), \
        (prior_mismatch(z_aae), prior_mismatch(z_plain))
    # Reconstruction learnt something: better than predicting each feature's mean.
    rec = reconstruct(aae.model, site.x)
    base = ((site.x - site.x.mean(axis=(0, 1))) ** 2).mean()
    assert ((rec - site.x) ** 2).mean() < 0.8 * base
    # The codes carry the activity: k-means on them beats chance clustering by far.
    scores = cluster_scores(site.y, kmeans(z_aae, k, seed=0))
    chance = cluster_scores(site.y, np.random.default_rng(0).integers(0, k, len(site.y)))
    assert scores["nmi"] > chance["nmi"] + 0.2, (scores, chance)


@pytest.mark.slow
def test_conditional_aae_samples_look_like_their_class(ws, split):
    from edgecsi.training.generative.aae import AAEConfig, augment_with_samples, train_aae
    from edgecsi.training.generative.report import accuracy, fit_small

    idx = np.asarray(split.train)
    x, y = ws.x[idx], ws.y[idx]
    # A 2-d style code: little room for the class there, so the decoder must take it from the label.
    res = train_aae(x, AAEConfig(steps=300, latent=2, n_classes=ws.n_classes), y=y, seed=0)
    x_aug, y_aug = augment_with_samples(res.model, x[:5], y[:5], per_class=10, seed=1)
    assert x_aug.shape == (5 + 10 * ws.n_classes,) + x.shape[1:] and np.isfinite(x_aug).all()
    judge = fit_small(x, y, ws.n_classes, epochs=10, seed=0)
    assert accuracy(judge, x, y) > 0.6
    # A classifier trained on real windows labels the decoded samples as their conditioned class above chance.
    assert accuracy(judge, x_aug[5:], y_aug[5:]) > 2.0 / ws.n_classes


def test_clustering_scores():
    from edgecsi.training.generative.clustering import cluster_accuracy, cluster_scores

    y = np.array([0, 0, 1, 1, 2, 2])
    assert cluster_accuracy(y, np.array([2, 2, 0, 0, 1, 1])) == 1.0
    s = cluster_scores(y, np.array([0, 0, 0, 1, 1, 1]))
    assert 0 < s["nmi"] < 1 and s["acc"] == pytest.approx(4 / 6)


# -- bi-directional cross-domain generation ----------------------------------------------------------------
@pytest.fixture(scope="module")
def base_run(tmp_path_factory, ws):
    from edgecsi.training.train import train

    run = tmp_path_factory.mktemp("generative") / "base"
    train("activity", ws, "published", "activity_cnn", epochs=8, seed=0, out_dir=run, progress=False,
          hp={"channels": (16, 32), "fc": 32}, threads=1)
    return run


def test_bidirectional_translators_close_the_site_gap_and_write_a_run(base_run, ws, tmp_path):
    from edgecsi.training.adapt import METHODS, TargetSpec, adapt
    from edgecsi.training.generative.bidirectional import register
    from edgecsi.training.train import load_run

    register()
    assert "bidirectional" in METHODS
    spec = TargetSpec(None, "day=D3", "sequence=D3/e01_tx_rx", 0, seed=0)
    res = adapt(base_run, "bidirectional", spec, out_dir=tmp_path / "bidir", options={"steps": 120},
                threads=1, max_source=400, source=ws, target_set=ws)
    a = res.config["adaptation"]
    assert a["n_labelled"] == 0 and a["method"] == "bidirectional"
    # The source->target translator learnt the new site's per-subcarrier levels (the first-order site gap).
    before, after = json.loads((tmp_path / "bidir" / "history.json").read_text())["level_gap"]
    assert after < 0.8 * before, (before, after)
    model, config = load_run(tmp_path / "bidir")                         # a run like any other
    assert config["model"]["name"] == "activity_cnn"
    assert 0.0 <= res.accuracy <= 1.0


def test_edgecsi_adapt_accepts_method_bidirectional(base_run, tmp_path):
    from typer.testing import CliRunner

    from edgecsi.cli import app

    r = CliRunner().invoke(app, ["adapt", str(base_run), "--method", "bidirectional", "--target-data", "day=D2",
                                 "--labelled-from", "sequence=D2/e01_tx_rx", "-n", "0", "--option", "steps=3",
                                 "--max-source", "64", "--out", str(tmp_path / "cli"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["method"] == "bidirectional"


@pytest.mark.slow
def test_bidirectional_adaptation_beats_source_only_without_target_labels(tmp_path, ws):
    from edgecsi.training.adapt import TargetSpec, adapt
    from edgecsi.training.generative.bidirectional import register
    from edgecsi.training.train import train

    register()
    train("activity", ws, "published", "activity_cnn", epochs=20, seed=0, out_dir=tmp_path / "base", progress=False,
          hp={"channels": (16, 32), "fc": 32}, threads=1, val_group="sequence")
    spec = TargetSpec(None, "day=D3", "sequence=D3/e01_tx_rx", 0, seed=0)
    res = adapt(tmp_path / "base", "bidirectional", spec, out_dir=tmp_path / "bidir", options={"steps": 500},
                threads=1, max_source=400, source=ws, target_set=ws)
    assert res.accuracy > res.source_only_accuracy + 0.05, res.summary()


# -- anti-aliasing -----------------------------------------------------------------------------------------
def test_blurpool_encoder_follows_time_shifts_strided_conv_does_not(ws):
    from edgecsi.training.generative.equivariance import compare_shift_errors

    x = ws.x[np.random.default_rng(0).choice(len(ws), 64, replace=False)]
    out = compare_shift_errors(x, shifts=(1, 2, 3), seed=0)
    assert out["blurpool"]["equivariance"] < 0.15                         # shifted input -> shifted map
    assert out["strided"]["equivariance"] > 3 * out["blurpool"]["equivariance"]
    assert out["strided"]["invariance"] > 5 * out["blurpool"]["invariance"]


def test_blurpool_shapes_exact_shifts_and_onnx(tmp_path):
    import onnxruntime as ort

    from edgecsi.training.generative.equivariance import fractional_roll, paired_encoders
    from edgecsi.training.models.blurpool import BlurPool1d, BlurUpsample1d, lowpass_taps

    assert lowpass_taps(7).sum() == pytest.approx(1.0) and lowpass_taps(5, kind="binomial")[2] == pytest.approx(6 / 16)
    h = torch.randn(2, 4, 25)
    assert BlurPool1d(4)(h).shape == (2, 4, 13) and BlurUpsample1d(4)(h).shape == (2, 4, 50)
    # A constant stays constant through both (unit DC gain).
    ones = torch.ones(1, 3, 16)
    assert torch.allclose(BlurPool1d(3)(ones), torch.ones(1, 3, 8), atol=1e-6)
    assert torch.allclose(BlurUpsample1d(3)(ones), torch.ones(1, 3, 32), atol=1e-6)
    # Shifts by the total stride are exact for both encoders (circular padding).
    strided, blurred = paired_encoders(6, 8, seed=0)
    x = torch.randn(3, 32, 6)
    for enc in (strided, blurred):
        assert torch.allclose(enc(torch.roll(x, 4, dims=1)), torch.roll(enc(x), 1, dims=2), atol=1e-5)
    assert torch.allclose(fractional_roll(torch.arange(8.0), 1.0), torch.roll(torch.arange(8.0), 1), atol=1e-9)
    # Export: a Conv1d + BlurPool1d stack in ONNX at several batch sizes.
    net = torch.nn.Sequential(torch.nn.Conv1d(4, 4, 3, padding=1), torch.nn.ReLU(), BlurPool1d(4)).eval()
    path = tmp_path / "blur.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                                   # the TorchScript exporter's notices
        torch.onnx.export(net, (torch.randn(2, 4, 20),), str(path), input_names=["h"], output_names=["o"],
                          dynamic_axes={"h": {0: "batch"}, "o": {0: "batch"}}, opset_version=17, dynamo=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for b in (1, 5):
        hb = torch.randn(b, 4, 20)
        assert np.allclose(sess.run(None, {"h": hb.numpy()})[0], net(hb).detach().numpy(), atol=1e-5)


# -- CLI -------------------------------------------------------------------------------------------------
def test_cli_repair_train_apply_with_onnx(tmp_path):
    from typer.testing import CliRunner

    from edgecsi.cli import app

    runner = CliRunner()
    out = tmp_path / "rep"
    r = runner.invoke(app, ["generative", "repair-train", "--dataset", DATASET, "--filter", "day=D2", "--steps", "3",
                            "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output)
    assert summary["onnx_max_abs_diff"] < 1e-3 and summary["check"]["n_holdout"] > 0
    from edgecsi.training.datasets import load
    from edgecsi.training.generative.corruption import CorruptionConfig, corrupt

    x = load(DATASET).select(day="D4").x[:6]
    y, _ = corrupt(x, CorruptionConfig(), seed=9)
    np.savez(tmp_path / "in.npz", x=y)
    r = runner.invoke(app, ["generative", "repair-apply", str(out), "--windows", str(tmp_path / "in.npz"),
                            "--out", str(tmp_path / "out.npz"), "--onnx"])
    assert r.exit_code == 0, r.output
    with np.load(tmp_path / "out.npz") as z:
        assert z["x"].shape == y.shape and (z["x"] != 0).all()      # every lost entry filled


@pytest.mark.slow
def test_cli_cluster_reports_scores(tmp_path):
    from typer.testing import CliRunner

    from edgecsi.cli import app

    r = CliRunner().invoke(app, ["generative", "cluster", "--dataset", DATASET, "--filter", "day=D2", "--steps", "100",
                                 "--json", "--out", str(tmp_path / "c.json")])
    assert r.exit_code == 0, r.output
    report = json.loads(r.output)
    assert set(report["scores"]) == {"aae", "raw_kmeans"}
    assert len(json.loads((tmp_path / "c.json").read_text())["assignments"]) == report["n_windows"]


@pytest.mark.slow
def test_unir_full_run_beats_interpolation_downstream(tmp_path):
    """The table's repair row at full size: UNIR's repaired windows classify at least as well as the best baseline."""
    from edgecsi.training.generative.report import repair_experiment
    from edgecsi.training.generative.unir import UNIRConfig

    out = repair_experiment(tmp_path, unir=UNIRConfig())
    e = out.errors
    assert e["UNIR"]["all"] < e["interpolate+gain"]["all"]
    assert e["UNIR"]["accuracy"] >= e["none"]["accuracy"]
