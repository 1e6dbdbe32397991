"""Sinks against real services: Mosquitto, an HTTP server on 127.0.0.1, SQLite under kill -9."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import paho.mqtt.client as mqtt
import pytest

from edgecsi.edge.event_log import EventLog
from edgecsi.edge.events import Event
from edgecsi.edge.sinks.delivery import Delivery
from edgecsi.edge.sinks.mqtt import MqttSink
from edgecsi.edge.sinks.webhook import WebhookSink
from services import free_port


def make_event(i: int, task: str = "presence", state: str | None = None) -> Event:
    return Event(kind="change", stream="aa:bb:cc:dd:ee:ff/c0/s0", task=task,
                 state=state or ("present" if i % 2 else "empty"), score=0.9, time=float(i), emitted=time.time())


class Subscriber:
    def __init__(self, port: int, topic: str = "#") -> None:
        self.messages: dict[str, bytes] = {}
        self.log: list[tuple[str, bytes, bool]] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sub-{port}-{time.time()}")
        self.client.on_connect = lambda c, u, f, rc, p=None: (c.subscribe(topic, qos=1), self.ready.set())
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.ready.wait(5)

    def _on_message(self, client, userdata, msg) -> None:
        self.messages[msg.topic] = msg.payload
        self.log.append((msg.topic, msg.payload, bool(msg.retain)))

    def wait_for(self, predicate, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_mqtt_home_assistant_discovery_and_state(broker, tmp_path):
    sub = Subscriber(broker.port)
    log = EventLog(tmp_path / "events.db")
    sink = MqttSink("127.0.0.1", broker.port, node_id="gw-1")
    delivery = Delivery(log, sink).start()
    try:
        log.append(make_event(1, "presence", "present"))
        log.append(make_event(2, "activity", "WALKING_TX"))
        assert delivery.drain(10), delivery.stats()
        disc = "homeassistant/binary_sensor/gw_1_aa_bb_cc_dd_ee_ff_c0_s0_presence/config"
        assert sub.wait_for(lambda: disc in sub.messages and "edgecsi/gw_1/status" in sub.messages)
        config = json.loads(sub.messages[disc])
        assert config["device_class"] == "occupancy"
        assert config["availability_topic"] == "edgecsi/gw_1/status"
        state_topic = config["state_topic"]
        assert sub.wait_for(lambda: sub.messages.get(state_topic) == b"ON")
        assert sub.messages["edgecsi/gw_1/status"] == b"online"
        sensor = "homeassistant/sensor/gw_1_aa_bb_cc_dd_ee_ff_c0_s0_activity/config"
        assert sub.wait_for(lambda: sensor in sub.messages)
        act_topic = json.loads(sub.messages[sensor])["state_topic"]
        assert sub.wait_for(lambda: sub.messages.get(act_topic) == b"WALKING_TX")
    finally:
        delivery.stop()
        sub.close()
    # A late subscriber still sees retained state, and 'offline' after a clean stop.
    late = Subscriber(broker.port)
    try:
        assert late.wait_for(lambda: late.messages.get("edgecsi/gw_1/status") == b"offline")
        assert late.wait_for(lambda: late.messages.get(state_topic) == b"ON")
    finally:
        late.close()


def test_mqtt_broker_outage_loses_nothing(broker, tmp_path):
    log = EventLog(tmp_path / "events.db")
    sink = MqttSink("127.0.0.1", broker.port, node_id="gw2", timeout=1.0)
    delivery = Delivery(log, sink, backoff=(0.1, 0.5)).start()
    try:
        log.append(make_event(1))
        assert delivery.drain(10)
        broker.stop()
        for i in range(2, 6):
            log.append(make_event(i, "counting", str(i)))
        time.sleep(1.0)
        assert delivery.pending > 0  # nowhere to go: they wait
        broker.start()
        sub = Subscriber(broker.port)
        assert delivery.drain(20), delivery.stats()
        topic = "edgecsi/gw2/aa_bb_cc_dd_ee_ff_c0_s0_counting/state"
        assert sub.wait_for(lambda: sub.messages.get(topic) == b"5")
        sub.close()
    finally:
        delivery.stop()


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []
    fail = threading.Event()

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.fail.is_set():
            self.send_response(503)
            self.end_headers()
            return
        self.received.append({"id": self.headers["X-Edgecsi-Event-Id"], "body": json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_webhook_outage_then_recovery_delivers_each_event_once_in_order(tmp_path):
    port = free_port()
    _Receiver.received = []
    log = EventLog(tmp_path / "events.db")
    delivery = Delivery(log, WebhookSink(f"http://127.0.0.1:{port}/hook", timeout=1.0), backoff=(0.05, 0.3)).start()
    try:
        for i in range(5):  # receiver not even listening yet: connection refused
            log.append(make_event(i))
        time.sleep(0.5)
        server = ThreadingHTTPServer(("127.0.0.1", port), _Receiver)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        _Receiver.fail.set()  # listening but failing with 503
        for i in range(5, 10):
            log.append(make_event(i))
        time.sleep(0.5)
        assert _Receiver.received == []
        _Receiver.fail.clear()
        for i in range(10, 15):
            log.append(make_event(i))
        assert delivery.drain(20), delivery.stats()
        ids = [int(r["id"]) for r in _Receiver.received]
        assert ids == list(range(1, 16))
        assert [r["body"]["time"] for r in _Receiver.received] == [float(i) for i in range(15)]
        server.shutdown()
    finally:
        delivery.stop()


WRITER = textwrap.dedent("""
    import sys, time
    from edgecsi.edge.event_log import EventLog
    from edgecsi.edge.events import Event
    log = EventLog(sys.argv[1])
    i = 0
    while True:
        log.append(Event(kind="state", stream="s", task="presence", state="present", score=0.5,
                         time=float(i), emitted=time.time(), extra={"pad": "x" * 500}))
        print(i, flush=True)
        i += 1
""")


def test_event_log_survives_kill_9_mid_write(tmp_path):
    db = tmp_path / "events.db"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    acknowledged = -1
    deadline = time.monotonic() + 20
    while acknowledged < 200 and time.monotonic() < deadline:
        acknowledged = int(proc.stdout.readline())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert acknowledged >= 200
    with sqlite3.connect(db) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    log = EventLog(db)
    events = log.after(0, limit=100000)
    # Every event acknowledged before the kill is there, intact and in order; nothing half-written.
    assert len(events) >= acknowledged + 1
    assert [e.time for e in events] == [float(i) for i in range(len(events))]
    assert all(e.extra["pad"] == "x" * 500 for e in events)
