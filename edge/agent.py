"""The gateway agent: sources -> per-stream pipeline -> onnxruntime -> smoothing -> events -> sinks.

Threads:
- one reader per source: decodes packets, runs each stream's streaming pipeline (cheap numpy)
  and appends finished windows to one bounded queue; when inference falls behind, the oldest
  windows are dropped and counted, so memory never grows without bound;
- one inference thread: takes every queued window, runs them through the model in one call,
  smooths per stream and emits events on state change (plus a periodic state report);
- the caller's thread (``run``): signals (SIGHUP reloads the bundle), systemd watchdog pings,
  watching the bundle path for a new version, and the end of finite sources.

Imports numpy, onnxruntime and the standard library only.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from edgecsi.edge.bundle import Bundle, BundleError, load_bundle, load_public_keys
from edgecsi.edge.device_clock import DeviceClock
from edgecsi.edge.event_log import EventLog
from edgecsi.edge.events import Event
from edgecsi.edge.http_api import HttpApi
from edgecsi.edge.pipeline.config import PipelineConfig
from edgecsi.edge.pipeline.router import StreamRouter
from edgecsi.edge.runtime import make_session
from edgecsi.edge.sinks.delivery import Delivery
from edgecsi.edge.sinks.stdout import StdoutSink
from edgecsi.edge import systemd
from edgecsi.edge.smoothing import Hysteresis, MajorityVote, MedianCount
from edgecsi.frames import mac_to_int

NEGATIVE_LABELS = ("empty", "absent", "none", "no_person", "nobody", "0")


@dataclass
class AgentOptions:
    bundle: Path
    sources: list[str]
    allow_macs: list[str] | None = None
    threads: int = 1
    vote: int = 5
    presence_on: float = 0.7
    presence_off: float = 0.3
    presence_hold: int = 2
    state_every_s: float = 30.0
    max_queue: int = 256
    event_log: Path | None = None
    mqtt: str | None = None  # host[:port]
    node_id: str = field(default_factory=socket.gethostname)
    webhook: str | None = None
    http: str | None = "127.0.0.1:8765"
    stdout: bool = True
    every_window: bool = False  # also emit one "window" event per inference (evaluation, debugging)
    trusted_keys: list[Path] = field(default_factory=list)
    require_signature: bool = False
    watch_s: float = 1.0  # poll the bundle path for a new version this often (0 = off)
    udp_linger_s: float = 0.1  # UDP: gather a burst this long before decoding (CPU at low rates; not latency after a window)
    clock: str = "device"  # "device": the sensor's packet clock where it has one; "host": receive time
    source_options: dict = field(default_factory=dict)
    repair: bool = True  # run the bundle's repair generator (if it carries one) before the model


class _Model:
    """A verified bundle turned into a session, a stream router and a decision rule."""

    def __init__(self, bundle: Bundle, threads: int, use_repair: bool = True) -> None:
        self.bundle = bundle
        self.session = make_session(bundle.model_bytes, threads=threads)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        config = PipelineConfig.from_dict(bundle.pipeline_config) if bundle.pipeline_config else None
        if config is None:
            raise BundleError(f"{bundle.path}: bundle carries no signal-pipeline config; the agent cannot "
                              "turn raw packets into its input (export a model trained from captures)")
        self.pipeline_config = config
        self.router = StreamRouter(config)
        self.labels = bundle.labels
        self.task = bundle.task
        self.target = bundle.manifest.get("target", "class")
        self.site_head_error = ""
        try:
            self.site_head = self._site_head(bundle, use_repair)
        except Exception as exc:  # a stale or damaged head: run the base model alone, and say why
            self.site_head, self.site_head_error = None, str(exc)
        self.repair = self._repair(bundle, self.session.get_inputs()[0].shape, threads) if use_repair else None

    @staticmethod
    def _repair(bundle: Bundle, input_shape, threads: int):
        """The bundle's optional repair generator (``manifest["repair"]``), from its verified bytes."""
        from edgecsi.edge.repair import bundle_repair

        try:
            repair = bundle_repair(bundle, threads=threads)
        except ValueError as exc:
            raise BundleError(str(exc)) from exc
        n_features = input_shape[2] if len(input_shape) == 3 else None
        if repair is not None and isinstance(n_features, int) and repair.n_features != n_features:
            raise BundleError(f"{repair.path}: repairs {repair.n_features} features per step, the model "
                              f"takes {n_features}")
        return repair

    @staticmethod
    def _site_head(bundle: Bundle, use_repair: bool = True):
        """The installer's calibrated head (``edgecsi calibrate``), if one was fitted for this model
        (and this repair step: the head's embeddings must come from the same windows)."""
        from edgecsi.edge.calibration import HEAD_JSON, SiteHead
        from edgecsi.edge.site_calibration import SITE_DIR, base_model_sha256

        site = bundle.path / SITE_DIR
        if not (site / HEAD_JSON).exists():
            return None
        # Raises for a head fitted on another base model: a stale head must not be blended in.
        return SiteHead.load(site, base_model_sha256(bundle, with_repair=use_repair))

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Logits, or with a site head the log of the blended probabilities (same argmax semantics).
        With a repair generator in the bundle the windows are repaired first."""
        if self.repair is not None:
            x = self.repair(x)
        if self.site_head is None or "embedding" not in self.output_names:
            return self.session.run(self.output_names[:1], {self.input_name: x})[0]
        from edgecsi.edge.calibration import softmax

        logits, embedding = self.session.run(["logits", "embedding"], {self.input_name: x})
        p = self.site_head.blend(softmax(logits), embedding)
        return np.log(np.clip(p, 1e-12, 1.0))


def _head_identity(head) -> tuple | None:
    return None if head is None else (head.version, head.created, head.base_model_sha256)


class Agent:
    def __init__(self, options: AgentOptions, *, on_event: Callable[[Event], None] | None = None) -> None:
        self.options = options
        self.started = time.time()
        self._keys = load_public_keys(options.trusted_keys) if options.trusted_keys else None
        self._lock = threading.RLock()  # guards self.model and the routers
        self.model = _Model(self._load(None), options.threads, options.repair)
        self._bundle_real = self._bundle_identity()
        self._allow = {mac_to_int(m) for m in options.allow_macs} if options.allow_macs else None
        self._queue: deque = deque()
        self._queue_cv = threading.Condition()
        self._stop = threading.Event()
        self._reload_requested = threading.Event()
        self._smoothers: dict[str, object] = {}
        self._clocks: dict[int, DeviceClock] = {}
        self._states: dict[str, Event] = {}
        self._last_periodic = time.monotonic()
        self._latency = deque(maxlen=2048)
        self._infer_ms = deque(maxlen=2048)
        self.counters = {"windows": 0, "inferences": 0, "dropped_windows": 0, "events": 0, "ignored_packets": 0,
                         "pipeline_errors": 0, "inference_errors": 0, "reloads": 0, "reload_failures": 0,
                         "packets": 0, "repaired_windows": 0}
        self.last_reload_error = ""
        self._on_event = on_event
        self._stdout = StdoutSink() if options.stdout else None
        self.log = EventLog(options.event_log) if options.event_log else None
        self.deliveries: list[Delivery] = []
        if (options.mqtt or options.webhook) and self.log is None:
            raise ValueError("network sinks need --event-log (the durable outbox they deliver from)")
        if options.mqtt:
            from edgecsi.edge.sinks.mqtt import MqttSink

            host, _, port = options.mqtt.partition(":")
            self.deliveries.append(Delivery(self.log, MqttSink(host, int(port or 1883), node_id=options.node_id)))
        if options.webhook:
            from edgecsi.edge.sinks.webhook import WebhookSink

            self.deliveries.append(Delivery(self.log, WebhookSink(options.webhook)))
        from edgecsi.firmware_bridge.sources import open_source

        self.sources = [open_source(uri, **self._source_options(uri)) for uri in options.sources]
        self._threads: list[threading.Thread] = []
        self.api: HttpApi | None = None

    def _source_options(self, uri: str) -> dict:
        opts = dict(self.options.source_options.get(uri, {}))
        # At 100 packets/s, decoding and pushing each datagram alone costs more CPU than the
        # work itself; a short linger batches them (measured in benchmarks/agent.py).
        if uri.startswith("udp:") and "linger=" not in uri:
            opts.setdefault("linger", self.options.udp_linger_s)
        return opts

    # -- bundle -----------------------------------------------------------------------------
    def _load(self, min_version: int | None) -> Bundle:
        import onnxruntime

        return load_bundle(self.options.bundle, trusted_keys=self._keys, require_signature=self.options.require_signature,
                           min_version=min_version, onnxruntime_version=onnxruntime.__version__)

    def _bundle_identity(self) -> tuple:
        # Every file's mtime and size: a swapped link, a new manifest or a replaced model all count.
        path = Path(self.options.bundle)
        try:
            files = tuple(sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in path.iterdir()))
        except OSError:
            files = ()
        return (os.path.realpath(path), files)

    def reload(self) -> bool:
        """Verify and switch to the bundle now at the bundle path; keep the old one on any failure."""
        try:
            bundle = self._load(min_version=self.model.bundle.version)
            new = _Model(bundle, self.options.threads, self.options.repair)
            if (bundle.manifest_sha256 == self.model.bundle.manifest_sha256
                    and _head_identity(new.site_head) == _head_identity(self.model.site_head)):
                return True
        except Exception as exc:  # a bad bundle must never stop detection
            self.counters["reload_failures"] += 1
            self.last_reload_error = str(exc)
            self._emit_status(f"reload refused: {exc}")
            return False
        with self._lock:
            self.model = new
            self._smoothers.clear()
        with self._queue_cv:
            self._queue.clear()  # windows of the old pipeline do not fit the new model
        self.counters["reloads"] += 1
        self._emit_status(f"loaded bundle version {bundle.version}")
        return True

    def _emit_status(self, text: str) -> None:
        systemd.notify(f"STATUS={text}")

    # -- readers ----------------------------------------------------------------------------
    def _read_loop(self, source) -> None:
        while not self._stop.is_set():
            try:
                batches = source.read(timeout=0.2)
            except Exception:  # sources count their own bad input; this is a last resort
                self.counters["pipeline_errors"] += 1
                time.sleep(0.2)
                continue
            for batch in batches:
                self._process(batch)
            if getattr(source, "finished", False) and not batches:
                break
        self._flush_streams()

    def _process(self, batch) -> None:
        self.counters["packets"] += len(batch)
        if self._allow is not None:
            keep = np.isin(batch.mac, np.fromiter(self._allow, dtype=np.uint64))
            if not keep.all():
                self.counters["ignored_packets"] += int((~keep).sum())
                batch = batch.select(keep)
                if len(batch) == 0:
                    return
        try:
            if self.options.clock == "device" and "local_timestamp" in batch.extra:
                batch = self._device_time(batch)
            with self._lock:
                model = self.model
                windows = model.router.push(batch)
        except Exception:  # e.g. a layout the pipeline cannot take: count, keep going
            self.counters["pipeline_errors"] += 1
            return
        self._enqueue(model, windows)

    def _device_time(self, batch):
        macs = np.unique(batch.mac)
        if len(macs) == 1:
            return self._clocks.setdefault(int(macs[0]), DeviceClock()).apply(batch)
        from edgecsi.frames import concat

        parts = [self._clocks.setdefault(int(m), DeviceClock()).apply(batch.select(batch.mac == m)) for m in macs]
        return concat(parts)

    def _flush_streams(self) -> None:
        with self._lock:
            model = self.model
            windows = model.router.flush()
        self._enqueue(model, windows)

    def _enqueue(self, model: _Model, windows) -> None:
        if not windows:
            return
        now = time.monotonic()
        with self._queue_cv:
            for key, end, x in windows:
                if len(self._queue) >= self.options.max_queue:
                    self._queue.popleft()
                    self.counters["dropped_windows"] += 1
                self._queue.append((model, key, end, x, now))
            self.counters["windows"] += len(windows)
            self._queue_cv.notify()

    # -- inference --------------------------------------------------------------------------
    def _infer_loop(self) -> None:
        while not self._stop.is_set() or self._queue:
            with self._queue_cv:
                if not self._queue:
                    self._queue_cv.wait(0.2)
                items = list(self._queue)
                self._queue.clear()
            if items:
                self._infer(items)
            self._periodic()

    def _infer(self, items) -> None:
        # Group by model (a reload may have happened) and by window shape.
        groups: dict[tuple, list] = {}
        for item in items:
            groups.setdefault((id(item[0]), item[3].shape), []).append(item)
        for group in groups.values():
            model = group[0][0]
            x = np.stack([it[3] for it in group]).astype(np.float32, copy=False)
            t0 = time.perf_counter()
            try:
                out = model.infer(x)
            except Exception:
                self.counters["inference_errors"] += 1
                continue
            self._infer_ms.append((time.perf_counter() - t0) * 1e3)
            self.counters["inferences"] += len(group)
            if model.repair is not None:
                self.counters["repaired_windows"] += len(group)
            for (_, key, end, _, queued), row in zip(group, out):
                self._decide(model, str(key), float(end), row)
                self._latency.append((time.monotonic() - queued) * 1e3)

    def _smoother(self, model: _Model, stream: str):
        smoother = self._smoothers.get(stream)
        if smoother is None:
            if model.task == "presence" and len(model.labels) == 2:
                neg = next((l for l in model.labels if l.lower() in NEGATIVE_LABELS), model.labels[0])
                pos = next(l for l in model.labels if l != neg)
                smoother = Hysteresis(pos, neg, on=self.options.presence_on, off=self.options.presence_off,
                                      hold=self.options.presence_hold)
            elif model.target == "value":
                smoother = MedianCount(self.options.vote)
            else:
                smoother = MajorityVote(self.options.vote)
            self._smoothers[stream] = smoother
        return smoother

    def _decide(self, model: _Model, stream: str, end: float, row: np.ndarray) -> None:
        smoother = self._smoother(model, stream)
        if model.target == "class":
            p = np.exp(row - row.max())
            p /= p.sum()
            raw = model.labels[int(p.argmax())]
            score = float(p.max())
            if isinstance(smoother, Hysteresis):
                p_on = float(p[model.labels.index(smoother.on_label)])
                state = smoother.update(raw, p_on)
                score = p_on
            else:
                state = smoother.update(raw, score)
        elif model.target == "value":
            raw = f"{float(row[0]):.3f}"
            score = float(row[0])
            state = smoother.update(raw, score)
        else:  # coordinates
            raw = state = f"{float(row[0]):.2f},{float(row[1]):.2f}"
            score = 1.0
        previous = self._states.get(stream)
        event = Event(kind="change", stream=stream, task=model.task, state=state, score=score, time=end,
                      emitted=time.time(), raw=raw, extra={"bundle_version": model.bundle.version})
        if self.options.every_window:
            self._emit(Event(**{**event.__dict__, "kind": "window", "extra": dict(event.extra)}))
        if previous is None or previous.state != state:
            self._emit(event)
        self._states[stream] = event

    def _periodic(self) -> None:
        if time.monotonic() - self._last_periodic < self.options.state_every_s:
            return
        self._last_periodic = time.monotonic()
        for stream, last in list(self._states.items()):
            self._emit(Event(kind="state", stream=stream, task=last.task, state=last.state, score=last.score,
                             time=last.time, emitted=time.time(), raw=last.raw, extra=dict(last.extra)))

    def _emit(self, event: Event) -> None:
        self.counters["events"] += 1
        if self.log is not None:
            self.log.append(event)
        if self._stdout is not None:
            self._stdout.deliver(event)
        if self._on_event is not None:
            self._on_event(event)

    # -- reporting --------------------------------------------------------------------------
    def stats(self) -> dict:
        lat = np.asarray(self._latency) if self._latency else np.zeros(1)
        inf = np.asarray(self._infer_ms) if self._infer_ms else np.zeros(1)
        bad: dict[str, int] = {}
        sources = []
        for src in self.sources:
            s = src.stats().as_dict()
            sources.append(s)
            for reason, n in (s.get("bad") or {}).items():
                bad[reason] = bad.get(reason, 0) + n
        return {
            **self.counters,
            "bad_packets": bad,
            "queue_depth": len(self._queue),
            "latency_ms": {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99))},
            "inference_ms": {"p50": float(np.percentile(inf, 50)), "p99": float(np.percentile(inf, 99))},
            "sources": sources,
            "sinks": [d.stats() for d in self.deliveries],
            "streams": len(self._states),
            "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "uptime_s": time.time() - self.started,
            "last_reload_error": self.last_reload_error,
        }

    def state(self) -> dict:
        return {stream: {"state": e.state, "score": e.score, "time": e.time, "task": e.task}
                for stream, e in self._states.items()}

    def bundle_info(self) -> dict:
        from edgecsi.edge.bundle import describe

        info = describe(self.model.bundle)
        info.pop("pipeline", None)
        head = self.model.site_head
        info["repair_active"] = self.model.repair is not None
        info["site_head_error"] = self.model.site_head_error
        info["site_head"] = None if head is None else {"version": head.version, "created": head.created,
                                                       "alpha": head.alpha, "labels_seen": int(np.sum(head.seen))}
        return info

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> "Agent":
        for delivery in self.deliveries:
            delivery.start()
        if self.options.http:
            host, _, port = self.options.http.rpartition(":")
            self.api = HttpApi({"/health": lambda: {"ok": not self._stop.is_set(), "bundle_version": self.model.bundle.version},
                                "/stats": self.stats, "/state": self.state, "/bundle": self.bundle_info},
                               host or "127.0.0.1", int(port)).start()
        for source in self.sources:
            t = threading.Thread(target=self._read_loop, args=(source,), name=f"source-{source.uri}", daemon=True)
            t.start()
            self._threads.append(t)
        self._infer_thread = threading.Thread(target=self._infer_loop, name="inference", daemon=True)
        self._infer_thread.start()
        systemd.notify("READY=1")
        self._emit_status(f"running bundle version {self.model.bundle.version}")
        return self

    def request_reload(self, *_args) -> None:
        self._reload_requested.set()

    def stop(self, *_args) -> None:
        self._stop.set()

    def run(self, *, install_signals: bool = True, max_seconds: float | None = None) -> dict:
        """Run until stopped (SIGINT/SIGTERM), or until every source has ended."""
        if install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGHUP, self.request_reload)
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        self.start()
        watchdog = systemd.watchdog_interval()
        last_ping = last_watch = time.monotonic()
        deadline = time.monotonic() + max_seconds if max_seconds else None
        while not self._stop.is_set():
            time.sleep(0.05)
            now = time.monotonic()
            if watchdog and now - last_ping >= watchdog:
                systemd.notify("WATCHDOG=1")
                last_ping = now
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self.reload()
            if self.options.watch_s and now - last_watch >= self.options.watch_s:
                last_watch = now
                identity = self._bundle_identity()
                if identity != self._bundle_real:
                    self._bundle_real = identity
                    self.reload()
            if all(not t.is_alive() for t in self._threads):
                break
            if deadline and now > deadline:
                break
        return self.shutdown()

    def shutdown(self, drain_s: float = 10.0) -> dict:
        systemd.notify("STOPPING=1")
        self._stop.set()
        for t in self._threads:
            t.join(2.0)
        self._infer_thread.join(5.0)
        for delivery in self.deliveries:
            delivery.drain(drain_s)
            delivery.stop()
        for source in self.sources:
            source.close()
        if self.api:
            self.api.stop()
        stats = self.stats()
        if self.log:
            self.log.close()
        return stats


