"""Write a bundle directory: model files, their hashes, and the contract in manifest.json."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from edgecsi.edge.bundle import MANIFEST, SCHEMA_VERSION, SIGNATURE, sha256_bytes
from edgecsi.export.onnx_export import MIN_ONNXRUNTIME, OPSET


def write_bundle(
    out_dir: str | Path,
    *,
    files: Mapping[str, str | Path | bytes],
    model_file: str,
    task: str,
    labels: Sequence[str],
    input_spec: Mapping[str, Any],
    outputs: Sequence[str],
    pipeline: Mapping[str, Any],
    source_formats: Sequence[str],
    metrics: Mapping[str, Any] | None = None,
    bundle_version: int | None = None,
    base_model_sha256: str | None = None,
    extra: Mapping[str, Any] | None = None,
    min_onnxruntime: str = MIN_ONNXRUNTIME,
) -> Path:
    """Copy ``files`` (name -> source path or bytes) into ``out_dir`` and write the manifest.

    ``bundle_version`` defaults to the current Unix time, so a later export is
    always newer; gateways refuse to go back to an older version.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in (MANIFEST, SIGNATURE):
        (out / stale).unlink(missing_ok=True)
    hashes = {}
    for name, src in files.items():
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, bytes):
            target.write_bytes(src)
        elif Path(src).resolve() != target.resolve():
            shutil.copyfile(src, target)
        data = target.read_bytes()
        hashes[name] = {"sha256": sha256_bytes(data), "bytes": len(data)}
    if model_file not in hashes:
        raise ValueError(f"model file {model_file!r} not among the bundle files {sorted(hashes)}")
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "bundle_version": int(bundle_version if bundle_version is not None else time.time()),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "task": task,
        "labels": list(labels),
        "input": dict(input_spec),
        "outputs": list(outputs),
        "model": {"file": model_file, "opset": OPSET},
        "pipeline": dict(pipeline),
        "source_formats": list(source_formats),
        "files": hashes,
        "base_model_sha256": base_model_sha256,
        "metrics": dict(metrics or {}),
        "min_onnxruntime": min_onnxruntime,
        **dict(extra or {}),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")
    return out
