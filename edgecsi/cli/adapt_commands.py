"""edgecsi adapt / calibrate: per-site adaptation (training side) and the gateway's numpy head."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from edgecsi.cli.app import app


def parse_target_data(text: str) -> tuple[str | None, str]:
    """``"[DATASET:]COL=V[+V][,COL=V]"`` -> (data-set id or None, filters). DATASET may be a capture list
    file or a folder with one sub-folder of captures per label (the new site's own recordings); such a
    path alone selects all of its windows."""
    if Path(text).exists():
        return text, ""
    head, sep, rest = text.partition(":")
    if sep and "=" not in head:
        return head, rest
    return None, text


def parse_per_class(text: str) -> int | None:
    if text.strip().lower() == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise typer.BadParameter(f"expected a number of windows per class or 'all', got {text!r}") from None
    if value < 0:
        raise typer.BadParameter("labelled windows per class must be >= 0")
    return value


def parse_options(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--option wants KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out


@app.command("adapt")
def adapt_command(
    run_dir: Path = typer.Argument(..., help="the base run directory (read only)"),
    method: str = typer.Option(..., "--method", "-m", help="fc | side | ccsa | lmmd | aad | bidirectional"),
    target_data: str = typer.Option(..., "--target-data", "-t",
                                    help="target windows: [DATASET:]COL=V[+V...][,COL=V], e.g. 'day=D2' or "
                                         "'intel5300_har_2env_5person:room=meetingroom' (data set defaults to the run's); "
                                         "or the site's captures: a capture list file / label-folder tree, "
                                         "optionally ':file=a.pcap+b.pcap'"),
    labelled_per_class: str = typer.Option("5", "--labelled-per-class", "-n", help="labelled windows per class, or 'all'"),
    labelled_from: Optional[str] = typer.Option(None, "--labelled-from",
                                                help="where labels come from, e.g. 'sequence=D2/e01_tx_rx'; the "
                                                     "held-out test part is the target minus this pool"),
    out: Path = typer.Option(..., "--out", "-o", help="adapted run directory to write"),
    option: List[str] = typer.Option([], "--option", help="method option KEY=VALUE (repeatable), e.g. steps=500"),
    seed: int = typer.Option(0, help="seed for the labelled draw and the training"),
    max_source: int = typer.Option(4000, help="cap on source windows (class-stratified)"),
    max_unlabelled: int = typer.Option(4000, help="cap on unlabelled target windows"),
    threads: Optional[int] = typer.Option(None, help="torch threads (default 1: small models run fastest on one)"),
    as_json: bool = typer.Option(False, "--json", help="print the result as JSON"),
) -> None:
    """Adapt a trained run to a new site; writes a run directory `edgecsi export` takes."""
    from edgecsi.training.adapt import METHODS, TargetSpec, adapt

    if method not in METHODS:
        raise typer.BadParameter(f"unknown method {method!r}; known: {', '.join(METHODS)}", param_hint="--method")
    dataset, filters = parse_target_data(target_data)
    spec = TargetSpec(dataset=dataset, target=filters, pool=labelled_from,
                      labelled_per_class=parse_per_class(labelled_per_class), seed=seed)
    result = adapt(run_dir, method, spec, out_dir=out, options=parse_options(option), max_source=max_source,
                   max_unlabelled=max_unlabelled, threads=threads, seed=seed)
    if as_json:
        a = result.config["adaptation"]
        typer.echo(json.dumps({"run_dir": str(out), "method": method, "accuracy": result.accuracy,
                               "source_only_accuracy": result.source_only_accuracy, "n_labelled": a["n_labelled"],
                               "n_test": a["n_test"], "base_model_sha256": a["base_model_sha256"],
                               "site_artefact": a["site_artefact"], "seconds": a["seconds"], "notes": a["notes"]}, indent=2))
        return
    typer.echo(result.summary())
    a = result.config["adaptation"]
    typer.echo(f"  base model sha256 {a['base_model_sha256'][:16]}...; per-site artefact {a['site_artefact']['file']} "
               f"{a['site_artefact']['bytes']} B ({a['site_artefact']['parameters']} values); {a['seconds']} s")
    for note in a["notes"]:
        typer.echo(f"  note: {note}")


@app.command("calibrate")
def calibrate_command(
    bundle: Path = typer.Option(..., "--bundle", "-b", help="the bundle directory the gateway runs"),
    windows: List[Path] = typer.Option(..., "--windows", "-w",
                                       help="labelled site windows: .npz with x[window, time, feature] "
                                            "(and optional 'labels'), or a capture file cut by the bundle's pipeline"),
    label: List[str] = typer.Option([], "--label", "-l",
                                    help="label of the windows file at the same position (one label for all files, "
                                         "or none to use the files' own 'labels')"),
    site: Optional[Path] = typer.Option(None, help="site directory (default BUNDLE/site)"),
    method: str = typer.Option("logistic", help="logistic | ridge"),
    l2: Optional[float] = typer.Option(None, help="L2 regularisation (default 1e-2 logistic, 1.0 ridge)"),
    trusted_key: List[Path] = typer.Option([], help="public key(s) the bundle must be signed with"),
    repair: bool = typer.Option(True, "--repair/--no-repair",
                                help="embed repaired windows (as the agent runs the bundle's repair step); "
                                     "--no-repair for an agent run with --no-repair"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Append labelled site windows to the site store and refit the gateway's numpy head."""
    from edgecsi.edge.bundle import load_public_keys
    from edgecsi.edge.site_calibration import calibrate

    if label and len(label) not in (1, len(windows)):
        raise typer.BadParameter(f"{len(label)} labels for {len(windows)} windows files: give one, or one per file",
                                 param_hint="--label")
    labels: list[str | None] = (list(label) if len(label) == len(windows) else [label[0]] * len(windows)) if label \
        else [None] * len(windows)
    report = calibrate(bundle, list(zip(windows, labels)), site_dir=site, method=method, l2=l2,
                       trusted_keys=load_public_keys(trusted_key) or None, with_repair=repair)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
        return
    added = ", ".join(f"{k} +{v}" for k, v in report.added.items())
    typer.echo(f"{report.site_dir}: added {added}; store {report.store_counts}")
    if report.head is None:
        typer.echo("  head not fitted yet: label windows of at least two classes")
    else:
        h = report.head
        typer.echo(f"  head v{h.version} ({h.method}, {h.n_windows} windows, blend a={h.alpha} [{h.alpha_source}]) "
                   f"for base model {report.base_model_sha256[:16]}...; fit {report.seconds['fit']} s")
