"""``open_source(uri)``: one string names any live source.

====================================================  ===========================================
``udp://0.0.0.0:5500``                                Nexmon payloads and ESP32 lines, per datagram
``udp://127.0.0.1:9000?format=esp32``                 only ESP32 text (``nexmon``, ``esp-csi``...)
``udp://[::]:5500?chip=43455c0&rcvbuf=16777216``      IPv6; chip override for old Nexmon firmware
``serial:///dev/ttyUSB0?baud=921600``                 ESP32 over USB serial (``&wait=1``: wait for it)
``file:capture.pcap?speed=1``                         replay (``speed=0``: as fast as possible;
``file:///abs/path.csv?speed=2&loop=1``               ``loop=1``: start over at the end)
``capture.pcap``                                      an existing path: replay at recorded speed
``-`` or ``stdin:?format=pcap``                       stdin (lines, live pcap, or a whole file)
====================================================  ===========================================

Query options are checked (a typo is an error, not ignored); keyword
``options`` given to ``open_source`` override them and are passed on as they are.
"""

from __future__ import annotations

import os
from typing import Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from edgecsi.errors import EdgeCSIError
from edgecsi.firmware_bridge.sources import Source


class SourceURIError(EdgeCSIError, ValueError):
    """A source URI that cannot be understood."""


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"not a boolean: {text!r}")


_COMMON: dict[str, Callable[[str], object]] = {"silence_after": float}
_OPTIONS: dict[str, dict[str, Callable[[str], object]]] = {
    "udp": {"format": str, "chip": str, "rcvbuf": int, "max_batch": int, "linger": float, **_COMMON},
    "serial": {"baud": int, "format": str, "max_line": int, "wait": _bool, "backoff_min": float,
               "backoff_max": float, **_COMMON},
    "file": {"speed": float, "format": str, "loop": _bool, "chunk": int, "default_rate": float, "chip": str,
             **_COMMON},
    "stdin": {"format": str, "chip": str, "port": int, "max_line": int, **_COMMON},
}


def _query_options(scheme: str, query: str, uri: str) -> dict[str, object]:
    known = _OPTIONS[scheme]
    options: dict[str, object] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key not in known:
            raise SourceURIError(f"{uri}: unknown option {key!r} for {scheme} (known: {', '.join(sorted(known))})")
        try:
            options[key] = known[key](value)
        except ValueError as exc:
            raise SourceURIError(f"{uri}: option {key}={value!r}: {exc}") from None
    return options


def _split_query(rest: str) -> tuple[str, str]:
    path, _, query = rest.partition("?")
    return path, query


def open_source(uri: str, **options) -> Source:
    """Open the source ``uri`` names (see the module docstring for the forms)."""
    text = uri.strip()
    if text == "-" or text.startswith("-?") or text.startswith("stdin:"):
        from edgecsi.firmware_bridge.sources.stdin import StdinSource

        _, query = _split_query(text)
        return StdinSource(uri=text, **{**_query_options("stdin", query, uri), **options})

    scheme, sep, rest = text.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in _OPTIONS or (len(scheme) == 1 and os.name == "nt"):
        if os.path.exists(text):  # a bare existing path: replay it
            from edgecsi.firmware_bridge.sources.replay import ReplaySource

            return ReplaySource(text, uri=f"file:{text}", **options)
        raise SourceURIError(f"{uri}: not a source (udp://HOST:PORT, serial:///dev/tty..., file:PATH, -)"
                             " and no such file")

    if scheme == "udp":
        parts = urlsplit(text)
        try:
            port = parts.port
        except ValueError as exc:
            raise SourceURIError(f"{uri}: {exc}") from None
        if port is None:
            raise SourceURIError(f"{uri}: a UDP source needs a port (udp://0.0.0.0:5500)")
        host = parts.hostname or "0.0.0.0"
        from edgecsi.firmware_bridge.sources.udp import UDPSource

        return UDPSource(host, port, uri=text, **{**_query_options("udp", parts.query, uri), **options})

    if scheme == "serial":
        path, query = _split_query(rest)
        if path.startswith("//"):
            path = path[2:]  # serial:///dev/ttyUSB0 -> /dev/ttyUSB0 (empty authority)
        path = unquote(path)
        if not path:
            raise SourceURIError(f"{uri}: no serial device path")
        from edgecsi.firmware_bridge.sources.serial_port import SerialSource

        return SerialSource(path, uri=text, **{**_query_options("serial", query, uri), **options})

    # file:
    path, query = _split_query(rest)
    if path.startswith("//"):
        path = path[2:]  # file:///abs -> /abs ; file://rel -> rel
    path = unquote(path)
    if not path:
        raise SourceURIError(f"{uri}: no file path")
    from edgecsi.firmware_bridge.sources.replay import ReplaySource

    return ReplaySource(path, uri=text, **{**_query_options("file", query, uri), **options})
