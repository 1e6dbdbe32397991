"""Ed25519 keys and bundle signatures (the gateway verifies in edgecsi.edge.bundle)."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edgecsi.edge.bundle import MANIFEST, SIGNATURE


def generate_keypair(private_path: str | Path, public_path: str | Path) -> str:
    """Write a PEM private key (mode 0600) and a hex public key; return the public hex."""
    key = Ed25519PrivateKey.generate()
    private_path, public_path = Path(private_path), Path(public_path)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    private_path.write_bytes(pem)
    private_path.chmod(0o600)
    public_hex = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()
    public_path.write_text(public_hex + "\n")
    return public_hex


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: not an Ed25519 private key")
    return key


def sign_bundle(bundle_dir: str | Path, private_key_path: str | Path) -> Path:
    """Sign the exact bytes of manifest.json; the signature covers every file through its hash."""
    bundle_dir = Path(bundle_dir)
    signature = load_private_key(private_key_path).sign((bundle_dir / MANIFEST).read_bytes())
    out = bundle_dir / SIGNATURE
    out.write_bytes(signature)
    return out
