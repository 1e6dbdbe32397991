"""The gateway agent end to end: real bundles, real sockets, real files, reloads, back-pressure."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from bundle_factory import make_capture_bundle
from edgecsi.edge.agent import Agent, AgentOptions
from edgecsi.firmware_bridge import read
from edgecsi.firmware_bridge.sources.pcap_stream import PcapStream, udp_payload
from services import free_port



def run_agent(options: AgentOptions, **kw) -> tuple[dict, list]:
    events = []
    agent = Agent(options, on_event=events.append)
    stats = agent.run(install_signals=False, **kw)
    return stats, events


def test_file_replay_source_detects_every_window(nexmon_bundle, nexmon_capture, tmp_path):
    stats, events = run_agent(AgentOptions(bundle=nexmon_bundle, sources=[f"file:{nexmon_capture}?speed=0"],
                                           http=None, stdout=False, every_window=True, max_queue=100000,
                                           event_log=tmp_path / "events.db"))
    assert stats["packets"] == 2850
    assert stats["windows"] > 10 and stats["inferences"] == stats["windows"]
    assert stats["dropped_windows"] == 0 and stats["pipeline_errors"] == 0
    windows = [e for e in events if e.kind == "window"]
    assert len(windows) == stats["windows"]
    assert {e.stream.split("/")[-1] for e in windows} == {"ss0", "ss1", "ss2"}  # three spatial streams
    assert all(e.state in ("empty", "present") for e in windows)
    assert any(e.kind == "change" for e in events)


def _send_payloads(port: int, payloads: list[bytes], garbage_every: int = 0, rate: float = 0.0) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for i, p in enumerate(payloads):
            tx.sendto(p, ("127.0.0.1", port))
            if garbage_every and i % garbage_every == 0:
                tx.sendto(os.urandom(40 + i % 300), ("127.0.0.1", port))
                tx.sendto(b"CSI_DATA,garbage,,,[1 2 3]\n", ("127.0.0.1", port))
            if rate:
                time.sleep(1.0 / rate)


def _payloads(path: Path) -> list[bytes]:
    stream = PcapStream()
    return [udp_payload(frame, stream.linktype) for _, frame in stream.feed(path.read_bytes())]


def test_udp_source_with_garbage_keeps_detecting_and_http_api_reports(nexmon_bundle, nexmon_capture, tmp_path):
    port, http_port = free_port(), free_port()
    payloads = _payloads(nexmon_capture)[:1500]
    events = []
    agent = Agent(AgentOptions(bundle=nexmon_bundle, sources=[f"udp://127.0.0.1:{port}"],
                               http=f"127.0.0.1:{http_port}", stdout=False, every_window=True),
                  on_event=events.append)
    agent.start()
    try:
        time.sleep(0.3)
        _send_payloads(port, payloads, garbage_every=10, rate=1000)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and agent.counters["inferences"] < 10:
            time.sleep(0.1)
        time.sleep(0.5)
        stats = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{http_port}/stats", timeout=5).read())
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{http_port}/health", timeout=5).read())
        state = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{http_port}/state", timeout=5).read())
    finally:
        agent.shutdown()
    assert health == {"ok": True, "bundle_version": 10}
    assert stats["packets"] == 1500  # every valid datagram the kernel delivered
    assert sum(stats["bad_packets"].values()) == 2 * 150  # all garbage counted by reason
    assert stats["inferences"] >= 10 and stats["pipeline_errors"] == 0
    assert state and all(v["state"] in ("empty", "present") for v in state.values())


def test_back_pressure_drops_oldest_windows_and_bounds_the_queue(nexmon_bundle, nexmon_capture):
    stats, events = run_agent(AgentOptions(bundle=nexmon_bundle, sources=[f"file:{nexmon_capture}?speed=0"],
                                           http=None, stdout=False, every_window=True, max_queue=2))
    assert stats["windows"] == stats["inferences"] + stats["dropped_windows"]
    assert stats["queue_depth"] <= 2


def test_mac_allow_list(nexmon_bundle, nexmon_capture):
    stats, events = run_agent(AgentOptions(bundle=nexmon_bundle, sources=[f"file:{nexmon_capture}?speed=0"],
                                           http=None, stdout=False, allow_macs=["00:11:22:33:44:55"]))
    assert stats["ignored_packets"] == 2850 and stats["windows"] == 0 and events == []


def _tamper(bundle: Path) -> None:
    data = bytearray((bundle / "model.onnx").read_bytes())
    data[200] ^= 0xFF
    (bundle / "model.onnx").write_bytes(bytes(data))


def test_reload_swaps_good_bundles_and_refuses_bad_ones(nexmon_bundle, nexmon_capture, tmp_path):
    live = tmp_path / "live"
    shutil.copytree(nexmon_bundle, live)
    events = []
    port = free_port()
    agent = Agent(AgentOptions(bundle=live, sources=[f"udp://127.0.0.1:{port}"], http=None, stdout=False,
                               watch_s=0.2), on_event=events.append)
    runner = threading.Thread(target=agent.run, kwargs={"install_signals": False}, daemon=True)
    runner.start()
    try:
        time.sleep(0.5)
        assert agent.model.bundle.version == 10
        # A tampered copy dropped in place: refused, version 10 keeps running.
        _tamper(live)
        time.sleep(1.0)
        assert agent.counters["reload_failures"] >= 1 and "sha256" in agent.last_reload_error
        assert agent.model.bundle.version == 10
        _send_payloads(port, _payloads(nexmon_capture)[:1200], rate=1000)
        deadline = time.monotonic() + 5
        while agent.counters["inferences"] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert agent.counters["inferences"] > 0  # still detecting with the old model
        # A good newer bundle: loaded.
        manifest = json.loads((nexmon_bundle / "manifest.json").read_text())
        manifest["bundle_version"] = 11
        shutil.rmtree(live)
        shutil.copytree(nexmon_bundle, live)
        (live / "manifest.json").write_text(json.dumps(manifest))
        deadline = time.monotonic() + 5
        while agent.model.bundle.version != 11 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert agent.model.bundle.version == 11 and agent.counters["reloads"] == 1
        # An older one (version 10) is refused as a downgrade.
        shutil.rmtree(live)
        shutil.copytree(nexmon_bundle, live)
        time.sleep(1.0)
        assert agent.model.bundle.version == 11 and "older" in agent.last_reload_error
    finally:
        agent.stop()
        runner.join(10)


AGENT_IN_SUBPROCESS = """
import sys, json
from edgecsi.cli import main
sys.argv = ["edgecsi", "run", "--bundle", sys.argv[1], "--source", sys.argv[2], "--http", "off",
            "--every-window", "--stats-json", sys.argv[3]]
