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


def make_capture_bundle(batches, labels_per_batch, out: Path, *, task: str = "presence", labels=("empty", "present"),
                        window: int = 20, hop: int = 10, rate_hz: float = 50.0, version: int = 1, epochs: int = 1,
                        features=("amplitude",)) -> Path:
    """A bundle whose manifest carries a fitted signal pipeline, trained from CSI batches.

    ``labels_per_batch[i]`` is the class index of every window of ``batches[i]``.
    """
    from edgecsi.edge.pipeline.config import PipelineConfig, ResampleConfig, WindowConfig
    from edgecsi.edge.pipeline.pipeline import Pipeline
    from edgecsi.edge.pipeline.streams import split_streams
    from edgecsi.export.export_run import HeldOut, export_run
    from edgecsi.training.datasets.base import WindowSet
    from edgecsi.training.filter_design import with_lowpass
    from edgecsi.training.train import train

    config = with_lowpass(PipelineConfig(features=tuple(features), resample=ResampleConfig(rate_hz=rate_hz),
                                         window=WindowConfig(length=window, hop=hop)))
    pipe = Pipeline(config).fit(list(batches))
    xs, ys = [], []
    for batch, label in zip(batches, labels_per_batch):
        for stream in split_streams(batch).values():
            w = pipe.transform(stream)
            xs.append(w)
            ys.append(np.full(len(w), label, np.int64))
    x, y = np.concatenate(xs), np.concatenate(ys)
    ws = WindowSet(name="test-captures", task=task, x=x, y=y, labels=list(labels),
                   domains={"part": np.where(np.arange(len(x)) % 5 == 0, "test", "train")})
    run = out.parent / f"{out.name}.run"
    train(task, ws, "by:part:train:test", "cnn1d", epochs=epochs, seed=0, out_dir=run, progress=False,
          pipeline_config=pipe.config.to_dict())
    export_run(run, out, heldout=HeldOut(calibration=x[:64], x=x, y=y), bundle_version=version,
               max_int8_drop=100.0)
    return out
