"""``edgecsi datasets``: list the real data sets, where they are, how big, which tasks and domains."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from edgecsi.cli.app import app


@app.command("datasets")
def datasets_command(
    root: Optional[Path] = typer.Option(None, "--root", help="Directory holding one folder per data set "
                                        "(default: $EDGECSI_DATASETS or ../shared/datasets next to the repo)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
) -> None:
    """List the registered data sets: size on disk, tasks, domain columns, windows, license."""
    from edgecsi.training.datasets.catalog import human_size, list_datasets

    rows = list_datasets(root)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for row in rows:
        size = human_size(row["size_bytes"]) if row["present"] else "ABSENT"
        windows = ", ".join(f"{task} {n:,}" for task, n in row["windows"].items())
        typer.echo(f"{row['id']}  [{size}]  {row['sensing']}")
        typer.echo(f"    {row['title']}")
        typer.echo(f"    tasks: {', '.join(row['tasks'])}   windows: {windows}")
        typer.echo(f"    domains: {', '.join(row['domains'])}")
        typer.echo(f"    x: {row['features']}")
        typer.echo(f"    license: {row['license']}")
        typer.echo(f"    at: {row['directory']}")
