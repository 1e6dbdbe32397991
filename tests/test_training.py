"""Model zoo, train(), run directories, baselines and the train CLI, on real data.

Default run (fast): every registered model exports to ONNX and runs in onnxruntime at two batch
sizes; a tiny model trained for eight short epochs on real ESP32-S2 windows beats chance on held-out
sequences and its run directory reloads; regression folds its target scale into the head.
``-m slow``: the measurement protocols of docs/results/training.md with their accuracy floors.
"""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest
import torch

from edgecsi.training.models import MODELS, build_model, majority_vote

torch.set_num_threads(1)

SHAPES = {"stream": (50, 56), "fingerprint": (1, 180)}   # (time, feature)
#: Every registered model with its defaults, plus options that add graph parts the defaults do not build.
ZOO = {**{n: (n, {}) for n in MODELS},
       "motion_cnn+spectrum": ("motion_cnn", {"spectrum": 4, "spectrum_window": 15, "downsample": 2}),
       "motion_cnn+columns": ("motion_cnn", {"columns": [6, 20], "spectrum": 4, "spectrum_window": 15})}


@pytest.fixture(scope="module")
def esp32(shared_dir):
    from edgecsi.training.datasets import load

    return load("esp32s2_temporal_har_geotecinit", root=shared_dir / "datasets")


# -- model zoo -------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", sorted(ZOO))
def test_model_contract_and_onnx_export(variant):
    import onnxruntime as ort

    name, hp = ZOO[variant]
    n_time, n_features = SHAPES["stream"]
    torch.manual_seed(0)
    model = build_model(name, n_features=n_features, n_time=n_time, n_outputs=7, **hp)
    model.set_input_stats(np.full(n_features, 2.0), np.full(n_features, 3.0))
    model.eval()
    assert isinstance(model.head, torch.nn.Linear) and model.head.out_features == 7
    x = torch.randn(4, n_time, n_features) * 3 + 2
    with torch.no_grad():
        z = model.embed(x)
        assert z.shape == (4, model.embed_dim)
        torch.testing.assert_close(model.head(z), model(x))

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x[:2],), buf, opset_version=17, dynamo=False, input_names=["x"],
                          output_names=["y"], dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}})
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        xb = torch.randn(batch, n_time, n_features) * 3 + 2
        out = session.run(None, {"x": xb.numpy()})[0]
        assert out.shape == (batch, 7)
        with torch.no_grad():
            np.testing.assert_allclose(out, model(xb).numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["cnn1d", "mlp", "count_dnn", "presence_cnn", "object_cnn"])
def test_fingerprint_shaped_models_export(name):
    """time == 1 inputs (fingerprints, hand-crafted features) export too."""
    import onnxruntime as ort

    n_time, n_features = SHAPES["fingerprint"]
    model = build_model(name, n_features=n_features, n_time=n_time, n_outputs=3).eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(2, n_time, n_features),), buf, opset_version=17, dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "batch"}})
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    xb = torch.randn(3, n_time, n_features)
    np.testing.assert_allclose(session.run(None, {"x": xb.numpy()})[0], model(xb).detach().numpy(), atol=1e-4)


@pytest.mark.parametrize("variant", sorted(ZOO))
def test_model_quantizes_to_int8(variant, esp32, tmp_path):
    """Static QDQ int8 (U8 activations, S8 per-channel weights) runs and follows the float model."""
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Windows(CalibrationDataReader):
        def __init__(self, x):
            self.batches = iter([{"x": x[i:i + 8]} for i in range(0, len(x), 8)])

        def get_next(self):
            return next(self.batches, None)

    name, hp = ZOO[variant]
    torch.manual_seed(0)
    model = build_model(name, n_features=56, n_time=50, n_outputs=10, **hp)
    flat = esp32.x.reshape(-1, 56)
    model.set_input_stats(flat.mean(axis=0), flat.std(axis=0))
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.from_numpy(esp32.x[:2]),), str(tmp_path / "m.onnx"), opset_version=17,
                          dynamo=False, input_names=["x"], dynamic_axes={"x": {0: "batch"}})
        quant_pre_process(str(tmp_path / "m.onnx"), str(tmp_path / "pre.onnx"))
        quantize_static(str(tmp_path / "pre.onnx"), str(tmp_path / "q.onnx"), Windows(esp32.x[:64]),
                        quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, per_channel=True)
    session = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"])
    held = esp32.x[200:330]
    out = np.concatenate([session.run(None, {"x": held[:1]})[0], session.run(None, {"x": held[1:]})[0]])
    with torch.no_grad():
        ref = model(torch.from_numpy(held)).numpy()
    assert np.corrcoef(ref.ravel(), out.ravel())[0, 1] > 0.99


