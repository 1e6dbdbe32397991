"""``edgecsi inspect | convert | plot``: look at a capture file, turn it into arrays or a picture."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from edgecsi.cli.app import app

_FORMAT_HELP = "Skip detection and read as this format (nexmon-pcap, esp32-csi-tool, intel5300...)."
_CHIP_HELP = "Nexmon chip (4339, 4358, 43455c0, 4366c0) when the file's chip id is missing or wrong."


def _read_options(chip: Optional[str]) -> dict:
    return {"chip": chip} if chip else {}


@app.command("inspect")
def inspect_command(
    capture: Path = typer.Argument(..., help="Capture file (pcap, ESP32 CSV, Intel/Atheros .dat...)."),
    fmt: Optional[str] = typer.Option(None, "--format", help=_FORMAT_HELP),
    chip: Optional[str] = typer.Option(None, "--chip", help=_CHIP_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Format, packets, duration, rate, streams, bandwidth, subcarriers, RSSI and bad records of a capture."""
    from edgecsi.firmware_bridge.inspect import inspect_file, render_text

    summary = inspect_file(capture, format=fmt, **_read_options(chip))
    typer.echo(json.dumps(summary, indent=2) if as_json else render_text(summary))


@app.command("convert")
def convert_command(
    capture: Path = typer.Argument(..., help="Capture file."),
    out: Path = typer.Argument(..., help="Output .npz."),
    fmt: Optional[str] = typer.Option(None, "--format", help=_FORMAT_HELP),
    chip: Optional[str] = typer.Option(None, "--chip", help=_CHIP_HELP),
    compress: bool = typer.Option(False, "--compress", help="Write a compressed npz."),
    as_json: bool = typer.Option(False, "--json", help="Print {key: shape} as JSON."),
) -> None:
    """Write csi, subcarriers, invalid and every per-packet column of a capture to an .npz."""
    from edgecsi.firmware_bridge.npz_export import write_npz
    from edgecsi.firmware_bridge.read import read

    cap = read(capture, format=fmt, **_read_options(chip))
    shapes = write_npz(cap, out, compress=compress)
    if as_json:
        typer.echo(json.dumps({"out": str(out), "packets": cap.n_packets, "bad": cap.bad.as_dict(),
                               "arrays": {k: list(v) for k, v in shapes.items()}}, indent=2))
        return
    typer.echo(f"{out}: {cap.n_packets:,} packets, {len(shapes)} arrays"
               + (f", {cap.bad.total:,} bad records skipped" if cap.bad.total else ""))
    for key, shape in shapes.items():
        if shape:
            typer.echo(f"  {key:<28} {shape}")


@app.command("plot")
def plot_command(
    capture: Path = typer.Argument(..., help="Capture file."),
    out: Path = typer.Argument(..., help="Output .png."),
    fmt: Optional[str] = typer.Option(None, "--format", help=_FORMAT_HELP),
    chip: Optional[str] = typer.Option(None, "--chip", help=_CHIP_HELP),
    stream: int = typer.Option(0, "--stream", help="Which stream (0 = most packets; see `edgecsi inspect`)."),
    rx: int = typer.Option(0, "--rx", help="Receive antenna."),
    tx: int = typer.Option(0, "--tx", help="Transmit antenna."),
    max_packets: int = typer.Option(4000, "--max-packets", help="Decimate longer captures to this many."),
) -> None:
    """Amplitude heat map (time x subcarrier) and RSSI over time of one stream, as a PNG."""
    from edgecsi.firmware_bridge.read import read
    from edgecsi.training.capture_plots import plot_capture

    cap = read(capture, format=fmt, **_read_options(chip))
    try:
        drawn = plot_capture(cap, out, stream=stream, rx=rx, tx=tx, max_packets=max_packets)
    except ValueError as exc:
        typer.echo(f"edgecsi: error: {exc}", err=True)
        raise typer.Exit(2)
    typer.echo(f"{out}: {drawn['stream']}, {drawn['packets']:,} packets (of {drawn['streams']} streams)")
