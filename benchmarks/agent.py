"""Gateway agent benchmark: one process pinned to one core, a real bundle, real Nexmon UDP on loopback.

Measures, for the onnxruntime agent and (as the comparison) the same agent running the torch
model in-process:
- the highest packet rate handled with no drops (stepping the send rate up);
- CPU % of one core at 100 packets/s;
- latency from the moment a window closes to its detection (p50/p99, from the agent's stats);
- resident memory (RSS);
- start-up: process start to ``/health`` answering (median of 5).
Targets (issue 7): >= 5,000 packets/s, < 5% of a core at 100 packets/s, RSS < 80 MB,
p99 < 50 ms after the window closes.

    .venv/bin/python benchmarks/agent.py [--seconds 3] [--rates 1000,2000,5000,10000,20000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CAPTURE = REPO.parent / "shared/captures/nexmon/csikit_example_4339.pcap"

AGENT = r"""
import sys
engine, bundle, run_dir, port, http_port, query = sys.argv[1:7]
from edgecsi.edge.agent import Agent, AgentOptions, _Model
if engine == "torch":
    import numpy as np, torch
    from edgecsi.training.train import load_run
    torch.set_num_threads(1)
    model, _ = load_run(run_dir)
    def infer(self, x):
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()
    _Model.infer = infer
agent = Agent(AgentOptions(bundle=bundle, sources=[f"udp://127.0.0.1:{port}{query}"], http=f"127.0.0.1:{http_port}",
                           stdout=False, watch_s=0, max_queue=100000))
agent.run()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_bundle(work: Path) -> tuple[Path, Path]:
    from edgecsi.export.export_run import HeldOut, export_run
    from edgecsi.firmware_bridge import read
    from edgecsi.training.from_captures import LabelledCapture, default_config, windows_from_captures
    from edgecsi.training.train import train

    batch = read(CAPTURE).batch
    half = len(batch) // 2
    caps = [LabelledCapture(batch.select(slice(0, half)), "first", label="empty"),
            LabelledCapture(batch.select(slice(half, None)), "second", label="present")]
    ws, fitted = windows_from_captures(caps, default_config(50.0, window=50, hop=10), task="presence")
    import numpy as np

    ws.domains["part"] = np.where(np.arange(len(ws.x)) % 5 == 0, "test", "train")
    train("presence", ws, "by:part:train:test", "presence_cnn", epochs=3, seed=0, out_dir=work / "run", progress=False,
          pipeline_config=fitted.to_dict())
    export_run(work / "run", work / "bundle", heldout=HeldOut(ws.x[:64], ws.x, ws.y), max_int8_drop=1e9)
    return work / "bundle", work / "run"


def payloads() -> list[bytes]:
    from edgecsi.firmware_bridge.sources.pcap_stream import PcapStream, udp_payload

    stream = PcapStream()
    return [udp_payload(frame, stream.linktype) for _, frame in stream.feed(CAPTURE.read_bytes())]


def stats(http_port: int) -> dict:
    return json.loads(urllib.request.urlopen(f"http://127.0.0.1:{http_port}/stats", timeout=5).read())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def send(port: int, data: list[bytes], rate: float, seconds: float) -> int:
    """Paced sending from this process; returns datagrams sent."""
    n = int(rate * seconds)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        t0 = time.perf_counter()
        for i in range(n):
            due = t0 + i / rate
            while time.perf_counter() < due:
                pass
            tx.sendto(data[i % len(data)], ("127.0.0.1", port))
    return n


