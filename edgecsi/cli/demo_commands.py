"""edgecsi demo: the main job on the embedded example."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from edgecsi.cli.app import app


@app.command("demo")
def demo_command(
    work_dir: Path = typer.Option(Path("runs/demo"), help="where captures, the run, the bundle and the report go"),
    replay_day: str = typer.Option("D2", help="later day to replay: D2 (+10 min) or D4 (+90 min)"),
    speed: float = typer.Option(1.0, help="replay pace relative to the recording (1 = real time)"),
    epochs: int = typer.Option(30),
    seed: int = typer.Option(0),
    as_json: bool = typer.Option(False, "--json", help="print only the final report as JSON"),
) -> None:
    """Train on ESP32-S2 CSI (D1), export int8, replay a later day as serial lines into the agent."""
    from edgecsi.demo import run_demo

    report = run_demo(work_dir, replay_day=replay_day, speed=speed, epochs=epochs, seed=seed, verbose=not as_json)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
