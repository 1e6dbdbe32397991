"""int8 quantization with onnxruntime.quantization, chosen by measurement.

Static QDQ, per-channel weights, calibrated on real windows, after
``quant_pre_process``. Convolutions and Gemm/MatMul get static quantization;
In recurrent models static QDQ covers the convolutional front only and MatMul/Gemm/LSTM get
dynamic quantization: dynamic quantization of Conv is slower than float on CPU.
Both activation types (U8S8 and S8S8) are tried and the faster one that keeps
accuracy is kept.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_dynamic, quantize_static)
from onnxruntime.quantization.shape_inference import quant_pre_process

from edgecsi.edge.runtime import make_session, run_model


# Ops that get static QDQ in a recurrent model (the rest: dynamic MatMul/Gemm/LSTM).
RECURRENT_STATIC_OPS = ("Conv", "MaxPool", "Relu")
# The "U8-layers-only" variant: weighted layers and what sits between them, no elementwise arithmetic.
LAYER_OPS = ("Conv", "Gemm", "MatMul", "Relu", "MaxPool")


class WindowReader(CalibrationDataReader):
    """Feeds real windows ``x[window, time, feature]`` one at a time to the calibrator."""

    def __init__(self, x: np.ndarray, input_name: str = "x") -> None:
        self._x = np.ascontiguousarray(x, dtype=np.float32)
        self._name = input_name
        self._i = 0

    def get_next(self):
        if self._i >= len(self._x):
            return None
        item = {self._name: self._x[self._i:self._i + 1]}
        self._i += 1
        return item

    def rewind(self) -> None:
        self._i = 0


@dataclass
class QuantizedModel:
    path: Path
    activation_type: str  # static QDQ "U8", "S8", "U8-percentile", "U8-float-head", "U8-layers-only",
                          # or "dynamic[-per-tensor]" (MatMul/Gemm/LSTM)
    dynamic_lstm: bool
    latency_ms: float
    candidates: dict[str, float]  # variant -> p50 latency ms (the variants that followed fp32 best)
    agreement: dict[str, float]  # variant -> agreement with the fp32 model on training-side windows


def compare_latency(models: dict[str, Path | bytes], x: np.ndarray, runs: int = 200,
                    rounds: int = 10) -> dict[str, tuple[float, float]]:
    """p50 and p99 latency (ms) at batch 1 on one thread of several models, measured
    interleaved: ``rounds`` rounds of ``runs / rounds`` calls per model, so a model
    measured while the machine was busy is not compared with one measured while it was idle
    (on a tiny model the two differ by less than that drift)."""
    sessions = {k: make_session(m if isinstance(m, bytes) else str(m), threads=1) for k, m in models.items()}
    one = np.ascontiguousarray(x[:1], dtype=np.float32)
    for session in sessions.values():
        for _ in range(20):
            run_model(session, one)
    rounds = max(1, min(rounds, runs))
    per_round = max(1, runs // rounds)
    times = {k: [] for k in sessions}
    for _ in range(rounds):
        for k, session in sessions.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                run_model(session, one)
                times[k].append(time.perf_counter() - t0)
    return {k: (float(np.percentile(t, 50) * 1e3), float(np.percentile(t, 99) * 1e3)) for k, t in times.items()}


def _only_used_opsets(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop opset imports of domains no node uses. ``quant_pre_process`` saves an onnxruntime-optimised
    model that imports every domain this onnxruntime knows (ai.onnx.ml 5, training, nchwc ...); an
    older runtime refuses a model stamped with an opset newer than its own even when no node uses it
    (measured: onnxruntime 1.17 refused every int8 bundle over ``ai.onnx.ml`` 5)."""
    used = {n.domain for n in model.graph.node} | {""}
    keep = [o for o in model.opset_import if o.domain in used or (o.domain == "ai.onnx" and "" in used)]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    return model


def _last_node(path: Path, ops: tuple[str, ...]) -> list[str]:
    names = [n.name for n in onnx.load(str(path)).graph.node if n.op_type in ops]
    return names[-1:]


def _has_op(path: Path, op: str) -> bool:
    return any(n.op_type == op for n in onnx.load(str(path)).graph.node)


def _first_output(path: Path, x: np.ndarray) -> np.ndarray:
    session = make_session(str(path), threads=1)
    name = session.get_outputs()[0].name
    return np.concatenate([run_model(session, x[i:i + 256])[name] for i in range(0, len(x), 256)])


def _agreement(reference: np.ndarray, out: np.ndarray) -> float:
    """How closely a quantized model follows the float one on the same (training-side) windows:
    argmax agreement for several outputs (classes), else 1 - normalised mean abs error."""
    if reference.ndim == 2 and reference.shape[1] > 1:
        return float((reference.argmax(1) == out.argmax(1)).mean())
    scale = float(np.abs(reference).mean()) or 1.0
    return 1.0 - float(np.abs(reference - out).mean()) / scale


