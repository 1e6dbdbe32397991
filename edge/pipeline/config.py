"""The pipeline description that travels inside every exported model.

A :class:`PipelineConfig` is a small frozen dataclass tree with a JSON form.
Everything the gateway needs to rebuild the exact training pipeline is in it:
the feature choice, the kept subcarriers and antenna layout, the Hampel and
resampling settings, the anti-aliasing low-pass taps (designed on the training side
by ``edgecsi.training.filter_design``, so the gateway never needs scipy), the
window length/hop and the fitted per-feature normalisation statistics.

Sequences are tuples in Python and lists in JSON; ``from_json(to_json(c)) == c``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, get_type_hints

#: Bump when the meaning of a field changes; ``from_json`` refuses newer files.
CONFIG_VERSION = 1

FEATURE_KINDS = ("amplitude", "phase", "conj")
AGC_MODES = ("none", "mean", "rssi")
OUTLIER_METHODS = ("none", "mad", "isolation_forest")


@dataclass(frozen=True)
class HampelConfig:
    """Hampel filter over packets (time), per feature.

    A value is replaced by the median of the ``2*half_window+1`` packets
    centred on it when it is more than ``n_sigma`` robust standard deviations
    (1.4826 * MAD) away from that median. Streaming delay: ``half_window`` packets.
    """

    enabled: bool = True
    half_window: int = 5
    n_sigma: float = 3.0


@dataclass(frozen=True)
class ResampleConfig:
    """Irregular packets -> uniform ``rate_hz`` samples (see ``resample.py``).

    Each output is the integral of the linearly interpolated packets (at their
    true arrival times) against a Kaiser-window low-pass prototype. ``taps``
    is that prototype sampled at ``rate_hz * phases`` (a polyphase table:
    ``phases`` sub-steps per output sample), odd length, symmetric, unity DC
    gain; designed offline by ``edgecsi.training.filter_design``. A gap
    between packets longer than ``max_gap_s`` ends the segment; the next
    packet starts a new one (no interpolation across the gap, no window spans
    it).
    """

    rate_hz: float = 100.0
    phases: int = 16
    max_gap_s: float = 0.5
    taps: tuple[float, ...] | None = None


@dataclass(frozen=True)
class WindowConfig:
    """Windows of ``length`` resampled samples every ``hop`` samples, per segment."""

    length: int = 100
    hop: int = 10


@dataclass(frozen=True)
class NormaliseConfig:
    """Per-feature (x - mean) / std with statistics fitted on training windows."""

    enabled: bool = True
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    min_std: float = 1e-6


@dataclass(frozen=True)
class OutlierConfig:
    """Training-set outlier removal (``edgecsi.training.outliers``); unused on the gateway.

    ``mad``: robust z-score (0.6745 |x - median| / MAD) of each row's summary
    features, a row is an outlier when the median over features exceeds
    ``threshold``. ``isolation_forest``: sklearn IsolationForest with
    ``contamination``.
    """

    method: str = "none"
    threshold: float = 3.5
    contamination: float = 0.05


@dataclass(frozen=True)
class PipelineConfig:
    """One signal pipeline, parsed frames -> ``x[window, time, feature]`` float32.

    Layout fields (``subcarriers``, ``n_rx``, ``n_tx``) may be left ``None``;
    ``Pipeline.fit`` resolves them from the training data: kept subcarriers are
    the bins invalid in at most ``max_invalid_fraction`` of the packets, minus
    pilots when ``drop_pilots``.
    """

    version: int = CONFIG_VERSION
    features: tuple[str, ...] = ("amplitude",)
    agc: str = "mean"
    subcarriers: tuple[int, ...] | None = None
    n_rx: int | None = None
    n_tx: int | None = None
    drop_pilots: bool = False
    max_invalid_fraction: float = 0.5
    hampel: HampelConfig = field(default_factory=HampelConfig)
    resample: ResampleConfig = field(default_factory=ResampleConfig)
    window: WindowConfig = field(default_factory=WindowConfig)
    normalise: NormaliseConfig = field(default_factory=NormaliseConfig)
    outliers: OutlierConfig = field(default_factory=OutlierConfig)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.version > CONFIG_VERSION:
            raise ValueError(f"pipeline config version {self.version} is newer than this code ({CONFIG_VERSION})")
        if not self.features:
            raise ValueError("pipeline config needs at least one feature kind")
        for kind in self.features:
            if kind not in FEATURE_KINDS:
                raise ValueError(f"unknown feature kind {kind!r}; known: {', '.join(FEATURE_KINDS)}")
        if len(set(self.features)) != len(self.features):
            raise ValueError(f"feature kinds repeat: {self.features}")
        if self.agc not in AGC_MODES:
            raise ValueError(f"unknown agc mode {self.agc!r}; known: {', '.join(AGC_MODES)}")
        if self.outliers.method not in OUTLIER_METHODS:
            raise ValueError(f"unknown outlier method {self.outliers.method!r}; known: {', '.join(OUTLIER_METHODS)}")
        if not 0.0 <= self.max_invalid_fraction <= 1.0:
            raise ValueError("max_invalid_fraction must be in [0, 1]")
        if self.hampel.half_window < 1 or self.hampel.n_sigma <= 0:
            raise ValueError("hampel needs half_window >= 1 and n_sigma > 0")
        r = self.resample
        if not (r.rate_hz > 0 and math.isfinite(r.rate_hz)) or r.phases < 1 or r.max_gap_s <= 0:
            raise ValueError("resample needs rate_hz > 0, phases >= 1, max_gap_s > 0")
        if r.taps is not None and len(r.taps) % 2 == 0:
            raise ValueError(f"resample taps must have odd length (symmetric about a centre tap), got {len(r.taps)}")
        if self.window.length < 1 or self.window.hop < 1:
            raise ValueError("window length and hop must be >= 1")
        n = self.normalise
        if (n.mean is None) != (n.std is None) or (n.mean is not None and len(n.mean) != len(n.std)):
            raise ValueError("normalise mean and std must both be set, with one value per feature")

    @property
    def fitted(self) -> bool:
        """True when the layout is known and (if enabled) normalisation statistics are present."""
        layout = self.subcarriers is not None and self.n_rx is not None and self.n_tx is not None
        return layout and (not self.normalise.enabled or self.normalise.mean is not None)

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(asdict(self))

    def to_json(self, *, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True, allow_nan=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PipelineConfig":
        version = data.get("version", CONFIG_VERSION)
        if not isinstance(version, int) or version > CONFIG_VERSION:
            raise ValueError(f"pipeline config version {version!r} is not supported (this code reads <= {CONFIG_VERSION})")
        return _from_plain(cls, data)

    @classmethod
    def from_json(cls, text: str | bytes) -> "PipelineConfig":
        return cls.from_dict(json.loads(text))


def _to_plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("pipeline config holds a non-finite number")
    return value


def _from_plain(cls: type, data: dict[str, Any]) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown fields {sorted(unknown)}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        hint = hints[name]
        if is_dataclass(hint):
            kwargs[name] = _from_plain(hint, value)
        elif isinstance(value, list):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)
