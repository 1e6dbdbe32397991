"""What the two ESP32 line formats share: reading a whole text, and one line, from the format's own row parsers.

``esp32_csi_tool`` and ``esp_csi`` differ in their columns and how a row is cut up, not in how a
file is read: sort the lines (fast canonical rows, rows for the careful per-line parser, junk),
parse, drop the rows whose fields are out of range (each counted with its line number) and build
batches. A :class:`LineDialect` holds one format's parsers; ``read`` and ``parse_line`` are that
procedure, written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from edgecsi.errors import BadPackets, ParseError
from edgecsi.firmware_bridge.capture import Capture
from edgecsi.firmware_bridge.formats import esp_buffer_layout as layout
from edgecsi.firmware_bridge.formats import esp_lines
from edgecsi.firmware_bridge.formats.esp_rows import Rows
from edgecsi.frames import CSIBatch


def check_ltf(ltf: str) -> int:
    try:
        return layout.LTF_NAMES[ltf]
    except KeyError:
        raise ValueError(f"ltf must be one of {', '.join(layout.LTF_NAMES)}, got {ltf!r}") from None


def slices(data: bytes, begin: np.ndarray, end: np.ndarray) -> list[bytes]:
    return list(map(data.__getitem__, map(slice, begin.tolist(), end.tolist())))


@dataclass(frozen=True)
class LineDialect:
    name: str  # the format's NAME
    not_format: str  # the ParseError reason when the input holds no line of this format
    header: tuple[bytes, ...]  # how a header row starts
    fields: tuple[str, ...]  # numeric row fields
    text: tuple[str, ...]  # text row fields
    fast: Callable  # (TextLines, line numbers) -> (rows parsed, line numbers left for parse_one)
    parse_one: Callable  # (line, line number, source) -> Rows; raises ParseError
    reasons: Callable  # Rows -> [(row, reason, detail)] for out-of-range fields
    batches: Callable  # (Rows, ltf=, chip=, received=) -> [CSIBatch]

    def read(self, data: bytes, *, source: str = "", ltf: str = "lltf", chip: str | None = None) -> Capture:
        want = check_ltf(ltf)
        data = bytes(data)
        bad = BadPackets()
        text = esp_lines.TextLines(data, marks=b"[],")
        fast, other, junk = text.sort(self.header)
        if not fast.size and not other:
            if not any(text.line(i).strip(b" \t\r\n\x00").startswith(self.header) for i in range(1, len(text) + 1)):
                raise ParseError(self.not_format, "no CSI_DATA line", source=source, offset=0)
        for i in junk:
            bad.add(ParseError("not_csi", f"{text.line(i)[:40]!r}", source=source, line=i))
        parts, slow = self.fast(text, fast)
        for i in sorted(slow + other):
            try:
                parts.append(self.parse_one(text.line(i), i, source))
            except ParseError as exc:
                bad.add(exc)
        rows = Rows.concat(parts).sorted_by_line() if parts else Rows.empty(self.fields, self.text)
        reasons = self.reasons(rows)
        if reasons:
            keep = np.ones(len(rows), dtype=bool)
            for k, reason, detail in reasons:
                if keep[k]:
                    bad.add(ParseError(reason, detail, source=source, line=int(rows.line[k])))
                keep[k] = False
            rows = rows.take(keep)
        return Capture(format=self.name, source=source, batches=self.batches(rows, ltf=want, chip=chip, received=None),
                       bad=bad)

    def parse_line(self, line: str | bytes, *, received: float | None = None, source: str = "",
                   line_no: int | None = None, ltf: str = "lltf", chip: str | None = None) -> CSIBatch:
        want = check_ltf(ltf)
        rows = self.parse_one(line, line_no, source)
        reasons = self.reasons(rows)
        if reasons:
            _, reason, detail = reasons[0]
            raise ParseError(reason, detail, source=source, line=line_no)
        return self.batches(rows, ltf=want, chip=chip, received=received)[0]
