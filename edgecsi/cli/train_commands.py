"""``edgecsi train``: train one model on a data set or on labelled captures; write a run directory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from edgecsi.cli.app import app


def _key_values(pairs: list[str], what: str) -> dict:
    """``KEY=VALUE`` strings -> dict; VALUE parsed as JSON when it is JSON (numbers, lists), else text."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{what} must be KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


@app.command("train")
def train_command(
    task: str = typer.Option(..., "--task", help="activity | localization | counting | presence | concealed"),
    data: str = typer.Option(..., "--data", help="A data-set id (see `edgecsi datasets`), a capture list file "
                             "(lines 'path,label'; 'path' alone = labels from <capture>.labels.csv), or a "
                             "directory with one sub-directory of captures per label."),
    out: Path = typer.Option(..., "--out", help="Run directory to write."),
    split: Optional[str] = typer.Option(None, "--split", help="published | published:NAME | by:COL:A+B:C | "
                                        "loo:COL:V | group-kfold:COL:K:I | kfold:K:I (default: the data set's "
                                        "published split; captures: whole captures held out)."),
    model: Optional[str] = typer.Option(None, "--model", help="Registry name (default: the task's default)."),
    epochs: int = typer.Option(30, "--epochs"),
    seed: int = typer.Option(0, "--seed"),
    target: str = typer.Option("auto", "--target", help="auto | class | value | coords"),
    hp: List[str] = typer.Option([], "--hp", help="Model hyper-parameter KEY=VALUE (repeatable; JSON values)."),
    option: List[str] = typer.Option([], "--option", help="Data-set loader option KEY=VALUE (repeatable)."),
    batch_size: int = typer.Option(64, "--batch-size"),
    lr: float = typer.Option(1e-3, "--lr"),
    patience: int = typer.Option(8, "--patience", help="Early-stopping patience in epochs (0: off)."),
    val_group: Optional[str] = typer.Option(None, "--val-group", help="Hold out whole groups of this domain "
                                            "column of the TRAINING part for validation."),
    max_train: Optional[int] = typer.Option(None, "--max-train", help="Subsample the training part."),
    augment: bool = typer.Option(False, "--augment", help="Gain / time-shift / noise augmentation."),
    window: int = typer.Option(50, "--window", help="Captures: window length in resampled samples."),
    hop: int = typer.Option(25, "--hop", help="Captures: window hop in samples."),
    rate: float = typer.Option(100.0, "--rate", help="Captures: resampling rate in Hz."),
    label_column: str = typer.Option("label", "--label-column", help="Captures: label column of the sidecar CSV."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    as_json: bool = typer.Option(False, "--json", help="Print metrics.json to stdout."),
) -> None:
    """Train a model; the run directory holds config.json, metrics.json, model.safetensors and plots."""
    kwargs = dict(epochs=epochs, seed=seed, out_dir=out, hp=_key_values(hp, "--hp"), target=target,
                  batch_size=batch_size, lr=lr, patience=patience, max_train_windows=max_train,
                  augment=augment or None, progress=progress and not as_json)
    if val_group:
        kwargs["val_group"] = val_group
    if Path(data).exists():
        from edgecsi.training.train_captures import read_capture_list, train_from_captures

        result = train_from_captures(task, read_capture_list(data), split=split, model=model, window=window,
                                     hop=hop, rate_hz=rate, label_column=label_column, **kwargs)
    else:
        from edgecsi.training.train import train

        result = train(task, data, split, model, dataset_options=_key_values(option, "--option"), **kwargs)
    if as_json:
        typer.echo(json.dumps(result.metrics, indent=2))
    else:
        typer.echo(result.summary())


@app.command("combine")
def combine_command(
    runs: List[Path] = typer.Argument(..., help="Run directories trained for the same task, data, split and "
                                      "pipeline (the models may differ)."),
    out: Path = typer.Option(..., "--out", help="Run directory to write."),
    evaluate: bool = typer.Option(True, "--evaluate/--no-evaluate", help="Reload the data and measure the "
                                  "combined model on the runs' test sets."),
    as_json: bool = typer.Option(False, "--json", help="Print metrics.json to stdout."),
) -> None:
    """Average trained runs into one run (one model: the mean of their outputs) that `edgecsi export` takes."""
    from edgecsi.training.combine_runs import combine_runs
    from edgecsi.training.metrics import headline

    result = combine_runs(runs, out, evaluate_test=evaluate)
    if as_json:
        typer.echo(json.dumps(result.metrics, indent=2))
    else:
        typer.echo(result.summary())
        for member in result.metrics["members"]:
            for name, m in member["test"].items():
                # the run's own name tells members of one model apart (e.g. other columns or centring)
                typer.echo(f"  member {Path(member['run']).name} ({member['model']}, seed {member['seed']}) "
                           f"test {name}: {headline(m)}")
