"""The pipeline itself: one stream's packets -> normalised windows, in batch or streaming form.

``Pipeline.transform`` is the streaming engine fed the whole batch at once and
flushed, so training and the gateway run the same code; a test shows that
feeding the same packets in arbitrary chunks gives the same windows.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Iterable, Union

import numpy as np

from edgecsi.edge.pipeline.config import PipelineConfig
from edgecsi.edge.pipeline.features import PacketFeatures
from edgecsi.edge.pipeline.hampel import HampelFilter
from edgecsi.edge.pipeline.normalise import FeatureStats, Normaliser
from edgecsi.edge.pipeline.resample import UniformResampler
from edgecsi.edge.pipeline.segments import first_clock_reset, increasing_mask, segment_starts
from edgecsi.edge.pipeline.streams import StreamKey, single_stream_key, split_streams, stream_keys
from edgecsi.edge.pipeline.subcarriers import choose_subcarriers
from edgecsi.edge.pipeline.windowing import Windower
from edgecsi.frames import CSIBatch

TimedWindow = tuple[float, np.ndarray]


class StreamingPipeline:
    """Stateful pipeline for ONE stream (mac x core x spatial stream), fed batches of any size.

    ``push(batch)`` returns the windows completed by these packets as
    ``[(window_end_time, x[time, feature] float32), ...]``; ``flush()`` ends
    the stream (or marks a pause) and returns the windows still held back.
    Latency from a packet to the window containing it: ``hampel.half_window``
    packets plus the low-pass half width (``latency_s``).
    """

    def __init__(self, config: PipelineConfig, *, normalise: bool = True) -> None:
        if config.resample.taps is None:
            raise ValueError("pipeline config has no resampling taps; design them with "
                             "edgecsi.training.filter_design.with_lowpass(config)")
        self.config = config
        self.features = PacketFeatures(config)
        h = config.hampel
        self._hampel = HampelFilter(h.half_window, h.n_sigma) if h.enabled else None
        r = config.resample
        self._resampler = UniformResampler(r.rate_hz, r.phases, np.asarray(r.taps))
        self._windower = Windower(config.window.length, config.window.hop)
        self._normaliser: Normaliser | None = None
        if normalise and config.normalise.enabled:
            n = config.normalise
            if n.mean is None:
                raise ValueError("pipeline is not fitted: normalisation statistics are missing")
            if len(n.mean) != self.features.n_features:
                raise ValueError(f"normalisation statistics hold {len(n.mean)} features, the layout gives "
                                 f"{self.features.n_features}")
            self._normaliser = Normaliser(np.asarray(n.mean), np.asarray(n.std), n.min_std)
        self.key: StreamKey | None = None
        self._last_time: float | None = None
        #: Packets dropped for arriving out of order (by up to ``max_gap_s``) or twice.
        self.out_of_order = 0
        #: Jumps back in time by more than ``max_gap_s``: the stream restarts there.
        self.clock_resets = 0
        #: Segments started (each gap longer than ``max_gap_s`` starts one).
        self.segments = 0

    @property
    def n_features(self) -> int:
        return self.features.n_features

    @property
    def latency_s(self) -> float:
        return self._resampler.latency_s

    def reset(self) -> None:
        """Forget all state (a new recording)."""
        self._end_segment()
        self._last_time = None
        self.key = None

    def push(self, batch: CSIBatch) -> list[TimedWindow]:
        ends, windows = self.push_arrays(batch)
        return list(zip(ends.tolist(), windows))

    def flush(self) -> list[TimedWindow]:
        ends, windows = self.flush_arrays()
        return list(zip(ends.tolist(), windows))

    def push_arrays(self, batch: CSIBatch) -> tuple[np.ndarray, np.ndarray]:
        """Like ``push`` but ``(end_time[window], x[window, time, feature])`` arrays."""
        if len(batch) == 0:
            return self._empty()
        self._check_stream(batch)
        t, x = self.features(batch)
        return self.push_features(t, x)

    def push_features(self, t: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feed per-packet features ``x[packet, feature]`` at times ``t[packet]`` (seconds)."""
        reset = first_clock_reset(t, self._last_time, self.config.resample.max_gap_s)
        if reset is not None:
            head = self.push_features(t[:reset], x[:reset])
            self.clock_resets += 1
            self._last_time = None  # so the next packet ends the old segment and starts a new one
            return self._join([head, self.push_features(t[reset:], x[reset:])])
        keep = increasing_mask(t, self._last_time)
        if not keep.all():
            self.out_of_order += int((~keep).sum())
            t, x = t[keep], x[keep]
        if t.shape[0] == 0:
            return self._empty()
        starts = segment_starts(t, self._last_time, self.config.resample.max_gap_s)
        self._last_time = float(t[-1])
        start_set = set(starts.tolist())
        bounds = sorted({0, *start_set, t.shape[0]})
        out: list[tuple[np.ndarray, np.ndarray]] = []
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            if lo in start_set:
                out.append(self._end_segment())
                self.segments += 1
            if hi > lo:
                out.append(self._run(t[lo:hi], x[lo:hi]))
        return self._join(out)

    def flush_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """End the current segment; the next packet starts a new one."""
        out = self._end_segment()
        self._last_time = None
        return out

    def _check_stream(self, batch: CSIBatch) -> None:
        if self.key is None:
            self.key = single_stream_key(batch)
        elif not (stream_keys(batch) == np.asarray(self.key)).all():
            raise ValueError(f"this pipeline serves stream {self.key}; route batches with split_streams() first")

    def _run(self, t: np.ndarray, x: np.ndarray, *, flush_hampel: bool = False) -> tuple[np.ndarray, np.ndarray]:
        if self._hampel is not None:
            t, x = self._hampel.flush() if flush_hampel else self._hampel.push(t, x)
        elif flush_hampel:
            return self._empty()
        if t.shape[0] == 0:
            return self._empty()
        t_out, y = self._resampler.push(t, x)
        if self._normaliser is not None and y.shape[0]:
            y = self._normaliser(y)
        return self._windower.push(t_out, y)

    def _end_segment(self) -> tuple[np.ndarray, np.ndarray]:
        out = self._run(np.zeros(0), np.zeros((0, self.n_features)), flush_hampel=True)
        self._resampler.reset()
        self._windower.reset()
        return out

    def _empty(self) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(0), np.zeros((0, self.config.window.length, self.n_features), dtype=np.float32)

    def _join(self, parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        parts = [p for p in parts if p[0].shape[0]]
        if not parts:
            return self._empty()
        if len(parts) == 1:
            return parts[0]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


FitData = Union[CSIBatch, np.ndarray]


class Pipeline:
    """Batch face of the pipeline, plus fitting.

    ``fit(data)`` resolves the layout (kept subcarriers, antennas) from the
    training batches when the config leaves it open and fits the per-feature
    normalisation on the training windows; ``config`` then holds everything
    to save with the model. ``transform(batch)`` gives ``x[window, time,
    feature]`` float32 for a single-stream batch.
    """

    def __init__(self, config: PipelineConfig) -> None:
        self._config = config

    @property
    def config(self) -> PipelineConfig:
        return self._config

    @property
    def n_features(self) -> int:
        return PacketFeatures(self._config).n_features

    def feature_names(self) -> list[str]:
        return PacketFeatures(self._config).feature_names()

    def streaming(self) -> StreamingPipeline:
        """A fresh streaming pipeline with this configuration (one per stream)."""
        return StreamingPipeline(self._config)

    def packet_features(self, batch: CSIBatch) -> tuple[np.ndarray, np.ndarray]:
        """``(time[packet], x[packet, feature])`` before Hampel/resampling (e.g. for packet outlier removal)."""
        return PacketFeatures(self._config)(batch)

    def transform(self, batch: CSIBatch) -> np.ndarray:
        """``x[window, time, feature]`` float32 for a batch holding one stream."""
        return self.transform_timed(batch)[1]

    def transform_timed(self, batch: CSIBatch) -> tuple[np.ndarray, np.ndarray]:
        """``(window_end_time[window], x[window, time, feature])`` for a batch holding one stream."""
        return self._run_whole(StreamingPipeline(self._config), batch)

    def fit(self, data: FitData | Iterable[FitData]) -> "Pipeline":
        """Resolve the layout and fit normalisation statistics; returns self.

        ``data``: CSI batches (any number of streams each; split internally) or
        arrays of unnormalised windows ``x[window, time, feature]`` (e.g. from
        ``transform`` of a pipeline with ``normalise.enabled=False``).
        """
        items = [data] if isinstance(data, (CSIBatch, np.ndarray)) else list(data)
        batches = [d for d in items if isinstance(d, CSIBatch)]
        arrays = [np.asarray(d) for d in items if not isinstance(d, CSIBatch)]
        cfg = self._resolve_layout(self._config, batches)
        self._config = cfg
        if not cfg.normalise.enabled:
            return self
        stats = FeatureStats()
        n_features = PacketFeatures(cfg).n_features
        for batch in batches:
            for stream in split_streams(batch).values():
                _, windows = self._run_whole(StreamingPipeline(cfg, normalise=False), stream)
                stats.update(windows)
        for a in arrays:
            if a.shape[-1] != n_features:
                raise ValueError(f"training windows have {a.shape[-1]} features, the layout gives {n_features}")
            stats.update(a)
        if stats.count == 0:
            raise ValueError("no training window: are the recordings shorter than one window?")
        norm = replace(cfg.normalise, mean=tuple(float(v) for v in stats.mean),
                       std=tuple(float(v) for v in stats.std()))
        self._config = replace(cfg, normalise=norm)
        return self

    @staticmethod
    def _resolve_layout(cfg: PipelineConfig, batches: list[CSIBatch]) -> PipelineConfig:
        if cfg.subcarriers is not None and cfg.n_rx is not None and cfg.n_tx is not None:
            return cfg
        nonempty = [b for b in batches if len(b)]
        if not nonempty:
            raise ValueError("the layout (subcarriers, n_rx, n_tx) is open and no CSI batch was given to fit it")
        first = nonempty[0]
        subcarriers = cfg.subcarriers
        if subcarriers is None:
            subcarriers = choose_subcarriers(nonempty, max_invalid_fraction=cfg.max_invalid_fraction,
                                             drop_pilots=cfg.drop_pilots)
        return replace(cfg, subcarriers=tuple(subcarriers),
                       n_rx=first.n_rx if cfg.n_rx is None else cfg.n_rx,
                       n_tx=first.n_tx if cfg.n_tx is None else cfg.n_tx)

    @staticmethod
    def _run_whole(engine: StreamingPipeline, batch: CSIBatch) -> tuple[np.ndarray, np.ndarray]:
        a = engine.push_arrays(batch)
        b = engine.flush_arrays()
        return engine._join([a, b])


def build_pipeline(config: PipelineConfig | str | bytes | dict) -> Pipeline:
    """A pipeline from a config object, its JSON text or its dict form (as saved in a model)."""
    if isinstance(config, (str, bytes)):
        config = PipelineConfig.from_json(config)
    elif isinstance(config, dict):
        config = PipelineConfig.from_dict(config)
    return Pipeline(config)