try:
    main()
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "scipy", "onnx", "sklearn", "matplotlib") if m in sys.modules)
print(json.dumps({"heavy": heavy}), file=sys.stderr)
"""


def test_cli_agent_never_imports_torch_scipy_onnx_and_reads_stdin(nexmon_bundle, nexmon_capture, tmp_path):
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", AGENT_IN_SUBPROCESS, str(nexmon_bundle), "-",
                           str(tmp_path / "stats.json")], input=nexmon_capture.read_bytes(), capture_output=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    report = json.loads(proc.stderr.decode().strip().splitlines()[-1])
    assert report["heavy"] == []
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["packets"] == 2850 and stats["inferences"] > 10
    lines = [json.loads(l) for l in proc.stdout.decode().splitlines() if l.startswith("{")]
    assert len([l for l in lines if l["kind"] == "window"]) == stats["inferences"]
    assert time.monotonic() - started < 60


def test_sighup_reloads_in_a_real_process(nexmon_bundle, tmp_path):
    live = tmp_path / "live"
    shutil.copytree(nexmon_bundle, live)
    http_port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "edgecsi.cli", "run", "--bundle", str(live), "--source",
                             f"udp://127.0.0.1:{free_port()}", "--http", f"127.0.0.1:{http_port}", "--quiet"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{http_port}/health"
        deadline = time.monotonic() + 20
        health = None
        while time.monotonic() < deadline and health is None:
            try:
                health = json.loads(urllib.request.urlopen(url, timeout=1).read())
            except OSError:
                time.sleep(0.1)
        assert health == {"ok": True, "bundle_version": 10}
        manifest = json.loads((live / "manifest.json").read_text())
        manifest["bundle_version"] = 12
        (live / "manifest.json").write_text(json.dumps(manifest))
        proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if json.loads(urllib.request.urlopen(url, timeout=1).read())["bundle_version"] == 12:
                break
            time.sleep(0.1)
        assert json.loads(urllib.request.urlopen(url, timeout=1).read())["bundle_version"] == 12
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert proc.returncode == 0


ESP32_TOOL = "captures/esp32-csi-tool/csikit_example_fast2_100hz_pitraffic.csv"


@pytest.fixture(scope="module")
def esp32_bundle(tmp_path_factory, shared_dir):
    capture = read(shared_dir / ESP32_TOOL)
    batch = max(capture.batches, key=len)
    half = len(batch) // 2
    tmp = tmp_path_factory.mktemp("esp32agent")
    return make_capture_bundle([batch.select(slice(0, half)), batch.select(slice(half, None))], [0, 1],
                               tmp / "bundle", window=20, hop=10, rate_hz=50.0, version=3)


def test_serial_pty_with_garbage_lines_and_mqtt_to_mosquitto(esp32_bundle, shared_dir, broker, tmp_path):
    import pty
    import tty

    from test_sinks import Subscriber

    sub = Subscriber(broker.port)
    master, slave = pty.openpty()
    tty.setraw(slave)
    agent = Agent(AgentOptions(bundle=esp32_bundle, sources=[f"serial://{os.ttyname(slave)}?baud=921600"],
                               http=None, stdout=False, event_log=tmp_path / "events.db",
                               mqtt=f"127.0.0.1:{broker.port}", node_id="pi-kitchen", state_every_s=0.5))
    agent.start()
    lines = [l for l in (shared_dir / ESP32_TOOL).read_bytes().splitlines(keepends=True) if l.startswith(b"CSI_DATA")]
    rng = np.random.default_rng(0)
    garbage = 0
    try:
        for i, line in enumerate(lines):
            os.write(master, line)
            if i % 25 == 0:
                junk = [b"I (1234) wifi: boot log noise\n", bytes(rng.integers(0, 256, 60, dtype=np.uint8)) + b"\n",
                        b"CSI_DATA,STA,zz:zz,1,2,3,[1 2\n", line[: len(line) // 2] + b"\n"]
                os.write(master, junk[i // 25 % 4])
                garbage += 1
            if i % 50 == 0:
                time.sleep(0.02)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and agent.counters["packets"] < len(lines):
            time.sleep(0.1)
        time.sleep(1.0)
        stats = agent.stats()
        entity = "homeassistant/binary_sensor/pi_kitchen_11_22_33_44_55_66_core_1_ss_1_presence/config"
        assert sub.wait_for(lambda: entity in sub.messages, 10), sorted(sub.messages)
        state_topic = json.loads(sub.messages[entity])["state_topic"]
        assert sub.wait_for(lambda: sub.messages.get(state_topic) in (b"ON", b"OFF"), 10)
        assert sub.messages.get("edgecsi/pi_kitchen/status") == b"online"
    finally:
        agent.shutdown()
        os.close(master)
        os.close(slave)
        sub.close()
    assert stats["packets"] == len(lines)  # every valid line survived the garbage around it
    assert stats["inferences"] > 10 and stats["pipeline_errors"] == 0
    # Broken CSI rows (half lines, bad fields) are bad packets; boot log and noise are ignored lines.
    assert sum(stats["bad_packets"].values()) == garbage // 2
    assert stats["sources"][0]["ignored_lines"] >= garbage // 2
    assert stats["sinks"][0]["pending"] == 0


def test_systemd_notify_ready_and_watchdog_over_a_real_unix_socket(nexmon_bundle, tmp_path):
    address = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(10)
    env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "400000"}
    proc = subprocess.Popen([sys.executable, "-m", "edgecsi.cli", "run", "--bundle", str(nexmon_bundle), "--source",
                             f"udp://127.0.0.1:{free_port()}", "--http", "off", "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    messages = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and messages.count("WATCHDOG=1") < 3:
            messages.append(sock.recv(4096).decode())
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        sock.close()
    assert "READY=1" in messages
    assert messages.index("READY=1") < messages.index("WATCHDOG=1")
    assert messages.count("WATCHDOG=1") >= 3  # pinged at half the watchdog period
    assert any(m.startswith("STATUS=running bundle version 10") for m in messages)


def test_site_head_from_edgecsi_calibrate_is_blended_in(nexmon_bundle, nexmon_capture, tmp_path):
    """The installer labels site windows; the agent blends the numpy head with the base model."""
    from edgecsi.edge.bundle import load_bundle
    from edgecsi.edge.pipeline.pipeline import build_pipeline
    from edgecsi.edge.pipeline.streams import split_streams
    from edgecsi.edge.site_calibration import calibrate

    live = tmp_path / "live"
    shutil.copytree(nexmon_bundle, live)
    pipeline = build_pipeline(load_bundle(live).pipeline_config)
    batch = read(nexmon_capture).batch
    half = len(batch) // 2
    files = []
    for name, part in (("first", batch.select(slice(0, half))), ("second", batch.select(slice(half, None)))):
        x = np.concatenate([pipeline.transform(s) for s in split_streams(part).values()])
        np.savez(tmp_path / f"{name}.npz", x=x)
        files.append(tmp_path / f"{name}.npz")
    first_end = float(batch.time[half - 1])

    def present_share(bundle) -> tuple[float, dict]:
        events = []
        agent = Agent(AgentOptions(bundle=bundle, sources=[f"file:{nexmon_capture}?speed=0"], http=None,
                                   stdout=False, every_window=True, max_queue=100000, watch_s=0),
                      on_event=events.append)
        stats = agent.run(install_signals=False)
        first = [e for e in events if e.kind == "window" and e.time <= first_end]
        return np.mean([e.raw == "present" for e in first]), agent.bundle_info()

    before, info = present_share(live)
    assert info["site_head"] is None
    # This site sees it the other way round: the installer labels the first half "present".
    report = calibrate(live, [(files[0], "present"), (files[1], "empty")])
    assert report.head is not None and (live / "site" / "head.json").exists()
    after, info = present_share(live)
    assert info["site_head"]["version"] == 1 and info["site_head_error"] == ""
    assert after > before + 0.5, (before, after)

    # A head fitted for another base model is not blended in: the base model runs alone and says why.
    other = tmp_path / "other"
    shutil.copytree(nexmon_bundle, other)
    head = json.loads((live / "site" / "head.json").read_text())
    head["base_model_sha256"] = "0" * 64
    shutil.copytree(live / "site", other / "site")
    (other / "site" / "head.json").write_text(json.dumps(head))
    stale, info = present_share(other)
    assert info["site_head"] is None and "refit" in info["site_head_error"]
    assert stale == pytest.approx(before)
