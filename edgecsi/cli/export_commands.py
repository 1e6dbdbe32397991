"""edgecsi export / bundle info|keygen|sign / deploy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from edgecsi.cli.app import app

bundle_app = typer.Typer(help="Inspect, sign and verify model bundles.", no_args_is_help=True)
app.add_typer(bundle_app, name="bundle")


@app.command("export")
def export_command(
    run_dir: Path = typer.Argument(..., help="a training run directory"),
    out: Path = typer.Option(..., "--out", "-o", help="bundle directory to write"),
    data: Optional[Path] = typer.Option(None, help="npz with x, y (held-out) and optional calibration windows"),
    max_int8_drop: float = typer.Option(1.0, help="refuse int8 if it loses more than this (accuracy points / MAE)"),
    allow_fp32_fallback: bool = typer.Option(False, help="ship fp32 instead of failing when int8 is refused"),
    sign_key: Optional[Path] = typer.Option(None, help="Ed25519 private key (PEM) to sign the manifest"),
    version: Optional[int] = typer.Option(None, help="bundle version (default: current Unix time)"),
    repair: Optional[Path] = typer.Option(None, help="repair generator ONNX (edgecsi generative repair-export) the "
                                                      "agent runs on every window before the model; the bundle "
                                                      "with it must stay within --max-int8-drop of torch"),
    as_json: bool = typer.Option(False, "--json", help="print the parity report as JSON"),
) -> None:
    """Export a run to ONNX, quantize it to int8, check parity and write a bundle."""
    from edgecsi.export.export_run import export_run, heldout_from_npz

    result = export_run(run_dir, out, heldout=heldout_from_npz(data) if data else None,
                        max_int8_drop=max_int8_drop, sign_key=sign_key, bundle_version=version,
                        allow_fp32_fallback=allow_fp32_fallback, repair=repair)
    if as_json:
        typer.echo(json.dumps(result.as_dict(), indent=2))
        return
    p = result.parity
    lat = p.latency_ms
    typer.echo(f"bundle {out} ({'int8' if result.int8_used else 'fp32'}, activations {result.activation_type})")
    typer.echo(f"  {p.metric_name}: torch {p.metric_torch:.3f}  ort fp32 {p.metric_fp32:.3f}  ort int8 {p.metric_int8:.3f}"
               f"  on {p.n_windows} held-out windows")
    typer.echo(f"  max |diff| fp32 {p.max_abs_diff_fp32:.2e}  int8 {p.max_abs_diff_int8:.2e}"
               f"  argmax agreement int8 {p.argmax_agreement_int8:.4f}")
    typer.echo(f"  p50 latency ms (batch 1, 1 thread): torch {lat['torch']['p50']:.3f}  fp32 {lat['ort_fp32']['p50']:.3f}"
               f"  int8 {lat['ort_int8']['p50']:.3f}")
    typer.echo(f"  size: fp32 {p.size_bytes['fp32']} B, int8 {p.size_bytes['int8']} B "
               f"({100 * p.size_bytes['int8'] / p.size_bytes['fp32']:.0f}%)")


@bundle_app.command("info")
def bundle_info(
    bundle: Path = typer.Argument(..., help="bundle directory"),
    trusted_key: List[Path] = typer.Option([], help="public key(s) to verify the signature with"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Verify a bundle and print the contract it carries."""
    from edgecsi.edge.bundle import describe, load_bundle, load_public_keys

    info = describe(load_bundle(bundle, trusted_keys=load_public_keys(trusted_key) or None))
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    typer.echo(f"{info['path']}: version {info['bundle_version']} ({info['created']}), verified"
               + (f", signed by {info['signed_by'][:16]}..." if info["signed_by"] else ", unsigned"))
    typer.echo(f"  task {info['task']}; labels {', '.join(info['labels']) or '(regression)'}")
    typer.echo(f"  input {info['input'].get('layout')} time={info['input'].get('n_time')} "
               f"features={info['input'].get('n_features')}; precision {info['precision']}")
    typer.echo(f"  accepts {', '.join(info['source_formats'] or [])}; needs onnxruntime >= {info['min_onnxruntime']}")
    pipe = info.get("pipeline") or {}
    if pipe:
        r, w = pipe.get("resample") or {}, pipe.get("window") or {}
        typer.echo(f"  pipeline {'+'.join(pipe.get('features') or [])} of {len(pipe.get('subcarriers') or [])} subcarriers "
                   f"x {pipe.get('n_rx')} rx x {pipe.get('n_tx')} tx, resampled to {r.get('rate_hz')} Hz "
                   f"({len(r.get('taps') or [])} taps), windows {w.get('length')} every {w.get('hop')}")
    parity = (info.get("metrics") or {}).get("parity") or {}
    if parity:
        typer.echo(f"  held-out {parity.get('metric_name')} ({parity.get('n_windows')} windows): torch "
                   f"{parity.get('metric_torch'):.3f}, ORT int8 {parity.get('metric_int8'):.3f}")
    if info.get("base_model_sha256"):
        typer.echo(f"  adapted from base model sha256 {info['base_model_sha256'][:16]}...")
    if info.get("repair"):
        held = info["repair"].get("heldout_metric") or {}
        typer.echo(f"  repair step {info['repair'].get('file')} ({info['repair'].get('n_features')} features) runs "
                   f"before the model; held-out with repair {held.get('with_repair', float('nan')):.3f}, "
                   f"without {held.get('without_repair', float('nan')):.3f}")
    for name, entry in info["files"].items():
        typer.echo(f"  {name:20s} {entry['bytes']:>9} B  sha256 {entry['sha256'][:16]}...")


@bundle_app.command("keygen")
def bundle_keygen(private: Path = typer.Argument(...), public: Path = typer.Argument(...)) -> None:
    """Create an Ed25519 key pair for signing bundles."""
    from edgecsi.export.signing import generate_keypair

    typer.echo(generate_keypair(private, public))


@bundle_app.command("sign")
def bundle_sign(bundle: Path = typer.Argument(...), key: Path = typer.Option(..., help="private key (PEM)")) -> None:
    """Sign a bundle's manifest."""
    from edgecsi.export.signing import sign_bundle

    typer.echo(str(sign_bundle(bundle, key)))


@app.command("deploy")
def deploy_command(
    bundle: Path = typer.Argument(...),
    to: str = typer.Option(..., "--to", help="user@gateway[:port] or a local directory"),
    root: str = typer.Option("/var/lib/edgecsi", help="agent root on the gateway"),
    source: List[str] = typer.Option(["udp://0.0.0.0:5500"], help="agent source URIs for the unit file"),
    restart_cmd: str = typer.Option("systemctl restart edgecsi-agent.service"),
    health_cmd: str = typer.Option("curl -fsS http://127.0.0.1:8765/health"),
    health_timeout: float = typer.Option(30.0),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Copy a bundle to a gateway, verify it there, switch to it, and roll back if unhealthy."""
    from edgecsi.export.deploy import deploy

    result = deploy(bundle, to, root=root, sources=list(source), restart_cmd=restart_cmd, health_cmd=health_cmd,
                    health_timeout=health_timeout)
    typer.echo(json.dumps(result.as_dict(), indent=2) if as_json else
               f"deployed {result.deployed} to {result.target} (previous: {result.previous}); health: {result.health}")