def quantize_model(fp32_path: str | Path, out_path: str | Path, calibration: np.ndarray, *,
                   max_calibration: int = 256, seed: int = 0, tolerance: float = 0.001) -> QuantizedModel:
    """Quantize ``fp32_path`` to ``out_path``; returns which variant won and why.

    ``calibration`` are real training-side windows: up to ``max_calibration`` of them
    calibrate the activation ranges and all of them check how closely each variant follows
    the float model. The variant that follows it best wins; among those within
    ``tolerance`` of the best, the fastest (p50 at batch 1, one thread).
    """
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    rng = np.random.default_rng(seed)
    check = np.ascontiguousarray(calibration, dtype=np.float32)
    if len(calibration) > max_calibration:
        calibration = calibration[np.sort(rng.choice(len(calibration), max_calibration, replace=False))]
    reference = _first_output(fp32_path, check)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pre = tmp / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=False)
        lstm = _has_op(pre, "LSTM")
        paths: dict[str, Path] = {}
        # The last fully connected layer (the head) decides the class from a few logits that
        # may sit close together; it holds a tiny share of the weights, so a variant keeps it
        # in float (measured on the ESP32-S2 activity CNN: held-out argmax agreement 0.978 -> 1.0).
        head = _last_node(pre, ("Gemm", "MatMul"))
        # (name, activation type, calibration, nodes kept float, op types quantized: None = the quantizer's own)
        variants = [("U8", QuantType.QUInt8, CalibrationMethod.MinMax, [], None),
                    ("S8", QuantType.QInt8, CalibrationMethod.MinMax, [], None),
                    ("U8-percentile", QuantType.QUInt8, CalibrationMethod.Percentile, [], None),
                    ("U8-float-head", QuantType.QUInt8, CalibrationMethod.MinMax, head, None)]
        if not lstm:
            # Only the layers that hold the weights in int8; the arithmetic between them (per-window
            # centring and difference, the spectrogram's square, sum, sqrt and log) stays float. Plain
            # U8 also quantizes that arithmetic, and the squared DFT outputs span a range one 8-bit
            # scale per tensor cannot hold: the weak Doppler bins round to zero. Measured on Intel
            # bedroom motion_cnn runs (amplitude + conj input): argmax agreement with fp32 of U8 0.66
            # (centred amplitude member) / 0.70 (centred conj) -> 0.99 / 1.00; leaving only the
            # magnitude chain (Mul, ReduceSum, Add, Sqrt, Log) float recovers the same. A 12-member
            # ensemble: int8 accuracy on the held-out person 80.5 % (the best other variant) -> 82.9 %
            # (fp32 83.3 %).
            variants.append(("U8-layers-only", QuantType.QUInt8, CalibrationMethod.MinMax, [], LAYER_OPS))
        for name, activation, method, exclude, op_types in variants:
            static = tmp / f"static_{name}.onnx"
            # Recurrent models: static QDQ on the convolutional front only, then dynamic quantization
            # of MatMul/Gemm/LSTM. Measured on the ESP32-S2 CNN-BiLSTM against static QDQ everywhere +
            # dynamic LSTM: same size (32 % of fp32), held-out accuracy equal to fp32 instead of 2 windows
            # lower, as fast, and it loads in onnxruntime 1.17 (a DequantizeLinear feeding the
            # DynamicQuantizeLSTM aborts every onnxruntime before 1.31).
            op_types = RECURRENT_STATIC_OPS if lstm else op_types
            ops = dict(op_types_to_quantize=list(op_types)) if op_types else {}
            quantize_static(str(pre), str(static), WindowReader(calibration), quant_format=QuantFormat.QDQ,
                            activation_type=activation, weight_type=QuantType.QInt8, per_channel=True,
                            calibrate_method=method, nodes_to_exclude=exclude,
                            extra_options={"ActivationSymmetric": activation == QuantType.QInt8,
                                           "CalibPercentile": 99.99}, **ops)
            final = static
            if lstm:
                final = tmp / f"final_{name}.onnx"
                quantize_dynamic(str(static), str(final), op_types_to_quantize=["MatMul", "Gemm", "LSTM"],
                                 weight_type=QuantType.QInt8, per_channel=True)
            paths[name] = final
        if not _has_op(pre, "Conv"):
            # Fully connected models: dynamic quantization of MatMul/Gemm avoids QDQ
            # overhead on tiny layers; per-tensor weights let ORT fuse each layer into one
            # DynamicQuantizeMatMul with a single scale (measured faster at batch 1 on the
            # iVANET MLP), per-channel keeps more accuracy where a layer's rows differ.
            for name, per_channel in (("dynamic", True), ("dynamic-per-tensor", False)):
                dynamic = tmp / f"{name}.onnx"
                quantize_dynamic(str(pre), str(dynamic), op_types_to_quantize=["MatMul", "Gemm", "LSTM"],
                                 weight_type=QuantType.QInt8, per_channel=per_channel)
                paths[name] = dynamic
        agreement = {name: _agreement(reference, _first_output(path, check)) for name, path in paths.items()}
        top = max(agreement.values())
        close = [name for name in paths if agreement[name] >= top - tolerance]
        candidates = {name: p50 for name, (p50, _) in
                      compare_latency({name: paths[name] for name in close}, calibration, runs=400).items()}
        best = min(candidates, key=candidates.get)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_bytes(_only_used_opsets(onnx.load(str(paths[best]))).SerializeToString())
    return QuantizedModel(path=out_path, activation_type=best, dynamic_lstm=lstm,
                          latency_ms=candidates[best], candidates=candidates, agreement=agreement)
