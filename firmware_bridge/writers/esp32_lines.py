"""CSIBatch rows -> ESP32 serial lines (ESP32-CSI-Tool and esp-csi 25-column).

For the simulator and for replaying captures through a serial pty: what these
functions print, ``esp32_csi_tool.read`` / ``esp_csi.read`` (and their
``parse_line``) read back to the same csi values, invalid masks, MAC, RSSI,
noise, channel and (with ``host_time=True``, or ``real_time=True`` for the
tool) time.

The CSI goes back into an ESP32 buffer through the layout table
(``esp_buffer_layout``), the inverse of what the readers do:

- a batch on the 20 MHz grid (subcarriers within -32..31), as the readers
  produce by default, becomes the L-LTF: 128 values (64 (imag, real) pairs) in
  the order of the row's ``secondary_channel`` (extra column; default 0, FFT
  order). Bins the batch lacks are printed as 0.
- a batch whose ``ltf`` extra says HT-LTF becomes an HT buffer (L-LTF of zeros,
  then the HT-LTF): 256 bytes for HT20, 384 for HT40 (any batch with
  subcarriers beyond ±32 is HT40; secondary channel default "below").
- a raw batch (``layout_known`` False, subcarriers 0..n-1) is printed as is.

Values are rounded and clipped to int8. Device fields the batch does not carry
(``extra`` columns of the same names as the readers') get neutral defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from edgecsi.firmware_bridge.formats import esp_buffer_layout as layout
from edgecsi.frames import CSIBatch, mac_to_str

CSI_TOOL_HEADER = ("type,role,mac,rssi,rate,sig_mode,mcs,bandwidth,smoothing,not_sounding,aggregation,stbc,"
                   "fec_coding,sgi,noise_floor,ampdu_cnt,channel,secondary_channel,local_timestamp,ant,sig_len,"
                   "rx_state,real_time_set,real_timestamp,len,CSI_DATA")
ESP_CSI_HEADER = ("type,seq,mac,rssi,rate,sig_mode,mcs,bandwidth,smoothing,not_sounding,aggregation,stbc,"
                  "fec_coding,sgi,noise_floor,ampdu_cnt,channel,secondary_channel,local_timestamp,ant,sig_len,"
                  "rx_state,len,first_word,data")

_DEVICE_FIELDS = ("rate", "sig_mode", "mcs", "cwb", "smoothing", "not_sounding", "aggregation", "stbc", "fec_coding",
                  "sgi", "ampdu_cnt", "secondary_channel", "local_timestamp", "ant", "sig_len", "rx_state",
                  "real_time_set", "first_word_invalid", "len")


def _extra_int(batch: CSIBatch, name: str, default: np.ndarray | int) -> np.ndarray:
    """An integer extra column, with ``default`` where absent or unknown (-1)."""
    n = len(batch)
    fallback = np.broadcast_to(np.asarray(default, dtype=np.int64), (n,))
    column = batch.extra.get(name)
    if column is None:
        return fallback.copy()
    column = np.asarray(column).astype(np.int64)
    return np.where(column >= 0, column, fallback)


def _int_or(values: np.ndarray, default: int) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return np.where(np.isfinite(v), np.rint(v), default).astype(np.int64)


class _Buffers:
    """Per row: the printed int8 values and the selector fields of its buffer."""

    def __init__(self, batch: CSIBatch) -> None:
        n = len(batch)
        sc = batch.subcarriers.astype(np.int64)
        csi = batch.csi[:, 0, 0, :]
        if batch.n_rx != 1 or batch.n_tx != 1:
            raise ValueError(f"ESP32 lines carry one rx/tx pair, batch has {batch.csi.shape[1:3]}")
        if not np.all(np.isfinite(csi.view(np.float32))):
            raise ValueError("csi holds NaN or inf; ESP32 lines print integers")
        known = batch.extra.get("layout_known")
        ltf = _extra_int(batch, "ltf", layout.LLTF)
        on_20 = sc.size == 0 or (sc.min() >= -32 and sc.max() <= 31)
        self.sig_mode = _extra_int(batch, "sig_mode", 0)
        self.cwb = _extra_int(batch, "cwb", 0)
        self.stbc = _extra_int(batch, "stbc", 0)
        self.secondary = _extra_int(batch, "secondary_channel", 0)
        self.full = np.zeros(n, dtype=bool)  # True: print the whole buffer (len values)
        if known is not None and not np.asarray(known).all():
            if not np.array_equal(sc, np.arange(sc.size)):
                raise ValueError("a raw batch (layout_known False) must have subcarriers 0..n-1")
            entries = csi
            self.full[:] = True
            self.len = np.full(n, 2 * sc.size, dtype=np.int64)
        elif on_20 and not np.any(ltf > 0):
            entries = self._place(csi, sc, "lltf")
            self.len = np.maximum(_extra_int(batch, "len", 128), 128)
        else:
            kind = "ht20" if on_20 else "ht40"
            if kind == "ht40":
                self.secondary = np.where(np.isin(self.secondary, (1, 2)), self.secondary, layout.SECONDARY_BELOW)
            entries = self._place(csi, sc, kind)
            self.sig_mode[:] = 1
            self.cwb[:] = 1 if kind == "ht40" else 0
            self.stbc[:] = 0
            self.full[:] = True
            self.len = np.full(n, 2 * entries.shape[1], dtype=np.int64)
        values = np.empty((n, 2 * entries.shape[1]), dtype=np.int64)
        values[:, 0::2] = np.clip(np.rint(entries.imag), -128, 127)
        values[:, 1::2] = np.clip(np.rint(entries.real), -128, 127)
        self.values = values

    def _place(self, csi: np.ndarray, sc: np.ndarray, kind: str) -> np.ndarray:
        """csi[row, subcarrier] -> buffer entries[row, entry] for each row's secondary channel."""
        n_entries = {"lltf": 64, "ht20": 128, "ht40": 192}[kind]
        out = np.zeros((csi.shape[0], n_entries), dtype=np.complex64)
        for sec in np.unique(self.secondary).tolist():
            rows = np.flatnonzero(self.secondary == sec)
            use_sec = sec if sec in (0, 1, 2) else 0
            if kind == "lltf":
                self.secondary[rows] = use_sec
                m = layout.classic_mapping(64, 128, use_sec, 0, 0, 0, layout.LLTF)
            elif kind == "ht20":
                self.secondary[rows] = use_sec
                m = layout.classic_mapping(128, 256, use_sec, 1, 0, 0, layout.HTLTF)
            else:
                m = layout.classic_mapping(192, 384, use_sec, 1, 1, 0, layout.HTLTF)
            pos = np.searchsorted(m.subcarriers, sc)
            if np.any(pos >= m.subcarriers.size) or np.any(m.subcarriers[np.minimum(pos, m.subcarriers.size - 1)] != sc):
                raise ValueError(f"subcarriers {sc.min()}..{sc.max()} do not fit the {kind} grid")
            entry = m.gather[pos]
            reported = entry < n_entries
            block = np.zeros((rows.size, n_entries), dtype=np.complex64)
            block[:, entry[reported]] = csi[np.ix_(rows, np.flatnonzero(reported))]
            out[rows] = block
        return out


