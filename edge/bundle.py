"""The model bundle contract: what a gateway loads, and the checks before it trusts it.

A bundle is a directory::

    manifest.json      schema/bundle version, task, labels, input layout, pipeline config,
                       sha256 of every other file, metrics, minimum onnxruntime version
    manifest.sig       optional Ed25519 signature over the exact bytes of manifest.json
    model.onnx         the model the gateway runs (int8 unless quantization was refused)
    model.fp32.onnx    the float model, kept beside it
    repair.onnx        optional repair generator run on windows before the model (``manifest["repair"]``)
    site/...           optional per-site artefacts (calibrated head, side network)

:func:`load_bundle` reads every file once into memory, verifies the signature (when a
trusted key is given or required), every hash and the version, and hands back those
same verified bytes, so nothing can change on disk between the check and the load.
Imports only the standard library and ``cryptography`` (for signatures).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from edgecsi.errors import EdgeCSIError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"


class BundleError(EdgeCSIError):
    """A bundle that must not be loaded; the message says which file and why."""


@dataclass(frozen=True)
class Bundle:
    """A verified bundle held in memory."""

    path: Path
    manifest: Mapping[str, Any]
    files: Mapping[str, bytes]  # relative path -> verified bytes
    manifest_sha256: str
    signed_by: str | None = None  # hex of the public key that verified it
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def version(self) -> int:
        return int(self.manifest["bundle_version"])

    @property
    def labels(self) -> list[str]:
        return list(self.manifest.get("labels", []))

    @property
    def task(self) -> str:
        return str(self.manifest.get("task", ""))

    @property
    def model_bytes(self) -> bytes:
        return self.files[self.manifest["model"]["file"]]

    @property
    def pipeline_config(self) -> dict:
        return dict(self.manifest.get("pipeline", {}))


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split("+")[0].split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def verify_signature(manifest_bytes: bytes, signature: bytes, public_keys: list[bytes], where: Path) -> str:
    """Return the hex of the key that verifies, or raise BundleError."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    for raw in public_keys:
        try:
            Ed25519PublicKey.from_public_bytes(raw).verify(signature, manifest_bytes)
            return raw.hex()
        except InvalidSignature:
            continue
        except ValueError as exc:
            raise BundleError(f"{where}: unusable public key: {exc}") from exc
    raise BundleError(f"{where / SIGNATURE}: signature does not match manifest.json for any trusted key")


def load_public_keys(paths: list[str | Path]) -> list[bytes]:
    """Raw 32-byte Ed25519 public keys from files holding raw bytes, hex, or PEM."""
    keys = []
    for p in paths:
        data = Path(p).read_bytes()
        if data.startswith(b"-----BEGIN"):
            from cryptography.hazmat.primitives import serialization

            key = serialization.load_pem_public_key(data)
            keys.append(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
        elif len(data) == 32:
            keys.append(data)
        else:
            keys.append(bytes.fromhex(data.decode("ascii").strip()))
    return keys


def load_bundle(
    path: str | Path,
    *,
    trusted_keys: list[bytes] | None = None,
    require_signature: bool = False,
    min_version: int | None = None,
    onnxruntime_version: str | None = None,
) -> Bundle:
    """Read and verify a bundle directory; raise :class:`BundleError` if anything is off.

    ``min_version``: refuse bundles older than this (the running bundle's version,
    so a replayed old bundle cannot downgrade a gateway). ``onnxruntime_version``:
    refuse a bundle that needs a newer runtime than the one installed.
    """
    root = Path(path)
    manifest_path = root / MANIFEST
    try:
        manifest_bytes = manifest_path.read_bytes()
    except OSError as exc:
        raise BundleError(f"{manifest_path}: cannot read: {exc.strerror or exc}") from exc
    try:
        manifest = json.loads(manifest_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{manifest_path}: not valid JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise BundleError(f"{manifest_path}: manifest must be a JSON object")

    signed_by = None
    sig_path = root / SIGNATURE
    if sig_path.exists():
        if trusted_keys:
            signed_by = verify_signature(manifest_bytes, sig_path.read_bytes(), trusted_keys, root)
        elif require_signature:
            raise BundleError(f"{root}: signature required but no trusted public key configured")
    elif require_signature or trusted_keys:
        raise BundleError(f"{sig_path}: missing; this gateway only loads signed bundles")

    schema = manifest.get("schema_version")
    if schema != SCHEMA_VERSION:
        raise BundleError(f"{manifest_path}: schema_version {schema!r} not supported (this agent reads {SCHEMA_VERSION})")
    for key in ("bundle_version", "task", "labels", "input", "model", "files"):
        if key not in manifest:
            raise BundleError(f"{manifest_path}: missing required key {key!r}")
    try:
        version = int(manifest["bundle_version"])
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{manifest_path}: bundle_version must be an integer") from exc
    if min_version is not None and version < min_version:
        raise BundleError(f"{root}: bundle version {version} is older than the running version {min_version}; refusing downgrade")

    warnings = []
    need = manifest.get("min_onnxruntime")
    if need and onnxruntime_version and _version_tuple(onnxruntime_version) < _version_tuple(str(need)):
        raise BundleError(f"{manifest_path}: needs onnxruntime >= {need}, this gateway has {onnxruntime_version}")

    files: dict[str, bytes] = {}
    listed = manifest["files"]
    if not isinstance(listed, dict) or not listed:
        raise BundleError(f"{manifest_path}: 'files' must map file names to hashes")
    for rel, entry in listed.items():
        rel_path = Path(rel)
        if rel_path.is_absolute() or ".." in rel_path.parts:
            raise BundleError(f"{manifest_path}: file name {rel!r} escapes the bundle")
        try:
            data = (root / rel_path).read_bytes()
        except OSError as exc:
            raise BundleError(f"{root / rel_path}: listed in manifest but unreadable: {exc.strerror or exc}") from exc
        expected = entry.get("sha256") if isinstance(entry, dict) else entry
        actual = sha256_bytes(data)
        if actual != expected:
            raise BundleError(f"{root / rel_path}: sha256 {actual[:16]}... does not match the manifest ({str(expected)[:16]}...)")
        files[rel] = data
    model_file = manifest["model"].get("file") if isinstance(manifest["model"], dict) else None
    if model_file not in files:
        raise BundleError(f"{manifest_path}: model file {model_file!r} is not among the hashed files")

    return Bundle(path=root, manifest=manifest, files=files, manifest_sha256=sha256_bytes(manifest_bytes),
                  signed_by=signed_by, warnings=tuple(warnings))


def describe(bundle: Bundle) -> dict:
    """The contract a bundle carries, for ``edgecsi bundle info``."""
    m = bundle.manifest
    return {
        "path": str(bundle.path),
        "bundle_version": bundle.version,
        "schema_version": m.get("schema_version"),
        "created": m.get("created"),
        "task": bundle.task,
        "labels": bundle.labels,
        "input": m.get("input"),
        "outputs": m.get("outputs"),
        "precision": m.get("precision"),
        "model": m.get("model"),
        "source_formats": m.get("source_formats"),
        "min_onnxruntime": m.get("min_onnxruntime"),
        "base_model_sha256": m.get("base_model_sha256"),
        "repair": m.get("repair"),
        "manifest_sha256": bundle.manifest_sha256,
        "signed_by": bundle.signed_by,
        "files": {k: v for k, v in m.get("files", {}).items()},
        "pipeline": m.get("pipeline"),
        "metrics": m.get("metrics"),
    }
