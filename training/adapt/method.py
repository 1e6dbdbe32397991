"""What every adaptation method returns, and how ``--option key=value`` strings become its config."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from torch import nn


@dataclass
class MethodResult:
    """The adapted model (eval mode) and what was trained.

    model      takes ``x[batch, time, feature]``, returns logits; has ``embed``/``head`` and ``arch()``
    trainable  names of the parameters the method changed (the rest are the base's, bit for bit)
    history    per-step numbers (losses, alpha) sampled along the way
    notes      anything a reader of the run should know (e.g. "no labelled windows: unchanged")
    """

    model: nn.Module
    trainable: list[str]
    history: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def configure(cls: type, options: dict[str, Any] | None):
    """``cls`` (a config dataclass) with ``options`` applied; strings are converted to the field's type.

    Unknown keys raise, so a typo never trains with the default silently.
    """
    options = dict(options or {})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(options) - set(fields)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown option(s) {sorted(unknown)}; known: {sorted(fields)}")
    base = cls()
    values = {}
    for key, raw in options.items():
        current = getattr(base, key)
        values[key] = _convert(raw, current) if isinstance(raw, str) else raw
    return dataclasses.replace(base, **values)


def as_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def _convert(text: str, current: Any) -> Any:
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {text!r}")
    if isinstance(current, int):
        return int(text)
    if isinstance(current, float):
        return float(text)
    if isinstance(current, str):
        return text
    return json.loads(text)          # None / dict / list defaults: JSON
