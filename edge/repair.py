"""The optional repair step on the gateway: an exported UNIR generator run with onnxruntime (no torch).

    repair = OnnxRepair("bundle/repair.onnx")
    x = repair(y)        # y[window, time, feature] float32 with lost entries 0 -> repaired x, same shape

The file comes from ``edgecsi.training.generative.repair_onnx.export_repair_onnx`` (input ``y``, output
``x``, batch and time dynamic); ``metadata`` holds what it was trained for (corruption model, layout).
Imports: numpy and onnxruntime only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class OnnxRepair:
    """Callable ``y[window, time, feature] -> x`` backed by one onnxruntime session (1 thread by default)."""

    def __init__(self, path: str | Path, *, threads: int = 1) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("edgecsi_kind") != "repair":
            raise ValueError(f"{self.path}: not a repair model (edgecsi_kind={meta.get('edgecsi_kind')!r})")
        self.metadata = dict(meta)
        shape = self.session.get_inputs()[0].shape
        self.n_features = int(shape[2])

    def __call__(self, y: np.ndarray) -> np.ndarray:
        y = np.ascontiguousarray(y, np.float32)
        if y.ndim != 3 or y.shape[2] != self.n_features:
            raise ValueError(f"{self.path}: expected y[window, time, {self.n_features}], got shape {y.shape}")
        return self.session.run(["x"], {"y": y})[0]

    def corruption(self) -> dict:
        """The corruption model the generator was trained for (empty if the file does not say)."""
        raw = self.metadata.get("corruption")
        return json.loads(raw) if raw else {}


__all__ = ["OnnxRepair"]