def _rows_in_order(batches: CSIBatch | Iterable[CSIBatch]) -> list[tuple[CSIBatch, int]]:
    if isinstance(batches, CSIBatch):
        return [(batches, i) for i in range(len(batches))]
    pairs = [(int(b.packet_index[i]), k, b, i) for k, b in enumerate(batches) for i in range(len(b))]
    pairs.sort(key=lambda t: (t[0], t[1], t[3]))
    return [(b, i) for _, _, b, i in pairs]


def _device_columns(batch: CSIBatch, buffers: _Buffers) -> dict[str, np.ndarray]:
    n = len(batch)
    time = np.asarray(batch.time, dtype=np.float64)
    local_default = np.where(np.isfinite(time), np.mod(np.rint(time * 1e6), 1 << 32), 0).astype(np.int64)
    return {
        "rssi": _int_or(batch.rssi, 0),
        "noise_floor": _int_or(batch.noise, 0),
        "channel": np.where(batch.channel >= 0, batch.channel, 0).astype(np.int64),
        "rate": _extra_int(batch, "rate", 0),
        "mcs": _extra_int(batch, "mcs", 0),
        "smoothing": _extra_int(batch, "smoothing", 0),
        "not_sounding": _extra_int(batch, "not_sounding", 1),
        "aggregation": _extra_int(batch, "aggregation", 0),
        "fec_coding": _extra_int(batch, "fec_coding", 0),
        "sgi": _extra_int(batch, "sgi", 0),
        "ampdu_cnt": _extra_int(batch, "ampdu_cnt", 0),
        "local_timestamp": _extra_int(batch, "local_timestamp", local_default),
        "ant": _extra_int(batch, "ant", 0),
        "sig_len": _extra_int(batch, "sig_len", 0),
        "rx_state": _extra_int(batch, "rx_state", 0),
        "sig_mode": buffers.sig_mode, "cwb": buffers.cwb, "stbc": buffers.stbc,
        "secondary_channel": buffers.secondary, "len": buffers.len,
        "seq": np.where(batch.seq >= 0, batch.seq, np.arange(n)).astype(np.int64),
    }


