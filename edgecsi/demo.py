"""The main job, end to end on the embedded example: train -> export int8 -> live replay into the agent.

1. The ESP32-S2 excerpt in ``examples/esp32s2_har`` becomes real ESP32 serial lines (esp-csi
   format), one file per recorded sequence, each with a ``.labels.csv`` sidecar.
2. A model is trained on day D1 from those lines through the gateway's own signal pipeline
   (sequences e01..e08 train, e09 + e10 held out, the data set's published protocol).
3. The run is exported to an int8 ONNX bundle with a parity report.
4. A later day is written line by line, at the recorded pace (times ``speed``), into a
   pseudo-terminal; the agent reads the other end as a serial port and prints its
   detections live. Accuracy is measured against the labels of the replayed packets.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgecsi.frames import make_batch, mac_to_int

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "esp32s2_har" / "amplitudes.npz"
RATE_HZ = 100.0  # the data set's ping rate
TX_MAC = "50:c7:bf:00:00:01"  # the router's MAC is not in the data set; any fixed MAC will do
TRAIN_RUNS = tuple(f"e{i:02d}" for i in range(1, 9))
TEST_RUNS = ("e09", "e10")
PUBLISHED = {"D1": 85.1, "D2": 40.4, "D3": 39.2, "D4": 22.4}


@dataclass
class DemoReport:
    work_dir: str
    replay_day: str
    heldout_accuracy_torch: float
    heldout_accuracy_int8: float
    replay_packets_sent: int
    replay_packets_parsed: int
    replay_windows: int
    replay_accuracy_raw: float  # per window, before smoothing
    replay_accuracy_smoothed: float  # per window, after the majority vote the agent reports
    published_accuracy: float | None
    change_events: int
    bad_packets: dict = field(default_factory=dict)
    latency_ms: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def nearest_iq(amplitude: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Complex int8 pairs whose magnitude is closest to ``amplitude`` (phase not in the data).

    ESP32 reports int8 I/Q; the data set kept only |H|. For each amplitude the integer
    pair with the nearest magnitude is taken, with a random quadrant, so a reader
    recovering |H| from the lines gets the data set's amplitudes to within ~0.1.
    """
    grid = np.arange(0, 128)
    mags = np.hypot(grid[:, None], grid[None, :]).ravel()
    order = np.argsort(mags)
    sorted_mags = mags[order]
    a = np.clip(amplitude, 0, 127).ravel()
    pos = np.clip(np.searchsorted(sorted_mags, a), 1, len(sorted_mags) - 1)
    left_better = np.abs(sorted_mags[pos - 1] - a) <= np.abs(sorted_mags[pos] - a)
    pick = order[np.where(left_better, pos - 1, pos)]
    re, im = (pick // 128).astype(np.float32), (pick % 128).astype(np.float32)
    signs = rng.integers(0, 4, size=a.shape)
    re = np.where(signs & 1, -re, re)
    im = np.where(signs & 2, -im, im)
    return (re + 1j * im).reshape(amplitude.shape).astype(np.complex64)


def example_sequences(path: Path = EXAMPLES) -> dict[tuple[str, str], dict]:
    """{(day, sequence): {"amplitude": float32[packet, 56], "label": str[packet], "subcarriers"}}."""
    with np.load(path) as data:
        amp = data["amplitude_q"].astype(np.float32) * float(data["step"])
        label, day, seq, sc = data["label"], data["day"], data["sequence"], data["subcarriers"]
    out = {}
    for key in dict.fromkeys(zip(day.tolist(), seq.tolist())):
        rows = (day == key[0]) & (seq == key[1])
        out[key] = {"amplitude": amp[rows], "label": label[rows], "subcarriers": sc}
    return out


def sequence_batch(seq: dict, *, start_s: float, rng: np.random.Generator):
    """A CSIBatch of one sequence on the 20 MHz natural grid (-32..31), packets every 10 ms."""
    n = len(seq["label"])
    grid = np.arange(-32, 32)
    csi = np.zeros((n, 64), np.complex64)
    cols = np.searchsorted(grid, seq["subcarriers"])
    csi[:, cols] = nearest_iq(seq["amplitude"], rng)
    invalid = np.ones(64, bool)
    invalid[cols] = False
    return make_batch(format="esp-csi", chip="esp32s2", subcarriers=grid, csi=csi, invalid=invalid,
                      time=start_s + np.arange(n) / RATE_HZ, mac=np.full(n, mac_to_int(TX_MAC)),
                      seq=np.arange(n), rssi=np.full(n, -45.0), noise=np.full(n, -95.0),
                      channel=np.full(n, 6), bandwidth_mhz=np.full(n, 20))


def write_lines(batch, path: Path) -> int:
    """ESP32 serial lines (esp-csi csi_recv_router, HT20) for ``batch``; returns the count."""
    from edgecsi.firmware_bridge.writers.esp32_lines import write_esp_csi_lines

    return write_esp_csi_lines(batch, path)


def write_captures(work: Path, *, seed: int = 0) -> dict[str, list[Path]]:
    """examples -> work/captures/<day>/<sequence>.csv (+ .labels.csv); {day: [paths]}."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[Path]] = {}
    clock = 1000.0
    for (day, name), seq in example_sequences().items():
        batch = sequence_batch(seq, start_s=clock, rng=rng)
        clock += len(seq["label"]) / RATE_HZ + 5.0  # sequences were recorded apart
        path = work / "captures" / day / f"{name}.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_lines(batch, path)
        (path.with_name(f"{name}.labels.csv")).write_text("label\n" + "\n".join(seq["label"].tolist()) + "\n")
        out.setdefault(day, []).append(path)
    return out


def _sequence_run(name: str) -> str:
    return name.split("_")[0]            # e01_rx_tx.csv -> e01


def train_model(paths: list[Path], run_dir: Path, *, epochs: int, seed: int, progress: bool):
    """Train from the written lines; the run records them, so ``edgecsi export RUN`` needs no --data."""
    from edgecsi.training.from_captures import default_config
    from edgecsi.training.train import train
    from edgecsi.training.train_captures import capture_windows

    ws, fitted = capture_windows("activity", [(p, None) for p in paths], default_config(RATE_HZ, window=50, hop=25))
    train_files = [p.name for p in paths if _sequence_run(p.name) in TRAIN_RUNS]
    test_files = [p.name for p in paths if _sequence_run(p.name) in TEST_RUNS]
    split = f"by:file:{'+'.join(train_files)}:{'+'.join(test_files)}"
    result = train("activity", ws, split, "activity_cnn", epochs=epochs, seed=seed, out_dir=run_dir,
                   progress=progress, val_group="file", pipeline_config=fitted.to_dict())
    return result, ws


def heldout(ws, *, seed: int):
    """The export's windows: up to 1024 training windows (e01-e08) to calibrate int8 on, and the held-out
    e09 + e10 windows to check parity on."""
    from edgecsi.export.export_run import HeldOut

    run = np.array([_sequence_run(str(f)) for f in ws.domains["file"]])
    train_rows = np.flatnonzero(np.isin(run, TRAIN_RUNS))
    test_rows = np.flatnonzero(np.isin(run, TEST_RUNS))
    rng = np.random.default_rng(seed)
    calib = ws.x[np.sort(rng.choice(train_rows, min(1024, len(train_rows)), replace=False))]
    return HeldOut(calibration=calib, x=ws.x[test_rows], y=ws.y[test_rows])


def export_model(run_dir: Path, bundle: Path, ws, *, seed: int):
    from edgecsi.export.export_run import export_run

    return export_run(run_dir, bundle, heldout=heldout(ws, seed=seed), source_formats=["esp-csi", "esp32-csi-tool"])


def replay_through_pty(bundle: Path, path: Path, *, speed: float, verbose: bool) -> tuple[list, dict, list[float], int]:
    """Write ``path`` line by line into a pty at the recorded pace; the agent reads the other end.

    Returns (agent events, agent stats, host time each line was written, lines written).
    """
    import pty
    import tty

    from edgecsi.edge.agent import Agent, AgentOptions

    master, slave = pty.openpty()
    tty.setraw(slave)  # no echo: nobody reads the master side back
    slave_name = os.ttyname(slave)
    events: list = []

    def show(event) -> None:
        events.append(event)
        if verbose and event.kind == "change":
            print(f"  [{time.strftime('%H:%M:%S')}] {event.stream}: {event.state} ({event.score:.2f})", flush=True)

    agent = Agent(AgentOptions(bundle=bundle, sources=[f"serial://{slave_name}?baud=921600"], http=None,
                               stdout=False, every_window=True, vote=5, watch_s=0), on_event=show)
    agent.start()
    lines = path.read_bytes().splitlines(keepends=True)
    written: list[float] = []
    t0 = time.monotonic()
    try:
        for i, line in enumerate(lines):
            due = t0 + i / (RATE_HZ * speed)
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            os.write(master, line)
            if line.startswith(b"CSI_DATA"):  # header rows go out too, like a device's boot chatter
                written.append(time.time())
        time.sleep(1.0 + 1.0 / speed)  # let the last windows close and be inferred
    finally:
        stats = agent.shutdown()
        os.close(master)
        os.close(slave)
    return events, stats, written, len(written)


def score_replay(events: list, labels: np.ndarray, device_times: np.ndarray, first_written: float,
                 window_s: float) -> tuple[float, float, int]:
    """Per-window accuracy of raw and smoothed states against the label at the window centre.

    The agent times packets by the ESP32's own clock anchored at the first packet's
    arrival, so a window's centre maps back onto the device clock of the replayed lines
    (``device_times``), whatever the replay speed.
    """
    windows = [e for e in events if e.kind == "window"]
    if not windows:
        return 0.0, 0.0, 0
    centre = np.array([e.time for e in windows]) - window_s / 2
    on_device = centre - first_written + device_times[0]
    idx = np.clip(np.searchsorted(device_times, on_device), 0, len(labels) - 1)
    truth = labels[idx]
    raw = np.mean([e.raw == y for e, y in zip(windows, truth)]) * 100
    smoothed = np.mean([e.state == y for e, y in zip(windows, truth)]) * 100
    return float(raw), float(smoothed), len(windows)


def run_demo(work_dir: str | Path = "runs/demo", *, replay_day: str = "D2", speed: float = 1.0, epochs: int = 30,
             seed: int = 0, verbose: bool = True) -> DemoReport:
    """Run the whole main job; returns (and writes to ``work_dir/report.json``) what it measured."""
    work = Path(work_dir)
    work.mkdir(parents=True, exist_ok=True)
    seconds = {}

    def step(name: str, started: float) -> None:
        seconds[name] = round(time.monotonic() - started, 2)
        if verbose:
            print(f"== {name} done in {seconds[name]:.1f} s", flush=True)

    t = time.monotonic()
    if verbose:
        print("== writing the embedded ESP32-S2 example as ESP32 serial lines", flush=True)
    captures = write_captures(work, seed=seed)
    step("write ESP32 lines", t)

    t = time.monotonic()
    if verbose:
        print(f"== training on D1 ({len(captures['D1'])} sequences, e01-e08 train, e09-e10 held out)", flush=True)
    result, ws = train_model(captures["D1"], work / "run", epochs=epochs, seed=seed, progress=verbose)
    step("train", t)

    t = time.monotonic()
    exported = export_model(work / "run", work / "bundle", ws, seed=seed)
    p = exported.parity
    if verbose:
        print(f"   held-out D1 (e09+e10): torch {p.metric_torch:.1f}%  int8 {p.metric_int8:.1f}%  "
              f"(published CNN 85.1%); int8 {p.size_bytes['int8'] / 1e3:.0f} kB, "
              f"p50 {p.latency_ms['ort_int8']['p50']:.3f} ms vs torch {p.latency_ms['torch']['p50']:.3f} ms", flush=True)
    step("export int8", t)

    t = time.monotonic()
    replay = work / "captures" / f"{replay_day}.csv"
    day_paths = captures[replay_day]
    replay.write_bytes(b"".join(p.read_bytes() for p in day_paths))
    labels = np.concatenate([np.array((p.with_name(p.stem + ".labels.csv")).read_text().split()[1:]) for p in day_paths])
    n_lines = len(labels)
    if verbose:
        print(f"== replaying {replay_day} ({n_lines} packets, {n_lines / RATE_HZ / speed:.0f} s) as serial lines "
              f"through a pseudo-terminal into the agent", flush=True)
    events, stats, written, sent = replay_through_pty(work / "bundle", replay, speed=speed, verbose=verbose)
    step("live replay", t)

    cfg = json.loads((work / "run" / "config.json").read_text())["pipeline"]
    window_s = cfg["window"]["length"] / cfg["resample"]["rate_hz"]
    from edgecsi.firmware_bridge import read

    device_times = np.concatenate([read(p).batch.time for p in day_paths])
    raw, smoothed, n_windows = score_replay(events, labels, device_times, written[0] if written else 0.0, window_s)
    report = DemoReport(
        work_dir=str(work), replay_day=replay_day, heldout_accuracy_torch=p.metric_torch,
        heldout_accuracy_int8=p.metric_int8, replay_packets_sent=sent, replay_packets_parsed=int(stats["packets"]),
        replay_windows=n_windows, replay_accuracy_raw=raw, replay_accuracy_smoothed=smoothed,
        published_accuracy=PUBLISHED.get(replay_day), change_events=sum(e.kind == "change" for e in events),
        bad_packets=stats["bad_packets"], latency_ms=stats["latency_ms"], seconds=seconds)
    (work / "report.json").write_text(json.dumps(report.as_dict(), indent=2))
    if verbose:
        print(f"== {replay_day}: {n_windows} windows from {stats['packets']}/{sent} packets; accuracy per window "
              f"{raw:.1f}% raw, {smoothed:.1f}% after majority vote (published source-only "
              f"{PUBLISHED.get(replay_day)}%)")
        print(f"   report: {work / 'report.json'}")
    return report


if __name__ == "__main__":  # pragma: no cover
    run_demo(sys.argv[1] if len(sys.argv) > 1 else "runs/demo")
