"""Export: ONNX dims, int8 parity on real held-out windows, bundle contract, signatures and tampering."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest

from bundle_factory import make_bundle
from edgecsi.edge.bundle import BundleError, load_bundle, load_public_keys
from edgecsi.edge.runtime import make_session, run_model
from edgecsi.export.signing import generate_keypair, sign_bundle


@pytest.fixture(scope="module")
def har_bundle(tmp_path_factory, shared_dir):
    from edgecsi.export.export_run import export_run
    from edgecsi.training.train import train

    tmp = tmp_path_factory.mktemp("export")
    train("activity", "esp32s2_temporal_har_geotecinit", "published", "activity_cnn", epochs=4, seed=0,
          out_dir=tmp / "run", progress=False)
    result = export_run(tmp / "run", tmp / "bundle", bundle_version=100)
    return result


def test_export_real_run_parity_size_and_dims(har_bundle):
    bundle_dir = har_bundle.bundle
    p = har_bundle.parity
    assert har_bundle.int8_used
    assert p.n_windows == 101  # D1E: e09 + e10, the published held-out split
    assert p.max_abs_diff_fp32 < 1e-4
    assert p.metric_torch - p.metric_int8 <= 1.0  # the acceptance limit, on real held-out windows
    assert p.argmax_agreement_int8 >= 0.95
    assert p.size_bytes["int8"] <= 0.35 * p.size_bytes["fp32"]
    assert not list(bundle_dir.glob("*.data"))  # one self-contained file, no external-data sidecar
    # Only the opsets its nodes use: an older onnxruntime refuses a model stamped with a newer opset of
    # any domain (1.17 refused ai.onnx.ml 5, imported by quant_pre_process but used by no node).
    int8 = onnx.load(str(bundle_dir / "model.onnx"))
    assert {(o.domain or "ai.onnx") for o in int8.opset_import} <= {"ai.onnx", "com.microsoft"}
    assert json.loads((bundle_dir / "manifest.json").read_text())["min_onnxruntime"] == "1.17.0"

    proto = onnx.load(str(bundle_dir / "model.fp32.onnx"))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[1].dim_param  # batch and time are dynamic (activity CNN pools over time)
    meta = {m.key: m.value for m in proto.metadata_props}
    assert json.loads(meta["edgecsi.labels"])[0] == "SEATED_RX"
    bundle = load_bundle(bundle_dir)
    session = make_session(bundle.model_bytes)
    for batch in (1, 3, 17):
        for n_time in (50, 80):
            out = run_model(session, np.zeros((batch, n_time, 56), np.float32) + 30)
            assert out["logits"].shape == (batch, 10)
            assert out["embedding"].shape[0] == batch


def test_bundle_info_cli_json(har_bundle):
    from typer.testing import CliRunner

    from edgecsi.cli import app

    result = CliRunner().invoke(app, ["bundle", "info", str(har_bundle.bundle), "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["task"] == "activity" and info["precision"] == "int8" and info["bundle_version"] == 100
    assert set(info["files"]) == {"model.onnx", "model.fp32.onnx", "parity.json"}
    text = CliRunner().invoke(app, ["bundle", "info", str(har_bundle.bundle)])
    assert text.exit_code == 0, text.output
    assert "held-out accuracy" in text.output and "model.onnx" in text.output and "version 100" in text.output


@pytest.fixture(scope="module")
def signed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("signed")
    bundle = make_bundle(tmp / "bundle", version=5)
    generate_keypair(tmp / "key.pem", tmp / "key.pub")
    sign_bundle(bundle, tmp / "key.pem")
    return tmp, bundle, load_public_keys([tmp / "key.pub"])


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def test_signed_bundle_verifies(signed):
    tmp, bundle, keys = signed
    loaded = load_bundle(bundle, trusted_keys=keys, require_signature=True)
    assert loaded.signed_by == keys[0].hex() and loaded.version == 5


def test_one_changed_byte_is_refused(signed, tmp_path):
    _, bundle, keys = signed
    b = _copy(bundle, tmp_path / "b")
    data = bytearray((b / "model.onnx").read_bytes())
    data[100] ^= 0x01
    (b / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model\.onnx: sha256"):
        load_bundle(b, trusted_keys=keys)


def test_replaced_manifest_is_refused(signed, tmp_path):
    _, bundle, keys = signed
    b = _copy(bundle, tmp_path / "b")
    manifest = json.loads((b / "manifest.json").read_text())
    manifest["labels"] = ["hacked", "labels"]
    (b / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="signature does not match"):
        load_bundle(b, trusted_keys=keys)
    (b / "manifest.sig").unlink()
    with pytest.raises(BundleError, match="missing; this gateway only loads signed bundles"):
        load_bundle(b, trusted_keys=keys)


def test_older_version_is_refused(signed):
    _, bundle, keys = signed
    with pytest.raises(BundleError, match="older than the running version 6"):
        load_bundle(bundle, trusted_keys=keys, min_version=6)
    with pytest.raises(BundleError, match="needs onnxruntime"):
        load_bundle(bundle, onnxruntime_version="1.10.0")


@pytest.mark.parametrize("name", ["mlp", "count_dnn", "activity_cnn"])
def test_export_folds_batch_norm_and_keeps_outputs(name, tmp_path):
    """No float BatchNormalization node is left in the exported graph (it blocked int8 fusion of
    the fully connected models); outputs still equal the unfolded torch model, which is untouched."""
    import torch

    from edgecsi.export.onnx_export import export_onnx
    from edgecsi.training.models import build_model

    torch.manual_seed(0)
    model = build_model(name, n_features=12, n_time=8, n_outputs=3)
    model.train()
    for _ in range(3):  # non-trivial running statistics
        model(torch.randn(16, 8, 12) * 2 + 1)
    model.eval()
    n_bn = sum(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules())
    assert n_bn > 0
    path = export_onnx(model, n_time=8, n_features=12, path=tmp_path / "m.onnx")
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "BatchNormalization" not in ops
    assert sum(isinstance(m, torch.nn.BatchNorm1d) for m in model.modules()) == n_bn
    x = (np.random.default_rng(1).normal(size=(5, 8, 12)) * 2 + 1).astype(np.float32)
    out = run_model(make_session(str(path)), x)["logits"]
    with torch.no_grad():
        np.testing.assert_allclose(out, model(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("case", ["time-axis-bn", "no-affine"])
def test_export_leaves_batch_norms_it_cannot_fold(case, tmp_path):
    """A BatchNorm1d over another axis than the Linear's outputs (3-D input), or one without affine
    parameters, is exported as it is: outputs equal torch."""
    import torch
    from torch import nn

    from edgecsi.export.onnx_export import export_onnx

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            # [batch, time=5, feature=4] -> Linear over features (5 outputs) -> BatchNorm over time (5).
            bn = nn.BatchNorm1d(5, affine=case != "no-affine")
            self.body = nn.Sequential(nn.Linear(4, 5), bn)
            self.out = nn.Linear(25, 2)

        def forward(self, x):
            return self.out(self.body(x).flatten(1))

    torch.manual_seed(0)
    net = Net()
    net.train()
    for _ in range(3):
        net(torch.randn(8, 5, 4) * 3 + 1)
    net.eval()
    path = export_onnx(net, n_time=5, n_features=4, path=tmp_path / "m.onnx")
    x = (np.random.default_rng(0).normal(size=(6, 5, 4)) * 3 + 1).astype(np.float32)
    out = run_model(make_session(str(path)), x)["logits"]
    with torch.no_grad():
        np.testing.assert_allclose(out, net(torch.from_numpy(x)).numpy(), rtol=1e-4, atol=1e-4)


def test_quantized_bilstm_states_the_runtime_it_needs(tmp_path):
    """A DequantizeLinear feeding DynamicQuantizeLSTM aborts onnxruntime 1.17-1.30 at session creation
    (measured): such a graph declares 1.31.1. The recurrent int8 graph quantize_model writes (static
    QDQ on the convolutional front, dynamic MatMul/Gemm/LSTM) has none and keeps 1.17.0, as do
    convolutional ones; every int8 file declares only the opsets it uses."""
    import torch
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from edgecsi.export.onnx_export import export_onnx, required_onnxruntime
    from edgecsi.export.quantize import WindowReader, quantize_model
    from edgecsi.training.models import build_model

    x = np.random.default_rng(0).normal(size=(32, 20, 8)).astype(np.float32)
    needs, protos = {}, {}
    for name in ("cnn_bilstm", "cnn1d"):
        torch.manual_seed(0)
        model = build_model(name, n_features=8, n_time=20, n_outputs=3, **({"segments": 4} if name == "cnn_bilstm" else {}))
        fp32 = export_onnx(model.eval(), n_time=20, n_features=8, path=tmp_path / f"{name}.onnx",
                           dynamic_time=name == "cnn_bilstm")
        q = quantize_model(fp32, tmp_path / f"{name}.int8.onnx", x)
        protos[name] = proto = onnx.load(str(q.path))
        assert {(o.domain or "ai.onnx") for o in proto.opset_import} <= {"ai.onnx", "com.microsoft"}
        needs[name] = required_onnxruntime(proto)
    assert needs == {"cnn_bilstm": "1.17.0", "cnn1d": "1.17.0"}
    ops = {(n.domain, n.op_type) for n in protos["cnn_bilstm"].graph.node}
    assert ("com.microsoft", "DynamicQuantizeLSTM") in ops and ("", "DequantizeLinear") in ops
    # The graph that aborts old runtimes: static QDQ everywhere, then dynamic LSTM.
    quant_pre_process(str(tmp_path / "cnn_bilstm.onnx"), str(tmp_path / "pre.onnx"))
    quantize_static(str(tmp_path / "pre.onnx"), str(tmp_path / "static.onnx"), WindowReader(x),
                    quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    per_channel=True)
    quantize_dynamic(str(tmp_path / "static.onnx"), str(tmp_path / "both.onnx"), op_types_to_quantize=["LSTM"],
                     weight_type=QuantType.QInt8)
    assert required_onnxruntime(onnx.load(str(tmp_path / "both.onnx"))) == "1.31.1"


def test_int8_keeps_the_arithmetic_between_layers_float(shared_dir, tmp_path):
    """A motion_cnn member of the Intel ensemble (amplitude beside conj products, per-window centring, a
    fixed-DFT spectrogram): plain U8 also quantizes the arithmetic between the layers, and the squared DFT
    outputs span more than one 8-bit scale per tensor holds (measured: argmax agreement with fp32 0.66
    when fully trained). The layers-only variant keeps that arithmetic float and wins on agreement."""
    from edgecsi.export.onnx_export import export_onnx
    from edgecsi.export.quantize import LAYER_OPS, quantize_model
    from edgecsi.training.datasets import load
    from edgecsi.training.datasets import splits as S
    from edgecsi.training.train import train

    ws = load("intel5300_har_2env_5person", root=shared_dir / "datasets", representation="amplitude+conj",
              rooms=["bedroom"])
    split = S.leave_one_out(ws, "person")[0]
    run = train("activity", ws, split, "motion_cnn", epochs=6, seed=0, out_dir=tmp_path / "run", progress=False,
                hp={"downsample": 4, "scale": False, "spectrum": 6, "columns": [0, 90]})
    fp32 = export_onnx(run.model.eval(), n_time=200, n_features=210, path=tmp_path / "m.onnx")
    q = quantize_model(fp32, tmp_path / "m.int8.onnx", ws.x[split.train[::4]])
    assert q.activation_type == "U8-layers-only"
    # measured after 6 epochs: U8 0.75, U8-percentile 0.81, layers-only 0.90 (fully trained: 0.66 -> 0.99)
    assert q.agreement["U8-layers-only"] >= 0.85 and q.agreement["U8"] <= q.agreement["U8-layers-only"] - 0.1
    proto = onnx.load(str(q.path))
    produced_by = {o: node.op_type for node in proto.graph.node for o in node.output}
    consumers: dict[str, set] = {}
    for node in proto.graph.node:
        for i in node.input:
            consumers.setdefault(i, set()).add(node.op_type)
    dq_of = {node.input[0]: node.output[0] for node in proto.graph.node if node.op_type == "DequantizeLinear"}
    quantized = {node.input[0]: dq_of[node.output[0]] for node in proto.graph.node if node.op_type == "QuantizeLinear"}
    assert quantized
    for tensor, dequantized in quantized.items():      # only what a layer reads or writes is quantized
        assert produced_by.get(tensor) in LAYER_OPS or consumers[dequantized] & set(LAYER_OPS), tensor
        # the spectrogram's magnitude chain stays float (plain U8 quantizes it)
        assert produced_by.get(tensor) not in ("Mul", "ReduceSum", "Add", "Sqrt", "Log"), tensor
