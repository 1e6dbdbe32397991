"""Detections as events: what the agent emits and every sink receives."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Event:
    """One detection event.

    ``kind`` is ``"change"`` when the smoothed state of a stream changed and
    ``"state"`` for the periodic report. ``id`` is assigned by the event log
    (monotonic, durable) and lets receivers drop duplicates.
    """

    kind: str
    stream: str  # "aa:bb:cc:dd:ee:ff/c0/s0"
    task: str
    state: str  # smoothed label ("present", "WALKING_TX", "3") after voting/hysteresis
    score: float  # confidence of the state (0..1) or the regression value
    time: float  # end of the window the state comes from (sensor clock, seconds)
    emitted: float  # wall-clock time the agent emitted it
    raw: str = ""  # the label of the last window before smoothing
    extra: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "Event":
        return cls(**json.loads(text))
