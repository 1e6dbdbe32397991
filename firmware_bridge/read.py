"""``read(path)``: detect the format of a capture and read it."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

from edgecsi.errors import ParseError, UnknownFormatError
from edgecsi.firmware_bridge import formats
from edgecsi.firmware_bridge.capture import Capture

SNIFF_BYTES = 4096

Readable = str | os.PathLike | bytes | bytearray | memoryview | BinaryIO


def _load(src: Readable) -> tuple[bytes, str]:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src), "<bytes>"
    if isinstance(src, (str, os.PathLike)):
        path = Path(src)
        try:
            return path.read_bytes(), str(path)
        except OSError as exc:
            raise ParseError("unreadable", exc.strerror or str(exc), source=str(path)) from exc
    if isinstance(src, io.IOBase) or hasattr(src, "read"):
        data = src.read()
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        return bytes(data), getattr(src, "name", "<stream>")
    raise TypeError(f"cannot read CSI from {type(src).__name__}")


def sniff(head: bytes) -> str | None:
    """The name of the first format whose sniffer accepts ``head``."""
    for module in formats.available():
        if module.sniff(head[:SNIFF_BYTES]):
            return module.NAME
    return None


def read(src: Readable, *, format: str | None = None, source: str | None = None, **options) -> Capture:
    """Read a whole capture from a path, bytes or a binary file object.

    ``format`` skips detection; ``source`` names the input in messages (default: the path); ``options`` go to that format's reader (for
    example ``chip="43455c0"`` for Nexmon, ``scaled=True`` for Intel 5300).
    Raises :class:`ParseError` (naming the file) when the input is unreadable or
    of no known format; bad records inside a known format are counted in
    ``Capture.bad`` instead.
    """
    data, loaded_from = _load(src)
    source = source or loaded_from
    name = format or sniff(data)
    if name is None:
        known = ", ".join(m.NAME for m in formats.available())
        raise UnknownFormatError("unknown_format", f"no reader recognises these bytes (known: {known})",
                                 source=source, offset=0)
    return formats.by_name(name).read(data, source=source, **options)
