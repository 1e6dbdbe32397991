"""edgecsi generative: the repair model (UNIR) and AAE clustering of an unlabelled site."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from edgecsi.cli.app import app

generative_app = typer.Typer(help="Generative tools: repair corrupted CSI windows, cluster an unlabelled site.",
                             no_args_is_help=True)
app.add_typer(generative_app, name="generative")


@generative_app.command("repair-train")
def repair_train_command(
    out: Path = typer.Option(..., "--out", "-o", help="repair model directory to write"),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="data-set id (windows to corrupt and learn from)"),
    filters: Optional[str] = typer.Option(None, "--filter", "-f", help="COL=V[+V][,COL=V], e.g. 'day=D1'"),
    windows: Optional[Path] = typer.Option(None, "--windows", "-w",
                                           help=".npz of real corrupted windows (x, missing entries 0): trained on as is"),
    corruption: str = typer.Option("", "--corruption", "-c",
                                   help="corruption model, e.g. 'packet_loss=0.2,burst=3,subcarrier_drop=0.1,agc_db=1'"),
    simulate: bool = typer.Option(True, help="corrupt the data set's windows with the corruption model first"),
    steps: int = typer.Option(300, help="UNIR training steps"),
    seed: int = typer.Option(0),
    onnx: bool = typer.Option(True, help="also export repair.onnx (dynamic batch and time) and check it"),
    threads: int = typer.Option(1, help="torch threads"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Train a UNIR repair generator from corrupted windows only."""
    from edgecsi.training.generative.runs import train_repair_run

    if (dataset is None) == (windows is None):
        raise typer.BadParameter("give exactly one of --dataset or --windows")
    summary = train_repair_run(dataset, filters, out_dir=out, corruption=corruption, simulate=simulate,
                               windows=windows, steps=steps, seed=seed, export=onnx, threads=threads)
    if as_json:
        typer.echo(json.dumps(summary.as_dict(), indent=2))
        return
    typer.echo(f"{summary.run_dir}: repair model trained on {summary.n_windows} windows in {summary.seconds} s")
    if summary.check:
        c = summary.check
        typer.echo(f"  held-out relative error: corrupted {c['none_all']:.3f} -> repaired {c['unir_all']:.3f} "
                   f"(missing entries {c['unir_missing']:.3f}) on {c['n_holdout']} windows")
    if summary.onnx:
        typer.echo(f"  {summary.onnx}: max |torch - onnxruntime| {summary.onnx_max_abs_diff:.2e}")


@generative_app.command("repair-apply")
def repair_apply_command(
    model_dir: Path = typer.Argument(..., help="directory written by repair-train"),
    windows: Path = typer.Option(..., "--windows", "-w", help=".npz with x[window, time, feature] (missing entries 0)"),
    out: Path = typer.Option(..., "--out", "-o", help=".npz to write (x repaired; y copied when present)"),
    onnx: bool = typer.Option(False, help="run the exported repair.onnx with onnxruntime instead of torch"),
) -> None:
    """Repair a windows file."""
    import numpy as np

    from edgecsi.training.generative.runs import apply_repair, load_windows

    x, y = load_windows(windows)
    repaired = apply_repair(model_dir, x, onnx=onnx)
    arrays = {"x": repaired} if y is None else {"x": repaired, "y": y}
    np.savez(out, **arrays)
    typer.echo(f"{out}: {len(repaired)} windows repaired ({'onnxruntime' if onnx else 'torch'})")


@generative_app.command("repair-export")
def repair_export_command(
    model_dir: Path = typer.Argument(..., help="directory written by repair-train"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="ONNX file (default MODEL_DIR/repair.onnx)"),
    n_time: int = typer.Option(50, help="example window length for the export (time stays dynamic)"),
) -> None:
    """Export a repair model to ONNX (dynamic batch and time)."""
    from edgecsi.training.generative.repair_onnx import export_repair_onnx
    from edgecsi.training.generative.unir import load_repair

    model, config = load_repair(model_dir)
    path = export_repair_onnx(model, out or model_dir / "repair.onnx", n_time=n_time,
                              metadata={"corruption": config.get("corruption", {})})
    typer.echo(f"{path}: {path.stat().st_size} bytes")


@generative_app.command("cluster")
def cluster_command(
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="data-set id"),
    filters: Optional[str] = typer.Option(None, "--filter", "-f", help="the site's windows, e.g. 'day=D2'"),
    windows: Optional[Path] = typer.Option(None, "--windows", "-w", help=".npz with x (and optional y labels)"),
    k: Optional[int] = typer.Option(None, help="number of clusters (default: classes present)"),
    steps: int = typer.Option(600, help="AAE training steps"),
    latent: int = typer.Option(16),
    adv_weight: float = typer.Option(1.0, help="critic weight; 0 = plain autoencoder"),
    seed: int = typer.Option(0),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="write cluster assignments (.json)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Cluster an unlabelled site's windows with AAE codes + k-means (scored when labels exist)."""
    from edgecsi.training.generative.runs import cluster_site

    if (dataset is None) == (windows is None):
        raise typer.BadParameter("give exactly one of --dataset or --windows")
    report = cluster_site(dataset, filters, windows=windows, k=k, steps=steps, latent=latent, adv_weight=adv_weight,
                          seed=seed)
    if out is not None:
        out.write_text(json.dumps(report.as_dict(), indent=2))
    if as_json:
        typer.echo(json.dumps({k2: v for k2, v in report.as_dict().items() if k2 != "assignments"}, indent=2))
        return
    typer.echo(f"{report.n_windows} windows -> {report.k} clusters in {report.seconds} s")
    for name, s in report.scores.items():
        typer.echo(f"  {name}: NMI {s['nmi']:.3f}  ARI {s['ari']:.3f}  cluster accuracy {s['acc']:.3f}")
