"""The repair generator G -> one self-contained ONNX file: ``y[batch, time, feature] -> x[batch, time, feature]``.

Batch and time are dynamic (G is fully convolutional); the file carries the corruption model it was trained
for and the input layout as metadata. The gateway runs it with ``edgecsi.edge.repair.OnnxRepair`` (numpy +
onnxruntime) before the classifier.

    path = export_repair_onnx(model, "runs/repair/repair.onnx", n_time=50)
    check_repair_onnx(model, path, y)          # max |torch - onnxruntime| over several batch/time sizes
"""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np
import onnx
import torch

from edgecsi.training.generative.repair_net import RepairNet

OPSET = 17
INPUT_NAME, OUTPUT_NAME = "y", "x"


def export_repair_onnx(model: RepairNet, path: str | Path, *, n_time: int = 50,
                       metadata: Mapping[str, object] | None = None) -> Path:
    """Export ``model`` to ``path`` (opset 17, TorchScript exporter, no external data); dims checked."""
    path = Path(path)
    model = model.eval()
    example = torch.randn(2, n_time, model.n_features).abs() * model.input_std + model.input_mean
    example[0, 3] = 0.0                                   # a lost packet in the example: both branches traced
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), buffer, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: "batch", 1: "time"}, OUTPUT_NAME: {0: "batch", 1: "time"}},
                          opset_version=OPSET, dynamo=False)
    proto = onnx.load_from_string(buffer.getvalue())
    props = {"edgecsi_kind": "repair", "input_layout": "y[batch, time, feature] float32, missing entries 0",
             "output_layout": "x[batch, time, feature] float32, repaired", "model": json.dumps(model.arch())}
    props.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in (metadata or {}).items()})
    onnx.helper.set_model_props(proto, props)
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 3 or not dims[0].dim_param or not dims[1].dim_param or dims[2].dim_value != model.n_features:
        raise ValueError(f"exported repair input dims are {[d.dim_param or d.dim_value for d in dims]}, expected "
                         f"[batch, time, {model.n_features}] with batch and time dynamic")
    onnx.checker.check_model(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(path), save_as_external_data=False)
    return path


def check_repair_onnx(model: RepairNet, path: str | Path, y: np.ndarray, *,
                      batches: tuple[int, ...] = (1, 3, 8), times: tuple[int, ...] | None = None) -> float:
    """Largest |torch - onnxruntime| of G on slices of ``y[w, t, f]`` at several batch sizes and time lengths."""
    import onnxruntime as ort

    from edgecsi.training.generative.unir import repair

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    n_time = y.shape[1]
    worst = 0.0
    for t in times or (n_time, max(8, n_time - 7)):
        for b in batches:
            part = np.ascontiguousarray(y[:b, :t], np.float32)
            got = sess.run([OUTPUT_NAME], {INPUT_NAME: part})[0]
            if got.shape != part.shape:
                raise ValueError(f"{path}: output shape {got.shape} for input {part.shape}")
            worst = max(worst, float(np.abs(got - repair(model, part)).max()))
    return worst


__all__ = ["export_repair_onnx", "check_repair_onnx", "INPUT_NAME", "OUTPUT_NAME"]
