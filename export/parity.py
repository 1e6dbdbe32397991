"""torch vs onnxruntime fp32 vs onnxruntime int8 on held-out windows."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgecsi.edge.runtime import make_session, run_model
from edgecsi.export.onnx_export import ExportWrapper, torch_outputs
from edgecsi.export.quantize import compare_latency


@dataclass
class ParityReport:
    n_windows: int
    classification: bool
    max_abs_diff_fp32: float
    max_abs_diff_int8: float
    argmax_agreement_fp32: float
    argmax_agreement_int8: float
    metric_name: str  # "accuracy" (percent) or "mae"
    metric_torch: float
    metric_fp32: float
    metric_int8: float
    latency_ms: dict  # {"torch": {"p50","p99"}, "ort_fp32": ..., "ort_int8": ...}
    size_bytes: dict  # {"fp32": n, "int8": n}

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def int8_drop(self) -> float:
        """How much worse int8 is than torch, in the metric's unit (points or MAE)."""
        if self.classification:
            return self.metric_torch - self.metric_int8
        return self.metric_int8 - self.metric_torch


def _ort_outputs(model_path: Path, x: np.ndarray, batch: int = 256) -> np.ndarray:
    session = make_session(str(model_path), threads=1)
    first = session.get_outputs()[0].name
    return np.concatenate([run_model(session, x[i:i + batch])[first] for i in range(0, len(x), batch)])


def _torch_latency(model: nn.Module, x: np.ndarray, runs: int = 200) -> tuple[float, float]:
    wrapper = ExportWrapper(model).eval()
    one = torch.from_numpy(np.ascontiguousarray(x[:1], dtype=np.float32))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            for _ in range(20):
                wrapper(one)
            times = np.empty(runs)
            for i in range(runs):
                t0 = time.perf_counter()
                wrapper(one)
                times[i] = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 99) * 1e3)


def _metric(out: np.ndarray, y: np.ndarray, classification: bool) -> float:
    if classification:
        return float((out.argmax(1) == y).mean() * 100.0)
    return float(np.abs(out.reshape(len(y), -1) - y.reshape(len(y), -1)).mean())


def parity_report(model: nn.Module, fp32_path: str | Path, int8_path: str | Path, x: np.ndarray,
                  y: np.ndarray, *, classification: bool, latency_runs: int = 200) -> ParityReport:
    x = np.ascontiguousarray(x, dtype=np.float32)
    ref = torch_outputs(model, x)
    fp32 = _ort_outputs(Path(fp32_path), x)
    int8 = _ort_outputs(Path(int8_path), x)
    agree = (lambda a: float((a.argmax(1) == ref.argmax(1)).mean())) if classification else (lambda a: float("nan"))
    ort = compare_latency({"ort_fp32": Path(fp32_path), "ort_int8": Path(int8_path)}, x, latency_runs)
    lat = {"torch": dict(zip(("p50", "p99"), _torch_latency(model, x, latency_runs))),
           **{k: dict(zip(("p50", "p99"), v)) for k, v in ort.items()}}
    return ParityReport(
        n_windows=len(x), classification=classification,
        max_abs_diff_fp32=float(np.abs(fp32 - ref).max()) if len(x) else 0.0,
        max_abs_diff_int8=float(np.abs(int8 - ref).max()) if len(x) else 0.0,
        argmax_agreement_fp32=agree(fp32), argmax_agreement_int8=agree(int8),
        metric_name="accuracy" if classification else "mae",
        metric_torch=_metric(ref, y, classification), metric_fp32=_metric(fp32, y, classification),
        metric_int8=_metric(int8, y, classification), latency_ms=lat,
        size_bytes={"fp32": Path(fp32_path).stat().st_size, "int8": Path(int8_path).stat().st_size},
    )
