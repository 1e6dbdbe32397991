"""edgecsi run: the gateway agent. Imports nothing heavy: this is what runs on a Raspberry Pi."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer

from edgecsi.cli.app import app


@app.command("run")
def run_command(
    bundle: Path = typer.Option(..., help="bundle directory (or the 'current' link of a deployment)"),
    source: List[str] = typer.Option(..., help="udp://0.0.0.0:5500, serial:///dev/ttyUSB0?baud=921600, "
                                               "file:capture.pcap?speed=1, or - for stdin; repeatable"),
    allow_mac: List[str] = typer.Option([], help="only these transmitter MACs (repeatable)"),
    event_log: Optional[Path] = typer.Option(None, help="SQLite event log (WAL); needed by MQTT/webhook"),
    mqtt: Optional[str] = typer.Option(None, help="MQTT broker host[:port] (Home Assistant discovery)"),
    node_id: Optional[str] = typer.Option(None, help="gateway id in MQTT topics (default: hostname)"),
    webhook: Optional[str] = typer.Option(None, help="POST every event to this URL"),
    http: str = typer.Option("127.0.0.1:8765", help="local HTTP API host:port, or 'off'"),
    threads: int = typer.Option(1, help="onnxruntime threads"),
    vote: int = typer.Option(5, help="majority vote over this many windows"),
    state_every: float = typer.Option(30.0, help="seconds between periodic state events"),
    max_queue: int = typer.Option(256, help="windows waiting for inference before the oldest are dropped"),
    every_window: bool = typer.Option(False, help="also emit one event per window"),
    trusted_key: List[Path] = typer.Option([], help="Ed25519 public key(s); bundles must be signed by one"),
    max_seconds: Optional[float] = typer.Option(None, help="stop after this long"),
    quiet: bool = typer.Option(False, help="no JSON lines on stdout"),
    repair: bool = typer.Option(True, "--repair/--no-repair",
                                help="run the bundle's repair generator (if it carries one) before the model"),
    stats_json: Optional[Path] = typer.Option(None, help="write final stats here on exit"),
) -> None:
    """Run offline detection on live or recorded CSI; events as JSON lines on stdout."""
    import socket

    from edgecsi.edge.agent import Agent, AgentOptions

    options = AgentOptions(
        bundle=bundle, sources=list(source), allow_macs=list(allow_mac) or None, event_log=event_log, mqtt=mqtt,
        node_id=node_id or socket.gethostname(), webhook=webhook, http=None if http == "off" else http,
        threads=threads, vote=vote, state_every_s=state_every, max_queue=max_queue, every_window=every_window,
        trusted_keys=list(trusted_key), require_signature=bool(trusted_key), stdout=not quiet,
        repair=repair)
    stats = Agent(options).run(max_seconds=max_seconds)
    if stats_json:
        stats_json.write_text(json.dumps(stats, indent=2, default=str))
    typer.echo(json.dumps({"final_stats": {k: stats[k] for k in ("packets", "windows", "inferences", "events",
                                                                  "dropped_windows", "bad_packets")}}), err=True)