def csi_tool_lines(batches: CSIBatch | Iterable[CSIBatch], *, role: str | None = None, real_time: bool = True,
                   host_time: bool = False) -> list[str]:
    """ESP32-CSI-Tool lines (no line ends), rows in packet order.

    ``role``: the role column (default the batch's ``role`` extra, else
    "PASSIVE"). ``real_time``: print the real_time_set/real_timestamp columns
    (current firmware; ``time`` goes into real_timestamp) or leave them out
    (firmware before July 2019). ``host_time``: append ``,<time>`` as
    ``serial_append_time.py`` does. L-LTF batches print the first 128 values
    with the batch's ``len`` (LLTF-only default of the tool); HT buffers print
    all ``len`` values.
    """
    out: list[str] = []
    cache: dict[int, tuple[_Buffers, dict[str, np.ndarray]]] = {}
    for batch, i in _rows_in_order(batches):
        if id(batch) not in cache:
            buffers = _Buffers(batch)
            cache[id(batch)] = (buffers, _device_columns(batch, buffers))
        buffers, cols = cache[id(batch)]
        row_role = role or (str(batch.extra["role"][i]) if "role" in batch.extra else "") or "PASSIVE"
        head = [f"CSI_DATA,{row_role},{mac_to_str(int(batch.mac[i])).upper()}"]
        head += [str(int(cols[name][i])) for name in (
            "rssi", "rate", "sig_mode", "mcs", "cwb", "smoothing", "not_sounding", "aggregation", "stbc",
            "fec_coding", "sgi", "noise_floor", "ampdu_cnt", "channel", "secondary_channel", "local_timestamp",
            "ant", "sig_len", "rx_state")]
        t = float(batch.time[i])
        if real_time:
            real_set = _extra_int(batch, "real_time_set", 0)[i] if "real_time_set" in batch.extra else 0
            head += [str(int(real_set)), f"{t if np.isfinite(t) else 0.0:.6f}"]
        head.append(str(int(buffers.len[i])))
        values = buffers.values[i] if buffers.full[i] else buffers.values[i, :128]
        line = ",".join(head) + ",[" + "".join(f"{v} " for v in values.tolist()) + "]"
        if host_time and np.isfinite(t):
            line += f",{t:.6f}"
        out.append(line)
    return out


