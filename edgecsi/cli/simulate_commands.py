"""``edgecsi simulate``: a labelled synthetic capture in a real chip's file format."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from edgecsi.cli.app import app


@app.command("simulate")
def simulate_command(
    scenario: str = typer.Option(..., "--scenario", help="empty, presence, walk, crowd or doorway."),
    fmt: str = typer.Option("esp32", "--format", help="esp32, nexmon-43455c0, nexmon-4339 or nexmon-4366c0."),
    out: Path = typer.Option(..., "--out", help="Capture to write: .pcap (Nexmon) or .csv (ESP32 lines); "
                                                "labels go next to it as <name>.labels.csv/.json."),
    seconds: float = typer.Option(10.0, "--seconds", help="Length of the capture."),
    rate: float = typer.Option(100.0, "--rate", help="Packets per second sent."),
    seed: int = typer.Option(0, "--seed", help="Same seed, same capture."),
    room: str = typer.Option("base", "--room", help="base, or changed (a second domain)."),
    people: int = typer.Option(3, "--people", help="Number of people (crowd)."),
    carry: str = typer.Option("random", "--carry", help="Doorway walkers carry none, metal, liquid or random."),
    snr: float = typer.Option(None, "--snr", help="CSI SNR in dB (default: the chip's typical value)."),
    loss: float = typer.Option(0.02, "--loss", help="Packet loss rate (bursty)."),
    lines: str = typer.Option("esp32-csi-tool", "--lines", help="ESP32 line format: esp32-csi-tool or esp-csi."),
    as_json: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
) -> None:
    """Simulate people in a room (or walking through a doorway) and write what the chip would capture."""
    from edgecsi.training.simulate import simulate, write_simulation

    try:
        result = simulate(scenario, fmt=fmt, seconds=seconds, rate_hz=rate, seed=seed, room=room, people=people,
                          carry=carry, snr_db=snr, loss=loss)
        paths = write_simulation(result, out, lines=lines)
    except ValueError as exc:
        typer.echo(f"edgecsi: error: {exc}", err=True)
        raise typer.Exit(2) from None
    summary = {"packets": len(result.batch), "sent": result.meta["packets_sent"],
               "passes": len(result.meta["passes"]), **{k: str(v) for k, v in paths.items()}}
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    typer.echo(f"{paths['capture']}: {summary['packets']:,} packets ({scenario}, {fmt}, seed {seed})")
    typer.echo(f"labels: {paths['labels']}, {paths['meta']}")
