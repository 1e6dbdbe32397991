"""torch model -> one self-contained ONNX file with dynamic batch (and time) dims.

The exported graph has input ``x[batch, time, feature]`` and outputs ``logits``
(or the regression output) and, when the model has ``embed``/``head``,
``embedding``: the on-gateway calibration fits a small head on it.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from pathlib import Path
from typing import Mapping

import numpy as np
import onnx
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

# Opset 17 loads in every onnxruntime from 1.14 on; we state 1.17 as the minimum
# runtime (the oldest with cp311 aarch64 wheels we test against).
OPSET = 17
MIN_ONNXRUNTIME = "1.17.0"
# Measured 2026-12-06 with the pip wheels: an int8 graph where a DequantizeLinear feeds the contrib
# DynamicQuantizeLSTM (static QDQ everywhere + dynamic LSTM) aborts session creation (a C++ assertion, the process
# dies) in onnxruntime 1.17.0 through 1.30.0 at any optimisation level above "disabled"; 1.31.1 and
# 1.32.0 load and run it. Every other int8 and fp32 graph of the zoo loads and runs in 1.17.0.
MIN_ONNXRUNTIME_QDQ_LSTM = "1.31.1"


def required_onnxruntime(model: onnx.ModelProto) -> str:
    """The oldest onnxruntime known to load ``model`` (see the measurements above): the abort needs a
    DequantizeLinear output reaching a DynamicQuantizeLSTM input through shape-only ops (the graph
    ``edgecsi.export.quantize`` writes for recurrent models no longer has one)."""
    producer = {out: n for n in model.graph.node for out in n.output}
    passthrough = {"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten", "Identity"}
    for node in model.graph.node:
        if node.domain != "com.microsoft" or node.op_type != "DynamicQuantizeLSTM":
            continue
        src = producer.get(node.input[0])
        while src is not None and src.op_type in passthrough:
            src = producer.get(src.input[0])
        if src is not None and src.op_type == "DequantizeLinear":
            return MIN_ONNXRUNTIME_QDQ_LSTM
    return MIN_ONNXRUNTIME


class ExportWrapper(nn.Module):
    """Returns (logits, embedding) when the model exposes embed() and head."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.with_embedding = hasattr(model, "embed") and hasattr(model, "head")

    def forward(self, x: torch.Tensor):
        if self.with_embedding:
            z = self.model.embed(x)
            return self.model.head(z), z
        return self.model(x)


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """An eval-mode copy with every Linear/Conv1d -> BatchNorm1d pair inside an nn.Sequential
    folded into the Linear/Conv (the BatchNorm becomes Identity).

    Why: the TorchScript exporter folds BatchNorm after Conv but not after Linear, so
    fully connected models kept two float BatchNormalization nodes; static QDQ leaves
    them in float and dynamic quantization cannot fuse through them. At batch 1 on a
    small MLP each extra node costs about as much as a whole int8 GEMV, which made int8
    no faster than fp32. Folding is exact up to float rounding; ``model`` is untouched.
    """
    folded = copy.deepcopy(model).eval()
    for module in folded.modules():
        if not isinstance(module, nn.Sequential):
            continue
        for i in range(len(module) - 1):
            layer, bn = module[i], module[i + 1]
            if not isinstance(bn, nn.BatchNorm1d) or not bn.track_running_stats or not bn.affine:
                continue
            if isinstance(layer, nn.Linear) and layer.out_features == bn.num_features:
                module[i] = fuse_linear_bn_eval(layer, bn)
            elif isinstance(layer, nn.Conv1d) and layer.out_channels == bn.num_features:
                module[i] = fuse_conv_bn_eval(layer, bn)
            else:
                continue
            module[i + 1] = nn.Identity()
    return folded


def _folded_if_equal(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """``fold_batch_norms(model)`` when it gives the same outputs on ``example``, else ``model``: a
    Linear followed by a BatchNorm1d over another axis (3-D input) must not be folded."""
    folded = fold_batch_norms(model)
    with torch.no_grad():
        ref, got = ExportWrapper(model).eval()(example), ExportWrapper(folded).eval()(example)
    ref, got = (ref, got) if isinstance(ref, tuple) else ((ref,), (got,))
    same = all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(ref, got))
    return folded if same else model


def output_names(model: nn.Module) -> list[str]:
    return ["logits", "embedding"] if ExportWrapper(model).with_embedding else ["logits"]


def export_onnx(
    model: nn.Module,
    *,
    n_time: int,
    n_features: int,
    path: str | Path,
    dynamic_time: bool = False,
    metadata: Mapping[str, object] | None = None,
) -> Path:
    """Export to ``path`` and check the dims in the file are really dynamic."""
    path = Path(path)
    # An example batch of 2 so no exporter can specialise the batch dim to 1.
    example = torch.randn(2, n_time, n_features)
    wrapper = ExportWrapper(_folded_if_equal(model, example)).eval()
    outputs = output_names(model)
    axes = {"x": {0: "batch", **({1: "time"} if dynamic_time else {})}}
    for name in outputs:
        axes[name] = {0: "batch"}
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The TorchScript exporter writes one self-contained file and handles LSTM
        # with dynamic time reliably at opset 17.
        torch.onnx.export(wrapper, (example,), buffer, input_names=["x"], output_names=outputs,
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False)
    proto = onnx.load_from_string(buffer.getvalue())
    if metadata:
        onnx.helper.set_model_props(proto, {k: v if isinstance(v, str) else json.dumps(v)
                                            for k, v in metadata.items()})
    check_input_dims(proto, dynamic_time=dynamic_time, n_time=n_time, n_features=n_features)
    onnx.checker.check_model(proto)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(proto, str(path), save_as_external_data=False)
    return path


def check_input_dims(proto: onnx.ModelProto, *, dynamic_time: bool, n_time: int, n_features: int) -> None:
    """Exporters silently fix dims; read them back and fail loudly if they did."""
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 3:
        raise ValueError(f"exported input has {len(dims)} dims, expected [batch, time, feature]")
    if not dims[0].dim_param:
        raise ValueError(f"exported batch dim was fixed to {dims[0].dim_value}")
    if dynamic_time and not dims[1].dim_param:
        raise ValueError(f"exported time dim was fixed to {dims[1].dim_value}")
    if not dynamic_time and dims[1].dim_value != n_time:
        raise ValueError(f"exported time dim is {dims[1].dim_value}, expected {n_time}")
    if dims[2].dim_value != n_features:
        raise ValueError(f"exported feature dim is {dims[2].dim_value}, expected {n_features}")


def read_metadata(path: str | Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def has_recurrent(model: nn.Module) -> bool:
    return any(isinstance(m, (nn.LSTM, nn.GRU, nn.RNN)) for m in model.modules())


def torch_outputs(model: nn.Module, x: np.ndarray, batch: int = 256) -> np.ndarray:
    wrapper = ExportWrapper(model).eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out = wrapper(torch.from_numpy(np.ascontiguousarray(x[i:i + batch], dtype=np.float32)))
            outs.append((out[0] if isinstance(out, tuple) else out).numpy())
    return np.concatenate(outs) if outs else np.zeros((0,))