def measure(engine: str, bundle: Path, run_dir: Path, rates: list[int], seconds: float, data: list[bytes],
            query: str) -> dict:
    port, http_port = free_port(), free_port()
    cmd = [sys.executable, "-c", AGENT, engine, str(bundle), str(run_dir), str(port), str(http_port), query]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0"] + cmd
    # The glibc settings the systemd unit of `edgecsi deploy` gives the agent.
    from edgecsi.export.deploy import AGENT_MALLOC_ENV

    env = {**os.environ, **AGENT_MALLOC_ENV}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.time() + 60
        while True:
            try:
                stats(http_port)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"agent did not start: {proc.stderr.read().decode()[-2000:]}")
                time.sleep(0.1)
        result = {"engine": engine}
        # CPU at 100 packets/s.
        before, c0 = stats(http_port), cpu_seconds(proc.pid)
        sent = send(port, data, 100, 10.0)
        time.sleep(0.5)
        after, c1 = stats(http_port), cpu_seconds(proc.pid)
        result["cpu_pct_at_100pps"] = 100 * (c1 - c0) / 10.5
        result["received_at_100pps"] = f"{after['packets'] - before['packets']}/{sent}"
        result["rss_mb_at_100pps"] = rss_mb(proc.pid)
        result["latency_ms_at_100pps"] = after["latency_ms"]
        # Highest rate with no drops.
        best = 0
        per_rate = {}
        for rate in rates:
            before = stats(http_port)
            sent = send(port, data, rate, seconds)
            time.sleep(1.0)
            after = stats(http_port)
            got = after["packets"] - before["packets"]
            dropped_windows = after["dropped_windows"] - before["dropped_windows"]
            per_rate[rate] = {"sent": sent, "received": got, "dropped_windows": dropped_windows}
            if got == sent and dropped_windows == 0:
                best = rate
            else:
                break
        s = stats(http_port)
        result.update(max_rate_no_drops=best, per_rate=per_rate, latency_ms=s["latency_ms"],
                      inference_ms=s["inference_ms"], rss_mb=rss_mb(proc.pid), windows=s["windows"])
        return result
    finally:
        proc.terminate()
        proc.wait(10)


def startup_s(engine: str, bundle: Path, run_dir: Path, repeats: int = 5) -> list[float]:
    """Seconds from process start to ``/health`` answering. onnxruntime: the real command line
    (``python -m edgecsi.cli run``); torch: the same agent with torch imported and the model loaded."""
    times = []
    for _ in range(repeats):
        port, http_port = free_port(), free_port()
        if engine == "onnxruntime":
            cmd = [sys.executable, "-m", "edgecsi.cli", "run", "--bundle", str(bundle), "--source",
                   f"udp://127.0.0.1:{port}", "--http", f"127.0.0.1:{http_port}", "--quiet"]
        else:
            cmd = [sys.executable, "-c", AGENT, engine, str(bundle), str(run_dir), str(port), str(http_port), ""]
        if shutil.which("taskset"):
            cmd = ["taskset", "-c", "0"] + cmd
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=1).read()
                    times.append(time.perf_counter() - t0)
                    break
                except OSError:
                    if proc.poll() is not None or time.perf_counter() - t0 > 60:
                        raise RuntimeError(f"agent did not start: {proc.stderr.read().decode()[-2000:]}")
                    time.sleep(0.005)
        finally:
            proc.terminate()
            proc.wait(10)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rates", default="1000,2000,5000,10000,20000")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--query", default="", help="UDP source options for the agent (default: the agent's own)")
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        bundle, run_dir = build_bundle(Path(tmp))
        data = payloads()
        results = [measure(engine, bundle, run_dir, rates, args.seconds, data, args.query)
                   for engine in ("onnxruntime", "torch")]
        for r in results:
            t = startup_s(r["engine"], bundle, run_dir)
            r["startup_s"] = {"median": float(sorted(t)[len(t) // 2]), "all": t}
    print(f"{'engine':12s} {'max pkt/s':>10s} {'CPU% @100':>10s} {'p50 ms':>8s} {'p99 ms':>8s} "
          f"{'RSS@100':>8s} {'RSS end':>8s} {'start s':>8s}")
    for r in results:
        print(f"{r['engine']:12s} {r['max_rate_no_drops']:>10d} {r['cpu_pct_at_100pps']:>10.2f} "
              f"{r['latency_ms']['p50']:>8.2f} {r['latency_ms']['p99']:>8.2f} {r['rss_mb_at_100pps']:>8.1f} "
              f"{r['rss_mb']:>8.1f} {r['startup_s']['median']:>8.2f}")
    ort, pt = results
    print(f"ratios onnxruntime/torch: RSS {ort['rss_mb'] / pt['rss_mb']:.2f}, "
          f"CPU@100 {ort['cpu_pct_at_100pps'] / max(pt['cpu_pct_at_100pps'], 1e-9):.2f}, "
          f"start-up {ort['startup_s']['median'] / pt['startup_s']['median']:.2f}")
    print(json.dumps(results, indent=1))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
