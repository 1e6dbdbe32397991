"""int8 quantization with onnxruntime.quantization, chosen by measurement.

Static QDQ, per-channel weights, calibrated on real windows, after
``quant_pre_process``. Convolutions and Gemm/MatMul get static quantization;
LSTMs (which static QDQ leaves in float) then get dynamic quantization of the
LSTM op only: dynamic quantization of Conv is slower than float on CPU.
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
    activation_type: str  # "U8" or "S8" (static QDQ) or "dynamic" (MatMul/Gemm/LSTM, no Conv in the model)
    dynamic_lstm: bool
    latency_ms: float
    candidates: dict[str, float]  # variant -> p50 latency ms


def latency_ms(model_path: Path | bytes, x: np.ndarray, runs: int = 200) -> tuple[float, float]:
    """p50 and p99 latency at batch 1 on one thread."""
    session = make_session(model_path if isinstance(model_path, bytes) else str(model_path), threads=1)
    one = np.ascontiguousarray(x[:1], dtype=np.float32)
    for _ in range(20):
        run_model(session, one)
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        run_model(session, one)
        times[i] = time.perf_counter() - t0
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def _has_op(path: Path, op: str) -> bool:
    return any(n.op_type == op for n in onnx.load(str(path)).graph.node)


def quantize_model(fp32_path: str | Path, out_path: str | Path, calibration: np.ndarray, *,
                   max_calibration: int = 256, seed: int = 0) -> QuantizedModel:
    """Quantize ``fp32_path`` to ``out_path``; returns which variant won and why."""
    fp32_path, out_path = Path(fp32_path), Path(out_path)
    rng = np.random.default_rng(seed)
    if len(calibration) > max_calibration:
        calibration = calibration[np.sort(rng.choice(len(calibration), max_calibration, replace=False))]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        pre = tmp / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=False)
        lstm = _has_op(pre, "LSTM")
        candidates: dict[str, float] = {}
        paths: dict[str, Path] = {}
        for act in ("U8", "S8"):
            static = tmp / f"static_{act}.onnx"
            quantize_static(str(pre), str(static), WindowReader(calibration), quant_format=QuantFormat.QDQ,
                            activation_type=QuantType.QUInt8 if act == "U8" else QuantType.QInt8,
                            weight_type=QuantType.QInt8, per_channel=True,
                            calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"ActivationSymmetric": act == "S8"})
            final = static
            if lstm:
                final = tmp / f"final_{act}.onnx"
                quantize_dynamic(str(static), str(final), op_types_to_quantize=["LSTM"],
                                 weight_type=QuantType.QInt8)
            candidates[act] = latency_ms(final, calibration)[0]
            paths[act] = final
        if not _has_op(pre, "Conv"):
            # Fully connected models: dynamic quantization of MatMul/Gemm avoids QDQ
            # overhead on tiny layers; it competes on measured latency like the rest.
            dynamic = tmp / "dynamic.onnx"
            quantize_dynamic(str(pre), str(dynamic), op_types_to_quantize=["MatMul", "Gemm", "LSTM"],
                             weight_type=QuantType.QInt8, per_channel=True)
            candidates["dynamic"] = latency_ms(dynamic, calibration)[0]
            paths["dynamic"] = dynamic
        best = min(candidates, key=candidates.get)
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_bytes(paths[best].read_bytes())
    return QuantizedModel(path=out_path, activation_type=best, dynamic_lstm=lstm,
                          latency_ms=candidates[best], candidates=candidates)
