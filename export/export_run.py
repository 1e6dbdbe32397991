"""``edgecsi export RUN_DIR --out BUNDLE``: a trained run -> a verified, quantized bundle.

Steps: rebuild the model from the run directory, export fp32 ONNX (dynamic batch; dynamic
time for models that accept any length), quantize to int8 calibrated on real training
windows, measure parity (torch / ORT fp32 / ORT int8) on the held-out windows, refuse
int8 when it loses more than ``max_int8_drop`` points, and write the bundle with its
manifest (optionally signed).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from edgecsi.errors import EdgeCSIError
from edgecsi.export.bundle_writer import write_bundle
from edgecsi.export.onnx_export import export_onnx, output_names, required_onnxruntime
from edgecsi.export.parity import ParityReport, parity_report
from edgecsi.export.quantize import quantize_model
from edgecsi.export.signing import sign_bundle


class ExportError(EdgeCSIError):
    pass


@dataclass
class HeldOut:
    """Windows for calibration (training side) and parity (held-out side)."""

    calibration: np.ndarray  # x[window, time, feature]
    x: np.ndarray
    y: np.ndarray


@dataclass
class ExportResult:
    bundle: Path
    parity: ParityReport
    activation_type: str
    int8_used: bool

    def as_dict(self) -> dict:
        return {"bundle": str(self.bundle), "parity": self.parity.as_dict(),
                "activation_type": self.activation_type, "int8_used": self.int8_used}


def heldout_from_run(config: dict, *, max_windows: int = 2000, seed: int = 0) -> HeldOut:
    """Reload the run's data (its data set, or the captures it was trained from, cut again by its
    pipeline) and split: calibrate on training windows, check on test windows."""
    from edgecsi.training.adapt.run import run_split, run_windows
    from edgecsi.training.datasets import DatasetNotFound
    from edgecsi.training.holdout import targets

    desc = config.get("dataset") or {}
    if not desc.get("name"):
        raise ExportError("the run does not name a reloadable data set; pass held-out windows (--data x.npz)")
    if (config.get("adaptation") or {}).get("target"):
        # An adapted run (edgecsi adapt): calibrate on the site's labelled pool, check on its held-out windows.
        from edgecsi.training.adapt.run import heldout_windows

        try:
            calibration, x, y = heldout_windows(config, max_windows=max_windows, seed=seed)
        except (ValueError, FileNotFoundError) as exc:
            raise ExportError(f"{exc}; pass held-out windows (--data x.npz)") from exc
        return HeldOut(calibration=calibration, x=x, y=y)
    try:
        ws = run_windows(config)
    except (ValueError, FileNotFoundError, DatasetNotFound) as exc:
        raise ExportError(f"{exc}; pass held-out windows (--data x.npz)") from exc
    sp = run_split(config, ws)
    tests = sp.tests()
    if not tests:
        raise ExportError(f"split {sp.name!r} has no test windows to check parity on")
    # The first test set is the in-domain held-out one; later ones are other domains.
    test_idx = np.asarray(next(iter(tests.values())))
    rng = np.random.default_rng(seed)
    if len(test_idx) > max_windows:
        test_idx = np.sort(rng.choice(test_idx, max_windows, replace=False))
    train_idx = np.asarray(sp.train)
    calib_idx = np.sort(rng.choice(train_idx, min(len(train_idx), 2048), replace=False))
    y = targets(ws, config["target"])
    return HeldOut(calibration=ws.x[calib_idx], x=ws.x[test_idx], y=y[test_idx])


def heldout_from_npz(path: str | Path) -> HeldOut:
    with np.load(path) as data:
        x, y = data["x"], data["y"]
        calibration = data["calibration"] if "calibration" in data else x
    return HeldOut(calibration=calibration, x=x, y=y)


def export_run(run_dir: str | Path, out: str | Path, *, heldout: HeldOut | None = None,
               max_int8_drop: float = 1.0, sign_key: str | Path | None = None,
               bundle_version: int | None = None, source_formats: list[str] | None = None,
               allow_fp32_fallback: bool = False, repair: str | Path | None = None) -> ExportResult:
    """Export ``run_dir`` to the bundle directory ``out``.

    Raises :class:`ExportError` when int8 loses more than ``max_int8_drop`` (accuracy
    points, or MAE units for regression) unless ``allow_fp32_fallback``, in which case
    the bundle runs the fp32 model and says so in its manifest.

    ``repair``: an exported repair generator (``edgecsi generative repair-export``) that the
    agent runs on every window before the model. It must take the model's features; the
    held-out windows are run through it and the bundled model, and it is refused when it
    costs more than ``max_int8_drop`` on those (clean) windows.
    """
    from edgecsi.training.train import load_run

    run_dir, out = Path(run_dir), Path(out)
    model, config = load_run(run_dir)
    heldout = heldout or heldout_from_run(config)
    n_time, n_features = int(config["input"]["n_time"]), int(config["input"]["n_features"])
    dynamic_time = config["input"].get("time_axis") == "any"
    classification = config["target"] == "class"
    metadata = {"edgecsi.task": config["task"], "edgecsi.labels": config["labels"],
                "edgecsi.pipeline": config.get("pipeline") or {}, "edgecsi.input": config["input"]}

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fp32 = export_onnx(model, n_time=n_time, n_features=n_features, path=tmp / "model.fp32.onnx",
                           dynamic_time=dynamic_time, metadata=metadata)
        quant = quantize_model(fp32, tmp / "model.int8.onnx", heldout.calibration)
        report = parity_report(model, fp32, quant.path, heldout.x, heldout.y, classification=classification)
        int8_ok = report.int8_drop <= max_int8_drop
        if not int8_ok and not allow_fp32_fallback:
            raise ExportError(
                f"{run_dir}: int8 {report.metric_name} {report.metric_int8:.3f} vs torch {report.metric_torch:.3f} "
                f"(drop {report.int8_drop:.3f} > limit {max_int8_drop}); not writing a bundle. "
                f"Raise --max-int8-drop or use --allow-fp32-fallback")
        (tmp / "parity.json").write_text(json.dumps(report.as_dict(), indent=2))
        model_file = "model.onnx"
        files = {model_file: quant.path if int8_ok else fp32, "model.fp32.onnx": fp32,
                 "parity.json": tmp / "parity.json"}
        repair_entry = None
        if repair is not None:
            repair_bytes = Path(repair).read_bytes()  # checked and bundled: the same bytes
            repair_entry = _check_repair(Path(repair), repair_bytes, files[model_file], heldout, n_features=n_features,
                                         classification=classification, reference=report.metric_torch,
                                         before=report.metric_int8 if int8_ok else report.metric_fp32,
                                         max_drop=max_int8_drop)
            files[repair_entry["file"]] = repair_bytes
        run_metrics = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").exists() else {}
        needs = required_onnxruntime(onnx.load(str(files[model_file])))
        write_bundle(
            out, files=files, model_file=model_file, task=config["task"], labels=config["labels"],
            min_onnxruntime=needs,
            input_spec={"name": "x", **config["input"], "dynamic_time": dynamic_time},
            outputs=output_names(model), pipeline=config.get("pipeline") or {},
            source_formats=source_formats or _formats_for(config), bundle_version=bundle_version,
            metrics={"run": run_metrics.get("test", {}), "parity": report.as_dict()},
            # An adapted run (edgecsi adapt) names the base run's model it was derived from.
            base_model_sha256=(config.get("adaptation") or {}).get("base_model_sha256"),
            extra={"precision": "int8" if int8_ok else "fp32", "target": config["target"],
                   "outputs_kind": config["outputs"]["kind"], "class_coords": config.get("class_coords"),
                   "quantization": {"variant": quant.activation_type, "dynamic_lstm": quant.dynamic_lstm,
                                    "candidates_p50_ms": quant.candidates,
                                    "agreement_with_fp32": quant.agreement},
                   **({"repair": repair_entry} if repair_entry else {})},
        )
    if sign_key:
        sign_bundle(out, sign_key)
    return ExportResult(bundle=out, parity=report, activation_type=quant.activation_type, int8_used=int8_ok)


def _check_repair(path: Path, data: bytes, model_path: Path, heldout: HeldOut, *, n_features: int,
                  classification: bool, reference: float, before: float, max_drop: float) -> dict:
    """The manifest entry for a repair generator, after checking it fits and that what the agent will run
    (repair, then the bundled model) stays within ``max_drop`` of torch (``reference``) on clean held-out
    windows: the same budget int8 has, not a second one. ``before``: the bundled model's own metric on
    those windows (from the parity report)."""
    from edgecsi.edge.repair import OnnxRepair
    from edgecsi.export.parity import _metric, _ort_outputs

    try:
        rep = OnnxRepair(path, data=data)
    except (ValueError, OSError) as exc:
        raise ExportError(f"{path}: cannot use as a repair model: {exc}") from exc
    if rep.n_features != n_features:
        raise ExportError(f"{path}: repairs {rep.n_features} features per step, the model takes {n_features}")
    x = np.ascontiguousarray(heldout.x, dtype=np.float32)
    repaired = np.concatenate([rep(x[i:i + 256]) for i in range(0, len(x), 256)]) if len(x) else x
    after = _metric(_ort_outputs(model_path, repaired), heldout.y, classification)
    drop = (reference - after) if classification else (after - reference)
    if drop > max_drop:
        raise ExportError(f"{path}: with the repair step the bundle scores {after:.3f} on clean held-out windows "
                          f"(torch {reference:.3f}, bundled model alone {before:.3f}): a drop of {drop:.3f}, more "
                          f"than the limit {max_drop}; not writing a bundle")
    return {"file": "repair.onnx", "n_features": rep.n_features, "corruption": rep.corruption(),
            "input_layout": rep.metadata.get("input_layout"),
            "heldout_metric": {"without_repair": before, "with_repair": after}}


def _formats_for(config: dict) -> list[str]:
    # A model trained from captures accepts the formats it was trained on (their subcarrier layout).
    from edgecsi.training.train_captures import recorded_captures

    source = recorded_captures(config) or {}
    if source.get("formats"):
        return list(source["formats"])
    pipeline = config.get("pipeline") or {}
    formats = pipeline.get("source_formats") if isinstance(pipeline, dict) else None
    return list(formats) if formats else ["esp32-csi-tool", "esp-csi", "nexmon-pcap", "intel5300", "atheros"]
