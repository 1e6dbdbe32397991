"""onnxruntime sessions tuned for small boards (one thread, no spinning, full graph optimisation)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort


def make_session(model: bytes | str, *, threads: int = 1) -> ort.InferenceSession:
    """A CPU session from model bytes (as verified from a bundle) or a path.

    QDQ int8 models need graph optimisation at load to fuse into integer kernels,
    so optimisation stays at ENABLE_ALL; spinning is off because a gateway runs
    one small inference every window and should sleep in between.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def run_model(session: ort.InferenceSession, x: np.ndarray) -> dict[str, np.ndarray]:
    """Run on ``x[batch, time, feature]`` float32; returns outputs by name."""
    name = session.get_inputs()[0].name
    outputs = session.run(None, {name: np.ascontiguousarray(x, dtype=np.float32)})
    return {o.name: v for o, v in zip(session.get_outputs(), outputs)}