def test_build_model_rejects_unknown_names_and_hp():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet152", 10, 10, 2)
    with pytest.raises(ValueError, match="unknown hyper-parameters"):
        build_model("cnn1d", 10, 10, 2, chanels=(8,))


def test_replace_head_and_body_parameters():
    model = build_model("cnn_bilstm", 56, 50, 10)
    n_body = len(model.body_parameters())
    model.replace_head(3)
    assert model.head.out_features == 3 and model(torch.randn(2, 50, 56)).shape == (2, 3)
    assert len(model.body_parameters()) == n_body
    assert not {id(p) for p in model.head.parameters()} & {id(p) for p in model.body_parameters()}


def test_majority_vote_per_walk_through():
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.4], [0.4, 0.6]])
    groups = np.array(["a", "a", "a", "b", "b"])
    ids, vote = majority_vote(proba, groups)
    assert ids.tolist() == ["a", "b"]
    assert vote.tolist() == [1, 0]      # a: 2 of 3 windows say 1; b: a tie broken by summed probability


def test_ensemble_combine_is_the_mean_of_its_members():
    from edgecsi.training.models import combine

    torch.manual_seed(0)
    members = [build_model("count_dnn", 56, 50, 3).eval() for _ in range(3)]
    ens = combine(members)
    x = torch.randn(4, 50, 56)
    with torch.no_grad():
        torch.testing.assert_close(ens(x), torch.stack([m(x) for m in members]).mean(0))
        torch.testing.assert_close(ens.head(ens.embed(x)), ens(x))
    rebuilt = build_model("ensemble", 56, 50, 3, **ens.arch()["hp"])
    rebuilt.load_state_dict(ens.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), ens(x))


