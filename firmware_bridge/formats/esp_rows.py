"""Parsed ESP32 text rows (columnar) and their conversion into CSIBatch objects.

Both ESP32 line formats (ESP32-CSI-Tool, esp-csi) parse into :class:`Rows`:
one float64 array per device field (NaN where the line has no such column), the
source MAC, a few text columns and the printed int values as one flat int16
array with a count per row (rows of one capture may print different numbers of
values). :func:`build_batches` then maps each row's values onto a subcarrier
grid (``esp_buffer_layout``) and cuts the rows into one batch per layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping as TMapping, Sequence

import numpy as np

from edgecsi.firmware_bridge.formats.esp_buffer_layout import Mapping
from edgecsi.firmware_bridge.formats.esp_lines import ranges
from edgecsi.frames import CSIBatch, make_batch

U32 = 1 << 32


@dataclass
class Rows:
    """Columnar ESP32 rows; every array has one entry per row (``values`` is flat)."""

    line: np.ndarray  # int64[row], 1-based line number in the input, -1 unknown
    fields: dict[str, np.ndarray]  # float64[row] per device field, NaN = not on this line
    mac: np.ndarray  # uint64[row]
    text: dict[str, np.ndarray]  # str[row] per text field ("" = not on this line)
    values: np.ndarray  # int16[sum(counts)]: the printed values, row after row
    counts: np.ndarray  # int64[row]

    def __len__(self) -> int:
        return int(self.line.shape[0])

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    def take(self, idx: np.ndarray) -> "Rows":
        idx = np.asarray(idx)
        if idx.dtype == bool:  # dropping rows: a mask over the values keeps the others in order
            values = self.values[np.repeat(idx, self.counts)]
            idx = np.flatnonzero(idx)
        else:
            start = self.offsets[idx]
            values = self.values[ranges(start, start + self.counts[idx])]
        return Rows(self.line[idx], {k: v[idx] for k, v in self.fields.items()}, self.mac[idx],
                    {k: v[idx] for k, v in self.text.items()}, values, self.counts[idx])

    def row_values(self, idx: np.ndarray, n: int) -> np.ndarray:
        """int16[len(idx), n]: values of rows ``idx`` (ascending, distinct) that all print ``n`` values."""
        if self.values.shape[0] == n * len(self):  # every row prints n values: a plain reshape
            every = self.values.reshape(len(self), n)
            return every if len(idx) == len(self) else every[idx]
        start = self.offsets[:-1][idx]
        return self.values[start[:, None] + np.arange(n)]

    @staticmethod
    def empty(field_names: Sequence[str], text_names: Sequence[str]) -> "Rows":
        return Rows(np.zeros(0, np.int64), {k: np.zeros(0) for k in field_names}, np.zeros(0, np.uint64),
                    {k: np.zeros(0, dtype="U1") for k in text_names}, np.zeros(0, np.int16),
                    np.zeros(0, np.int64))

    @staticmethod
    def concat(parts: Sequence["Rows"]) -> "Rows":
        parts = [p for p in parts if len(p)] or list(parts[:1])
        if len(parts) == 1:
            return parts[0]
        first = parts[0]
        return Rows(np.concatenate([p.line for p in parts]),
                    {k: np.concatenate([p.fields[k] for p in parts]) for k in first.fields},
                    np.concatenate([p.mac for p in parts]),
                    {k: np.concatenate([p.text[k] for p in parts]) for k in first.text},
                    np.concatenate([p.values for p in parts]),
                    np.concatenate([p.counts for p in parts]))

    def sorted_by_line(self) -> "Rows":
        if len(self) < 2 or np.all(np.diff(self.line) > 0):
            return self
        return self.take(np.argsort(self.line, kind="stable"))


def one_row(line_no: int | None, fields: TMapping[str, float], field_names: Sequence[str], mac: int,
            text: TMapping[str, str], text_names: Sequence[str], values: Sequence[int]) -> Rows:
    """A :class:`Rows` of one line (the per-line parser's output)."""
    return Rows(np.array([-1 if line_no is None else line_no], dtype=np.int64),
                {k: np.array([fields.get(k, np.nan)], dtype=np.float64) for k in field_names},
                np.array([mac], dtype=np.uint64),
                {k: np.array([text.get(k, "")]) for k in text_names},
                np.asarray(values, dtype=np.int16).ravel(), np.array([len(values)], dtype=np.int64))


def out_of_range(rows: Rows, ranges: TMapping[str, tuple[float, float]]) -> tuple[np.ndarray, list[str]]:
    """bool[row] True where a present field is not an integer within its range; the
    first offending field's name per row ("" for good rows)."""
    names = [k for k in ranges if k in rows.fields]
    if not names or not len(rows):
        return np.zeros(len(rows), dtype=bool), [""] * len(rows)
    table = np.column_stack([rows.fields[k] for k in names])
    lo = np.array([ranges[k][0] for k in names], dtype=np.float64)
    hi = np.array([ranges[k][1] for k in names], dtype=np.float64)
    with np.errstate(invalid="ignore"):
        wrong = ~np.isnan(table) & ((table < lo) | (table > hi) | (table != np.floor(table)))
    bad = wrong.any(axis=1)
    which = [""] * len(rows)
    for k in np.flatnonzero(bad).tolist():
        which[k] = names[int(np.argmax(wrong[k]))]
    return bad, which


def unwrap_u32(ts: np.ndarray) -> np.ndarray:
    """Device microsecond counter (u32, may be printed signed) -> monotone int64 across wraps.

    A step back of more than half the counter range is a wrap; a smaller step
    back (a reboot, reordered lines) is kept as it is.
    """
    t = np.mod(ts.astype(np.int64), U32)
    if t.shape[0] < 2:
        return t
    wraps = np.concatenate([[0], np.cumsum(np.diff(t) < -(U32 // 2))])
    return t + wraps * U32


def packet_time(rows: Rows, local_us: np.ndarray, received: float | None = None) -> np.ndarray:
    """Seconds per row: host time appended to the line, else ``received``, else the
    device's real_timestamp, else local_timestamp (µs since boot)."""
    t = local_us.astype(np.float64) / 1e6
    real = rows.fields.get("real_timestamp")
    if real is not None:
        t = np.where(np.isnan(real), t, real)
    if received is not None:
        t = np.full_like(t, float(received))
    host = rows.fields.get("host_time")
    if host is not None:
        t = np.where(np.isnan(host), t, host)
    return t


def _csi(values: np.ndarray, gather: np.ndarray) -> np.ndarray:
    """int16[row, 2 * n_entries] printed values -> complex64[row, subcarrier] through a
    mapping's ``gather`` (the entry of each subcarrier; ``n_entries``: not reported, 0).

    Pairs are printed (imag, real): the (real, imag) of every subcarrier are the
    printed columns (2e + 1, 2e), so one column gather and one cast give the
    complex64 rows (their memory is float32 real, imag pairs).
    """
    n_entries = values.shape[1] // 2
    missing = gather >= n_entries
    entry = np.where(missing, 0, gather)
    columns = np.stack([2 * entry + 1, 2 * entry], axis=1).ravel()
    out = np.take(values, columns, axis=1).astype(np.float32).view(np.complex64)
    if missing.any():
        out[:, missing] = 0
    return out


def _layout_block(rows: Rows, idx: np.ndarray, m: Mapping, first_word_bad: np.ndarray) -> tuple[np.ndarray,
                                                                                               np.ndarray]:
    """(csi, invalid) of rows ``idx``, which all follow mapping ``m``."""
    csi = _csi(rows.row_values(idx, int(rows.counts[idx[0]])), m.gather)
    invalid = np.broadcast_to(m.invalid, csi.shape).copy()
    if m.first_word.size:
        invalid[np.ix_(first_word_bad[idx], m.first_word)] = True
    return csi, invalid


def _merge_equal(mappings: Sequence[Mapping], mapping_id: np.ndarray,
                 counts: np.ndarray) -> tuple[list[Mapping], np.ndarray]:
    """One id per distinct (mapping, printed count): rows whose selector fields differ
    but lead to the same layout (an L-LTF-only print of a legacy and of an HT packet)
    are then filled in one pass."""
    used, first_row = np.unique(mapping_id, return_index=True)
    ids: dict[tuple, int] = {}
    remap = np.zeros(len(mappings), dtype=np.intp)
    merged: list[Mapping] = []
    for m_id, row in zip(used.tolist(), first_row.tolist()):
        m = mappings[m_id]
        key = (int(counts[row]), m.subcarriers.tobytes(), m.gather.tobytes(), m.invalid.tobytes(),
               m.first_word.tobytes(), m.bandwidth_mhz, m.ltf, m.known)
        if key not in ids:
            ids[key] = len(merged)
            merged.append(m)
        remap[m_id] = ids[key]
    return merged, remap[mapping_id]


@dataclass
class Columns:
    """Per-row CSIBatch columns that do not depend on the layout."""

    time: np.ndarray
    mac: np.ndarray
    seq: np.ndarray
    rssi: np.ndarray
    noise: np.ndarray
    channel: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def build_batches(rows: Rows, cols: Columns, *, format: str, chips: Sequence[str], chip_id: np.ndarray,
                  mappings: Sequence[Mapping], mapping_id: np.ndarray, first_word_bad: np.ndarray,
                  packet_index: np.ndarray) -> list[CSIBatch]:
    """Cut rows into one batch per (chip, subcarrier grid), in order of first appearance.

    ``mapping_id[row]`` indexes ``mappings``; rows of one mapping print the same
    number of values. ``first_word_bad[row]``: buffer entries 0 and 1 are garbage.
    """
    if len(rows) == 0:
        return []
    if len(mappings) > 1:
        mappings, mapping_id = _merge_equal(mappings, mapping_id, rows.counts)
    groups: dict[tuple, list[int]] = {}
    single = len(mappings) == 1 and len(chips) == 1
    for m_id in (0,) if single else np.unique(mapping_id).tolist():
        m = mappings[m_id]
        for c_id in (0,) if single else np.unique(chip_id[mapping_id == m_id]).tolist():
            key = (c_id, m.subcarriers.tobytes(), m.known)
            groups.setdefault(key, []).append(m_id)
    batches = []
    for (c_id, _, _), m_ids in groups.items():
        if single:
            idx = np.arange(len(rows))
        else:
            idx = np.flatnonzero(np.isin(mapping_id, m_ids) & (chip_id == c_id))
        every = len(idx) == len(rows)  # the whole capture is one batch: its columns need no copies

        def pick(column: np.ndarray) -> np.ndarray:
            return column if every else column[idx]

        first = mappings[m_ids[0]]
        n_sc = first.subcarriers.shape[0]
        if len(m_ids) == 1:
            csi, invalid = _layout_block(rows, idx, first, first_word_bad)
        else:
            csi = np.zeros((len(idx), n_sc), dtype=np.complex64)
            invalid = np.zeros((len(idx), n_sc), dtype=bool)
        bandwidth = np.full(len(idx), first.bandwidth_mhz, dtype=np.int16)
        ltf = np.full(len(idx), first.ltf, dtype=np.int8)
        known = np.full(len(idx), first.known, dtype=bool)
        for m_id in m_ids if len(m_ids) > 1 else ():
            m = mappings[m_id]
            pos = np.flatnonzero(mapping_id[idx] == m_id)
            csi[pos], invalid[pos] = _layout_block(rows, idx[pos], m, first_word_bad)
            bandwidth[pos] = m.bandwidth_mhz
            ltf[pos] = m.ltf
            known[pos] = m.known
        extra = {k: pick(v) for k, v in cols.extra.items()}
        extra["ltf"] = ltf
        extra["layout_known"] = known
        batches.append(make_batch(
            format=format, chip=chips[c_id], subcarriers=first.subcarriers, csi=csi, invalid=invalid,
            time=pick(cols.time), mac=pick(cols.mac), seq=pick(cols.seq), rssi=pick(cols.rssi),
            noise=pick(cols.noise), channel=pick(cols.channel), bandwidth_mhz=bandwidth,
            packet_index=pick(packet_index), extra=extra))
    batches.sort(key=lambda b: int(b.packet_index[0]))
    return batches


def layout_keys(columns: Sequence[np.ndarray], sizes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Rows -> (unique key rows int64[k, c], inverse int[row]) for small non-negative int columns.

    ``sizes[c]`` bounds column c (values are clipped into ``0..size-1`` first, so
    callers pass range-checked columns); one 1-D unique instead of a row-wise one.
    """
    if columns[0].shape[0] == 1:  # a live line: plain ints are cheaper than numpy calls
        one = [min(max(int(col[0]), 0), size - 1) for col, size in zip(columns, sizes)]
        return np.array([one], dtype=np.int64), np.zeros(1, dtype=np.intp)
    key = np.zeros(columns[0].shape[0], dtype=np.int64)
    for col, size in zip(columns, sizes):
        key = key * size + np.clip(col, 0, size - 1).astype(np.int64)
    if key.shape[0] == 0:
        return np.zeros((0, len(columns)), dtype=np.int64), np.zeros(0, dtype=np.intp)
    if (key == key[0]).all():  # one kind of row (every live line, most files)
        uniq, inverse = key[:1], np.zeros(key.shape[0], dtype=np.intp)
    else:
        uniq, inverse = np.unique(key, return_inverse=True)
    out = np.zeros((uniq.shape[0], len(columns)), dtype=np.int64)
    rest = uniq.copy()
    for c in range(len(columns) - 1, -1, -1):
        out[:, c] = rest % sizes[c]
        rest //= sizes[c]
    return out, inverse.ravel()


def int_columns(fields: TMapping[str, np.ndarray], dtypes: TMapping[str, type]) -> dict[str, np.ndarray]:
    """Several float64 fields (NaN = absent) -> integer columns with -1 for absent, in one pass."""
    names = list(dtypes)
    table = np.column_stack([fields[k] for k in names])
    table = np.where(np.isnan(table), -1.0, table)
    return {k: table[:, c].astype(dtypes[k]) for c, k in enumerate(names)}


def int_column(v: np.ndarray, dtype=np.int64) -> np.ndarray:
    """float64 field (NaN = absent) -> integer column with -1 for absent."""
    if not np.isnan(v).any():
        return v.astype(dtype)
    return np.where(np.isnan(v), -1, v).astype(dtype)
