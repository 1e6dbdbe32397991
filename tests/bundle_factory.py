"""Small real bundles for tests: a tiny CNN exported to ONNX (fp32 and int8)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_bundle(out: Path, *, version: int = 1, n_time: int = 20, n_features: int = 8, labels=("empty", "present"),
                seed: int = 0) -> Path:
    import torch

    from edgecsi.export.bundle_writer import write_bundle
    from edgecsi.export.onnx_export import export_onnx, output_names
    from edgecsi.export.quantize import quantize_model
    from edgecsi.training.models import build_model

    torch.manual_seed(seed)
    model = build_model("cnn1d", n_features=n_features, n_time=n_time, n_outputs=len(labels)).eval()
    work = out.parent / f"{out.name}.work"
    work.mkdir(parents=True, exist_ok=True)
    export_onnx(model, n_time=n_time, n_features=n_features, path=work / "model.fp32.onnx")
    x = np.random.default_rng(seed).normal(size=(32, n_time, n_features)).astype(np.float32)
    quantize_model(work / "model.fp32.onnx", work / "model.onnx", x)
    return write_bundle(out, files={"model.onnx": work / "model.onnx", "model.fp32.onnx": work / "model.fp32.onnx"},
                        model_file="model.onnx", task="presence", labels=list(labels),
                        input_spec={"name": "x", "layout": "x[batch, time, feature]", "time": n_time,
                                    "features": n_features},
                        outputs=output_names(model), pipeline={}, source_formats=["nexmon-pcap"],
                        bundle_version=version)