def test_ensemble_of_different_models_rebuilds_from_its_arch():
    from edgecsi.training.models import build_from_arch, combine

    torch.manual_seed(0)
    members = [build_model("motion_cnn", 12, 40, 3, downsample=2).eval(),
               build_model("motion_cnn", 12, 40, 3, downsample=2, center=False).eval(),
               build_model("activity_cnn", 12, 40, 3).eval()]
    ens = combine(members)
    x = torch.randn(4, 40, 12) * 3 + 5
    with torch.no_grad():
        torch.testing.assert_close(ens(x), torch.stack([m(x) for m in members]).mean(0))
        # centring alone changes the output: the same weights with and without it disagree
        twin = build_model("motion_cnn", 12, 40, 3, downsample=2, center=False).eval()
        twin.load_state_dict(members[0].state_dict())
        assert not torch.allclose(members[0](x), twin(x))
    rebuilt = build_from_arch(ens.arch())
    assert [m.name for m in rebuilt.members] == ["motion_cnn", "motion_cnn", "activity_cnn"]
    assert rebuilt.members[1].hp["center"] is False
    rebuilt.load_state_dict(ens.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(rebuilt.eval()(x), ens(x))
    with pytest.raises(ValueError, match="different shapes"):
        combine([members[0], build_model("motion_cnn", 12, 40, 4, downsample=2)])


def test_motion_cnn_columns_read_one_feature_block_of_a_shared_input():
    from edgecsi.training.models import build_from_arch, combine

    torch.manual_seed(0)
    amp = build_model("motion_cnn", 12, 40, 3, downsample=2, columns=[0, 5]).eval()
    conj = build_model("motion_cnn", 12, 40, 3, downsample=2, columns=[5, 12]).eval()
    assert amp.convs[0][0].in_channels == 2 * 5 and conj.convs[0][0].in_channels == 2 * 7
    x = torch.randn(4, 40, 12) * 3 + 5
    moved = x.clone()
    moved[:, :, 5:] = torch.randn(4, 40, 7) * 9
    with torch.no_grad():
        torch.testing.assert_close(amp(moved), amp(x))            # blind to the other block
        assert not torch.allclose(conj(moved), conj(x))
        ens = combine([amp, conj])
        torch.testing.assert_close(ens(x), (amp(x) + conj(x)) / 2)
    rebuilt = build_from_arch(ens.arch())
    assert [m.hp["columns"] for m in rebuilt.members] == [[0, 5], [5, 12]]
    for bad in ([5, 5], [0, 13], [-1, 4], "0,5", [0.5, 4], [0, 4, 8]):
        with pytest.raises(ValueError, match="columns"):
            build_model("motion_cnn", 12, 40, 3, columns=bad)


def test_standardise_per_domain_uses_each_groups_own_statistics():
    from edgecsi.training.datasets.base import WindowSet
    from edgecsi.training.domain_norm import standardise_per_domain

    rng = np.random.default_rng(0)
    day = np.repeat(["d1", "d2"], 20)
    x = rng.normal(size=(40, 3, 4)).astype(np.float32) + np.where(day == "d1", 5.0, -7.0)[:, None, None]
    ws = WindowSet(name="t", task="counting", x=x, y=np.zeros(40, np.float32), labels=[], domains={"day": day})
    out = standardise_per_domain(ws, by=("day",))
    for d in ("d1", "d2"):
        flat = out.x[day == d].reshape(-1, 4)
        np.testing.assert_allclose(flat.mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(flat.std(0), 1, atol=1e-4)
    assert ws.x[0, 0, 0] == x[0, 0, 0] and out.meta["per_domain_standardised"] == ["day"]
    with pytest.raises(ValueError, match="no domain column"):
        standardise_per_domain(ws, by=("room",))


# -- train / run directory -----------------------------------------------------------------------
def test_tiny_run_on_real_windows_beats_chance_and_reloads(esp32, tmp_path):
    from safetensors.torch import load_file

    from edgecsi.training.train import load_run, predict, train

    d1 = esp32.select(day="D1")
    result = train("activity", d1, "by:run:1+2+3+4+5+6+7+8:9+10", "activity_cnn", epochs=8, seed=0,
                   out_dir=tmp_path / "run", hp={"channels": (8, 16), "fc": 16}, val_group="sequence",
                   progress=False, lr=3e-3)
    run = tmp_path / "run"
    for name in ("config.json", "metrics.json", "model.safetensors", "confusion.png", "learning_curve.png",
                 "history.json"):
        assert (run / name).stat().st_size > 0, name
    config = json.loads((run / "config.json").read_text())
    assert config["format"] == "edgecsi-run/1" and config["task"] == "activity" and config["target"] == "class"
    assert config["labels"] == esp32.labels
    assert config["input"]["n_time"] == 50 and config["input"]["n_features"] == 56
    assert config["input"]["layout"].startswith("x[batch, time, feature]")
    assert len(config["normalisation"]["input_mean"]) == 56
    assert config["model"]["name"] == "activity_cnn" and config["model"]["hp"]["channels"] == [8, 16]
    # Validation came from training sequences only; the test sequences were never seen.
    test_idx = np.flatnonzero(np.isin(d1.domains["run"], [9, 10]))
    assert config["split"]["n_test"] == {result.config["split"]["name"]: len(test_idx)}
    assert "groups of 'sequence'" in config["split"]["val_source"]

    acc = json.loads((run / "metrics.json").read_text())["test"][config["split"]["name"]]["accuracy"]
    chance = np.bincount(d1.y[test_idx]).max() / len(test_idx)       # majority-class rate
    assert acc > chance + 0.1, (acc, chance)

    model, cfg = load_run(run)
    state = load_file(str(run / "model.safetensors"))
    assert cfg == config and not model.training
    torch.testing.assert_close(state["input_mean"], torch.tensor(config["normalisation"]["input_mean"],
                                                                  dtype=torch.float32))
    np.testing.assert_allclose(predict(model, d1.x[test_idx]), predict(result.model, d1.x[test_idx]), atol=1e-6)


def test_regression_outputs_real_units(shared_dir, tmp_path):
    """Counting: the target scaling is folded into the head, so outputs are people, not z-scores."""
    from edgecsi.training.datasets import load
    from edgecsi.training.train import load_run, predict, train

    ws = load("esp32_wical_crowd_2rooms_3days", root=shared_dir / "datasets", task="counting", rooms=["small"])
    result = train("counting", ws, "loo:day:3", "count_dnn", epochs=3, seed=0, out_dir=tmp_path / "count",
                   hp={"hidden": (32, 16)}, progress=False)
    test = json.loads((tmp_path / "count" / "metrics.json").read_text())["test"]["day=3"]
    test_idx = np.flatnonzero(ws.domains["day"] == 3)
    train_mean = ws.y[ws.domains["day"] != 3].mean()
    assert test["mae"] < np.abs(ws.y[test_idx] - train_mean).mean()     # better than predicting the mean
    model, config = load_run(tmp_path / "count")
    assert config["target"] == "value" and config["normalisation"]["target_folded_into_head"]
    pred = predict(model, ws.x[test_idx])[:, 0]
    assert 0 <= np.median(pred) <= 5 and abs(np.abs(pred - ws.y[test_idx]).mean() - test["mae"]) < 1e-4
    assert result.config["outputs"]["names"] == ["count"]


def test_train_rejects_a_task_the_set_does_not_hold(esp32, tmp_path):
    from edgecsi.training.train import train

    with pytest.raises(ValueError, match="holds task"):
        train("counting", esp32, "published", epochs=1, out_dir=tmp_path)


def test_split_specs(esp32):
    from edgecsi.training.split_spec import resolve_split

    assert resolve_split(esp32, None).name == "D1T->D1E"
    s = resolve_split(esp32, "by:run:1+2:3")
    assert set(esp32.domains["run"][s.train]) == {1, 2} and set(esp32.domains["run"][s.test]) == {3}
    s = resolve_split(esp32, "loo:day:D4")
    assert set(esp32.domains["day"][s.test]) == {"D4"} and "D4" not in set(esp32.domains["day"][s.train])
    s = resolve_split(esp32, "group-kfold:sequence:4:1")
    assert not set(esp32.domains["sequence"][s.train]) & set(esp32.domains["sequence"][s.test])
    with pytest.raises(ValueError, match="bad split spec"):
        resolve_split(esp32, "random")


# -- baselines ------------------------------------------------------------------------------------
def test_baselines_on_real_windows(esp32):
    from edgecsi.training.baselines import run_baseline
    from edgecsi.training.split_spec import resolve_split

    d1 = esp32.select(day="D1")
    split = resolve_split(d1, "by:run:1+2+3+4+5+6+7+8:9+10")
    for name, floor in (("svm", 0.6), ("knn", 0.4), ("kmeans", 0.2)):
        out = run_baseline(name, d1, split, val_group="sequence")
        assert out["test"][split.name]["accuracy"] > floor, (name, out["test"][split.name]["accuracy"])


def test_presence_threshold_separates_still_from_walking(esp32):
    """Median/MAD threshold fitted on still windows (seated: nobody moving) flags walking windows."""
    from edgecsi.training.baselines import PresenceThreshold

    still = np.isin(esp32.y, [esp32.labels.index("SEATED_RX"), esp32.labels.index("SEATED_TX")])
    walking = np.isin(esp32.y, [esp32.labels.index("WALKING_RX"), esp32.labels.index("WALKING_TX")])
    d1 = esp32.domains["day"] == "D1"
    fit = PresenceThreshold(k=3.0).fit(esp32.x[still & d1], np.zeros((still & d1).sum(), int))
    held = ~d1
    assert fit.predict(esp32.x[walking & held]).mean() > 0.8
    assert fit.predict(esp32.x[still & held]).mean() < 0.5


# -- CLI and captures ------------------------------------------------------------------------------
def test_cli_train_json(shared_dir, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from edgecsi.cli import app

    monkeypatch.setenv("EDGECSI_DATASETS", str(shared_dir / "datasets"))
    result = CliRunner().invoke(app, ["train", "--task", "localization", "--data", "esp32_wical_crowd_2rooms_3days",
                                      "--split", "published:medium:day1", "--model", "mlp", "--epochs", "2",
                                      "--hp", "hidden=[32]", "--out", str(tmp_path / "cli"), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    assert metrics["test"]["medium:day1"]["accuracy"] > 0.5              # 5 sections, chance 0.2
    assert (tmp_path / "cli" / "model.safetensors").exists()


def test_cli_combine_averages_runs_into_one_exportable_run(shared_dir, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from edgecsi.cli import app
    from edgecsi.training.combine_runs import combine_runs
    from edgecsi.training.datasets import load
    from edgecsi.training.split_spec import resolve_split
    from edgecsi.training.train import load_run, predict

    monkeypatch.setenv("EDGECSI_DATASETS", str(shared_dir / "datasets"))
    runner = CliRunner()

    def train(name, *extra):
        args = ["train", "--task", "localization", "--data", "esp32_wical_crowd_2rooms_3days", "--model", "mlp",
                "--epochs", "2", "--out", str(tmp_path / name), "--json", *extra]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output

    train("a", "--split", "published:medium:day1", "--hp", "hidden=[32]")
    train("b", "--split", "published:medium:day1", "--hp", "hidden=[16]", "--seed", "1")
    train("other", "--split", "published:medium:day2", "--hp", "hidden=[16]")
    result = runner.invoke(app, ["combine", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "ab"),
                                 "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.output)
    model, config = load_run(tmp_path / "ab")
    assert [m.hp["hidden"] for m in model.members] == [[32], [16]]
    text = runner.invoke(app, ["combine", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "ab2"),
                               "--no-evaluate"])      # the members' own test lines, no second reload
    assert "member a (mlp, seed 0) test medium:day1" in text.output
    assert "member b (mlp, seed 1) test medium:day1" in text.output
    # The combined run's test accuracy is that of the members' averaged outputs on the same windows.
    ws = load("esp32_wical_crowd_2rooms_3days", task="localization")
    test = resolve_split(ws, "published:medium:day1").test
    outs = np.mean([predict(load_run(tmp_path / r)[0], ws.x[test]) for r in ("a", "b")], axis=0)
    expected = float((outs.argmax(1) == ws.y[test]).mean())
    assert metrics["test"]["medium:day1"]["accuracy"] == pytest.approx(expected)
    from edgecsi.training.adapt.run import file_sha256

    assert [m["model_sha256"] for m in metrics["members"]] == [file_sha256(tmp_path / r / "model.safetensors")
                                                               for r in ("a", "b")]
    from edgecsi.export.export_run import export_run

    exported = export_run(tmp_path / "ab", tmp_path / "bundle", max_int8_drop=100.0)   # its own data, no --data
    assert (tmp_path / "bundle" / "manifest.json").exists() and exported.parity.metric_torch > 50.0
    with pytest.raises(ValueError, match="is one of the runs"):
        combine_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "a")
    refused = runner.invoke(app, ["combine", str(tmp_path / "a"), str(tmp_path / "other"), "--out",
                                  str(tmp_path / "bad")])
    assert isinstance(refused.exception, ValueError) and "'split' differs" in str(refused.exception)


def test_combine_does_not_measure_runs_trained_on_a_selection(shared_dir, tmp_path, monkeypatch):
    """A run trained on ws.select(...) records the whole set's name: reloading it would put other (and
    training) windows under the split's indices, so the combined run says it was not evaluated."""
    from edgecsi.training.combine_runs import combine_runs
    from edgecsi.training.datasets import load
    from edgecsi.training.train import train

    monkeypatch.setenv("EDGECSI_DATASETS", str(shared_dir / "datasets"))
    ws = load("esp32_wical_crowd_2rooms_3days", task="localization")
    medium = ws.select(room="medium")
    for seed in (0, 1):
        train("localization", medium, "kfold:5:0", "mlp", epochs=1, seed=seed, out_dir=tmp_path / str(seed),
              hp={"hidden": [8]}, progress=False)
    result = combine_runs([tmp_path / "0", tmp_path / "1"], tmp_path / "both")
    assert result.metrics["test"] == {} and "selection" in result.metrics["not_evaluated"]


def test_train_from_labelled_captures(tmp_path):
    """Captures labelled by a column (sidecar) go through read() and the gateway pipeline."""
    from edgecsi.demo import write_captures
    from edgecsi.training.train import load_run
    from edgecsi.training.train_captures import read_capture_list, train_from_captures

    paths = write_captures(tmp_path)["D1"][:8]              # e01..e04, both directions
    listing = tmp_path / "captures.csv"
    listing.write_text("path,label\n" + "\n".join(str(p.relative_to(tmp_path)) for p in paths) + "\n")
    items = read_capture_list(listing)
    assert [p for p, _ in items] == paths and all(label is None for _, label in items)
    result = train_from_captures("activity", items, out_dir=tmp_path / "run", epochs=1, progress=False,
                                 split="by:file:" + "+".join(p.name for p in paths[:6]) + ":"
                                 + "+".join(p.name for p in paths[6:]), hp={"channels": (8,), "fc": 8})
    model, config = load_run(tmp_path / "run")
    assert config["pipeline"]["window"]["length"] == 50 and config["pipeline"]["subcarriers"]
    assert config["input"]["n_features"] == model.n_features
    assert result.test_metrics["n"] > 0
    # The run records its captures, so `edgecsi export RUN` needs no held-out file: it cuts the same
    # held-out windows again (the torch accuracy on them equals the run's test accuracy).
    assert config["dataset"]["captures"]["formats"] == ["esp-csi"]
    from edgecsi.export.export_run import export_run

    exported = export_run(tmp_path / "run", tmp_path / "bundle", max_int8_drop=100.0)
    assert exported.parity.n_windows == result.test_metrics["n"]
    assert exported.parity.metric_torch == pytest.approx(100 * result.test_metrics["accuracy"])
    manifest = json.loads((tmp_path / "bundle" / "manifest.json").read_text())
    assert manifest["source_formats"] == ["esp-csi"]


# -- measurements (slow) ---------------------------------------------------------------------------
@pytest.mark.slow
def test_esp32s2_published_protocol(tmp_path):
    from edgecsi.training.experiments import run_protocol

    rows, _ = run_protocol("esp32s2_har", tmp_path)
    d1e = rows[0].raw["acc"]["activity_cnn"]
    assert np.mean(d1e) >= 0.82                   # published 85.1 %
    assert np.mean(rows[-1].raw["acc"]) >= 0.85   # 10-fold CV, published 88.7 %


@pytest.mark.slow
def test_wical_leave_one_day_out(tmp_path):
    from edgecsi.training.experiments import run_protocol

    rows, _ = run_protocol("wical", tmp_path)
    by = {(r.protocol, r.test): r.raw for r in rows}
    assert np.mean(by[("Wi-CaL small room, leave-one-day-out", "counting")]["medae"]) <= 0.5
    assert np.mean(by[("Wi-CaL medium room, leave-one-day-out", "counting")]["medae"]) <= 0.5
    assert np.mean(by[("Wi-CaL small room, leave-one-day-out", "section (5 classes)")]["accuracy"]) >= 0.85
    assert np.mean(by[("Wi-CaL medium room, leave-one-day-out", "section (5 classes)")]["accuracy"]) >= 0.95
    # Per-day standardised features (measured 0.27 / 0.38 MedAE, 96.4 / 98.4 %): floors a little below.
    assert np.mean(by[("Wi-CaL small room, leave-one-day-out", "counting")]["medae_perday"]) <= 0.35
    assert np.mean(by[("Wi-CaL medium room, leave-one-day-out", "counting")]["medae_perday"]) <= 0.45
    assert np.mean(by[("Wi-CaL small room, leave-one-day-out", "section (5 classes)")]["accuracy_perday"]) >= 0.93
    assert np.mean(by[("Wi-CaL medium room, leave-one-day-out", "section (5 classes)")]["accuracy_perday"]) >= 0.97


@pytest.mark.slow
def test_intel5300_person_disjoint(tmp_path):
    """The whole Intel protocol: about 50 minutes on 2 shared cores (13 trainings per fold, 5 folds, 2 rooms)."""
    from edgecsi.training.experiments import run_protocol

    rows, _ = run_protocol("intel5300_har", tmp_path)
    # Measured ~80 % (bedroom); the 90 % target is NOT met -- this floor guards against regressions.
    assert np.mean(rows[0].raw["acc"]) >= 0.72
    # motion_cnn measured 78.5 % bedroom, 76.2 % meeting room (activity_cnn 58 % there).
    assert np.mean(rows[0].raw["acc_motion"]) >= 0.72
    assert np.mean(rows[1].raw["acc_motion"]) >= 0.68
    # The chosen 12-member amplitude + conj ensemble measured 88.8 % bedroom, 78.6 % meeting room.
    assert np.mean(rows[0].raw["acc_amp_phase_ensemble"]) >= 0.84
    assert np.mean(rows[1].raw["acc_amp_phase_ensemble"]) >= 0.72


@pytest.mark.slow
def test_ivanet_and_csu(tmp_path):
    from edgecsi.training.experiments import run_protocol

    (iv,), _ = run_protocol("ivanet", tmp_path / "iv")
    assert iv.raw["acc"]["mlp"] >= 0.8
    (csu,), _ = run_protocol("csu_nexmon", tmp_path / "csu")
    assert csu.raw["mlp (x,y)"]["mean"] < csu.raw["centroid"]["mean"]
