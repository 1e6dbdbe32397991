"""The optional repair step on the gateway: an exported UNIR generator run with onnxruntime (no torch).

    repair = OnnxRepair("bundle/repair.onnx")
    x = repair(y)        # y[window, time, feature] float32 with lost entries 0 -> repaired x, same shape

The file comes from ``edgecsi.training.generative.repair_onnx.export_repair_onnx`` (input ``y``, output
``x``, batch and time dynamic); ``metadata`` holds what it was trained for (corruption model, layout).
Imports: numpy and onnxruntime only.

In the agent: a bundle exported with ``edgecsi export RUN --repair repair.onnx`` carries the file (hashed
and signed like the model) and names it under ``manifest["repair"]``; the agent runs it on every window
batch before the model. Those windows come out of the bundle's own pipeline, where packets lost in gaps
shorter than ``resample.max_gap_s`` are already interpolated; what is left for the generator are AGC
steps, dead or garbage subcarriers and longer losses, so train it on windows of the same pipeline
(``edgecsi generative repair-train`` on the run's windows).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class OnnxRepair:
    """Callable ``y[window, time, feature] -> x`` backed by one onnxruntime session (1 thread by default)."""

    def __init__(self, path: str | Path, *, threads: int = 1, data: bytes | None = None) -> None:
        """``path`` names the model in messages; ``data``, when given, are its (already verified) bytes,
        so the agent runs exactly what the bundle check read."""
        import onnxruntime as ort

        self.path = Path(path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(data if data is not None else str(self.path), sess_options=opts,
                                                providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for bad bytes
            raise ValueError(f"{self.path}: not a loadable ONNX repair model: {exc}") from exc
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


def repair_file(manifest: dict) -> str | None:
    """The repair generator file a bundle manifest names (``manifest["repair"]["file"]``), if any."""
    entry = manifest.get("repair")
    return entry.get("file") if isinstance(entry, dict) else None


def bundle_repair(bundle, *, threads: int = 1) -> OnnxRepair | None:
    """The repair step of a verified bundle (``edgecsi.edge.bundle.Bundle``), built from the bytes the
    bundle check read; None when it has none. Raises ValueError when the manifest names a file that is
    not among the hashed ones or that is not a loadable repair model."""
    name = repair_file(bundle.manifest)
    if name is None:
        return None
    if name not in bundle.files:
        raise ValueError(f"{bundle.path}: manifest names repair file {name!r}, which is not among the hashed files")
    return OnnxRepair(bundle.path / name, threads=threads, data=bundle.files[name])


__all__ = ["OnnxRepair", "bundle_repair", "repair_file"]