def esp_csi_lines(batches: CSIBatch | Iterable[CSIBatch], *, host_time: bool = False) -> list[str]:
    """esp-csi classic (25-column) lines (no line ends), rows in packet order.

    ``first_word`` comes from the ``first_word_invalid`` extra; where that is
    unknown (-1, an ESP32-CSI-Tool capture) it is printed as 1, which keeps the
    reader's mask. ``host_time``: append ``,<time>``.
    """
    out: list[str] = []
    cache: dict[int, tuple[_Buffers, dict[str, np.ndarray], np.ndarray]] = {}
    for batch, i in _rows_in_order(batches):
        if id(batch) not in cache:
            buffers = _Buffers(batch)
            column = batch.extra.get("first_word_invalid")
            first_word = np.zeros(len(batch), np.int64) if column is None else \
                np.where(np.asarray(column) < 0, 1, np.asarray(column)).astype(np.int64)
            cache[id(batch)] = (buffers, _device_columns(batch, buffers), first_word)
        buffers, cols, first_word = cache[id(batch)]
        # esp-csi prints exactly len values: an L-LTF-only row is a 128-byte buffer
        values = buffers.values[i] if buffers.full[i] else buffers.values[i, :128]
        head = [f"CSI_DATA,{int(cols['seq'][i])},{mac_to_str(int(batch.mac[i]))}"]
        head += [str(int(cols[name][i])) for name in (
            "rssi", "rate", "sig_mode", "mcs", "cwb", "smoothing", "not_sounding", "aggregation", "stbc",
            "fec_coding", "sgi", "noise_floor", "ampdu_cnt", "channel", "secondary_channel", "local_timestamp",
            "ant", "sig_len", "rx_state")]
        head += [str(values.shape[0]), str(int(first_word[i]))]
        line = ",".join(head) + ',"[' + ",".join(map(str, values.tolist())) + ']"'
        t = float(batch.time[i])
        if host_time and np.isfinite(t):
            line += f",{t:.6f}"
        out.append(line)
    return out


def csi_tool_text(batches: CSIBatch | Sequence[CSIBatch], *, header: bool = True, newline: str = "\n",
                  **options) -> str:
    """A whole ESP32-CSI-Tool capture file (header row optional); options as :func:`csi_tool_lines`."""
    lines = csi_tool_lines(batches, **options)
    if header:
        lines.insert(0, CSI_TOOL_HEADER if options.get("real_time", True) else
                     CSI_TOOL_HEADER.replace("real_time_set,real_timestamp,", ""))
    return "".join(line + newline for line in lines)


def esp_csi_text(batches: CSIBatch | Sequence[CSIBatch], *, header: bool = True, newline: str = "\n",
                 **options) -> str:
    """A whole esp-csi capture file (classic 25-column layout); options as :func:`esp_csi_lines`."""
    lines = esp_csi_lines(batches, **options)
    if header:
        lines.insert(0, ESP_CSI_HEADER)
    return "".join(line + newline for line in lines)


def write_csi_tool_lines(batches: CSIBatch | Sequence[CSIBatch], path: str | Path, *, header: bool = True,
                         **options) -> int:
    """Write an ESP32-CSI-Tool capture file; returns the number of CSI lines. Options as :func:`csi_tool_lines`."""
    text = csi_tool_text(batches, header=header, **options)
    Path(path).write_text(text, encoding="ascii")
    return text.count("\n") - int(header)


def write_esp_csi_lines(batches: CSIBatch | Sequence[CSIBatch], path: str | Path, *, header: bool = True,
                        **options) -> int:
    """Write an esp-csi (25-column) capture file; returns the number of CSI lines. Options as :func:`esp_csi_lines`."""
    text = esp_csi_text(batches, header=header, **options)
    Path(path).write_text(text, encoding="ascii")
    return text.count("\n") - int(header)
