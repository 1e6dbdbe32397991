"""One module per on-disk / on-wire CSI format.

Every format module exposes:

- ``NAME``: the format's name (``"nexmon-pcap"``, ``"esp32-csi-tool"``...).
- ``sniff(head: bytes) -> bool``: True when the first bytes look like this format
  (cheap, never raises).
- ``read(data: bytes, *, source: str = "", **options) -> Capture``: the whole
  input. Bad records are counted in ``Capture.bad`` and skipped; only input that
  is not this format at all raises :class:`edgecsi.errors.ParseError`.

Line and datagram formats also expose a per-record parser used by live sources
(``parse_line`` / ``parse_datagram``) that returns a one-packet batch or raises
``ParseError``.
"""

from __future__ import annotations

import functools
import importlib
from types import ModuleType

# Sniffing order: binary formats with strong magic numbers first, text last.
FORMAT_MODULES = (
    "pcapng",
    "nexmon_pcap",
    "intel5300",
    "atheros",
    "esp_csi",
    "esp32_csi_tool",
)


def load(name: str) -> ModuleType:
    return importlib.import_module(f"edgecsi.firmware_bridge.formats.{name}")


@functools.lru_cache(maxsize=1)
def _available() -> tuple[ModuleType, ...]:
    modules = []
    for name in FORMAT_MODULES:
        try:
            modules.append(load(name))
        except ModuleNotFoundError as exc:
            if exc.name != f"edgecsi.firmware_bridge.formats.{name}":
                raise
    return tuple(modules)


def available() -> list[ModuleType]:
    """The format modules that exist in this build, in sniffing order (looked up once)."""
    return list(_available())


def by_name(format_name: str) -> ModuleType:
    for module in available():
        if module.NAME == format_name:
            return module
    names = ", ".join(m.NAME for m in available())
    raise KeyError(f"unknown format {format_name!r}; known: {names}")
