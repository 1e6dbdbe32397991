"""The one CSI frame model every source produces.

A :class:`CSIBatch` is columnar: one numpy array per field, one row per received
packet, so readers and the gateway never build a Python object per packet on the
hot path. All rows of a batch share one subcarrier layout (the same
``subcarriers`` vector and the same ``[rx, tx]`` shape); a capture whose layout
changes midway (an ESP32 switching between legacy and HT frames, a Nexmon file
with 20 and 80 MHz frames) becomes several batches, and ``packet_index`` keeps
the original order across them.

Array layouts:

- ``csi[packet, rx, tx, subcarrier]``: complex64, subcarriers in natural order
  ``-N/2 .. N/2-1`` as listed in ``subcarriers`` (int16, ascending).
- ``invalid[packet, subcarrier]``: bool, True where the bin holds no channel
  estimate (nulls/guards, ESP32 first-word garbage, Nexmon PHY-status words,
  pilots when a reader is asked to mask them).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping, Sequence

import numpy as np

#: Sentinel for "the source does not report this integer field".
UNKNOWN = -1

_INT_COLUMNS = ("seq", "channel", "bandwidth_mhz", "core", "stream")
_FLOAT_COLUMNS = ("time", "rssi", "noise")


def mac_to_int(mac: str | bytes) -> int:
    """``"aa:bb:cc:dd:ee:ff"`` or 6 raw bytes -> 48-bit integer."""
    if isinstance(mac, (bytes, bytearray, memoryview)):
        raw = bytes(mac)
        if len(raw) != 6:
            raise ValueError(f"a MAC address has 6 bytes, got {len(raw)}")
        return int.from_bytes(raw, "big")
    parts = mac.strip().replace("-", ":").split(":")
    if len(parts) != 6:
        raise ValueError(f"not a MAC address: {mac!r}")
    value = 0
    for part in parts:
        octet = int(part, 16)
        if not 0 <= octet <= 255:
            raise ValueError(f"not a MAC address: {mac!r}")
        value = (value << 8) | octet
    return value


def mac_to_str(mac: int) -> str:
    """48-bit integer -> lower-case ``aa:bb:cc:dd:ee:ff``."""
    return ":".join(f"{(int(mac) >> shift) & 0xFF:02x}" for shift in range(40, -8, -8))


@dataclass(frozen=True)
class CSIBatch:
    """A run of received CSI packets that share one subcarrier layout.

    Per-packet columns (length ``n``):
      time (float64, seconds; receive time: pcap/host clock, or device clock
      when that is all the source has), mac (uint64, 48-bit source MAC), seq
      (int64, 802.11 sequence number or device counter, -1 unknown), rssi and
      noise (float32 dBm, NaN unknown), channel (int16, primary/center channel
      number, -1 unknown), bandwidth_mhz (int16), core and stream (int16: Nexmon
      core / spatial-stream index, -1 unknown), packet_index (int64, position
      among the packets the reader accepted).

    ``extra`` holds format-specific per-packet columns (ESP32 ``sig_mode``,
    ``first_word_invalid``, Nexmon ``chanspec``, Intel ``agc``...), each of
    length ``n``.
    """

    format: str
    chip: str
    subcarriers: np.ndarray  # int16[subcarrier], natural order
    csi: np.ndarray  # complex64[packet, rx, tx, subcarrier]
    invalid: np.ndarray  # bool[packet, subcarrier]
    time: np.ndarray
    mac: np.ndarray
    seq: np.ndarray
    rssi: np.ndarray
    noise: np.ndarray
    channel: np.ndarray
    bandwidth_mhz: np.ndarray
    core: np.ndarray
    stream: np.ndarray
    packet_index: np.ndarray
    extra: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.csi.shape[0]
        if self.csi.ndim != 4:
            raise ValueError(f"csi must be [packet, rx, tx, subcarrier], got shape {self.csi.shape}")
        if self.csi.shape[3] != self.subcarriers.shape[0]:
            raise ValueError("csi subcarrier axis and subcarriers vector differ in length")
        if self.invalid.shape != (n, self.csi.shape[3]):
            raise ValueError(f"invalid must be [packet, subcarrier] = {(n, self.csi.shape[3])}, got {self.invalid.shape}")
        for name in (*_FLOAT_COLUMNS, "mac", *_INT_COLUMNS, "packet_index", *self.extra):
            column = self.extra[name] if name in self.extra else getattr(self, name)
            if column.shape[0] != n:
                raise ValueError(f"column {name!r} has {column.shape[0]} rows, csi has {n}")

    def __len__(self) -> int:
        return int(self.csi.shape[0])

    @property
    def n_rx(self) -> int:
        return int(self.csi.shape[1])

    @property
    def n_tx(self) -> int:
        return int(self.csi.shape[2])

    @property
    def layout_key(self) -> tuple:
        """Two batches can be concatenated iff their layout keys are equal."""
        return (self.format, self.chip, self.csi.shape[1:], self.subcarriers.tobytes())

    def macs(self) -> list[str]:
        return [mac_to_str(m) for m in np.unique(self.mac)]

    def select(self, rows: np.ndarray | slice) -> "CSIBatch":
        """Rows by boolean mask, index array or slice; columns stay aligned."""
        def take(a: np.ndarray) -> np.ndarray:
            return a[rows]

        return replace(
            self,
            csi=take(self.csi),
            invalid=take(self.invalid),
            time=take(self.time),
            mac=take(self.mac),
            seq=take(self.seq),
            rssi=take(self.rssi),
            noise=take(self.noise),
            channel=take(self.channel),
            bandwidth_mhz=take(self.bandwidth_mhz),
            core=take(self.core),
            stream=take(self.stream),
            packet_index=take(self.packet_index),
            extra={k: take(v) for k, v in self.extra.items()},
        )

    def valid_csi(self) -> np.ndarray:
        """csi with invalid bins set to 0 (a copy)."""
        out = self.csi.copy()
        out[np.broadcast_to(self.invalid[:, None, None, :], out.shape)] = 0
        return out


def make_batch(
    *,
    format: str,
    chip: str,
    subcarriers: Sequence[int] | np.ndarray,
    csi: np.ndarray,
    invalid: np.ndarray | None = None,
    time: Iterable[float] | np.ndarray | None = None,
    mac: Iterable[int] | np.ndarray | None = None,
    seq: Iterable[int] | np.ndarray | None = None,
    rssi: Iterable[float] | np.ndarray | None = None,
    noise: Iterable[float] | np.ndarray | None = None,
    channel: Iterable[int] | np.ndarray | None = None,
    bandwidth_mhz: Iterable[int] | np.ndarray | None = None,
    core: Iterable[int] | np.ndarray | None = None,
    stream: Iterable[int] | np.ndarray | None = None,
    packet_index: Iterable[int] | np.ndarray | None = None,
    extra: Mapping[str, np.ndarray] | None = None,
) -> CSIBatch:
    """Build a batch, filling unknown columns with NaN / -1 and fixing dtypes."""
    csi = np.asarray(csi, dtype=np.complex64)
    if csi.ndim == 2:  # [packet, subcarrier] from single-antenna sources
        csi = csi[:, None, None, :]
    n = csi.shape[0]

    def col(values, dtype, fill) -> np.ndarray:
        if values is None:
            return np.full(n, fill, dtype=dtype)
        return np.asarray(values, dtype=dtype).reshape(n)

    sc = np.asarray(subcarriers, dtype=np.int16)
    return CSIBatch(
        format=format,
        chip=chip,
        subcarriers=sc,
        csi=csi,
        invalid=(np.zeros((n, sc.shape[0]), dtype=bool) if invalid is None
                 else np.broadcast_to(np.asarray(invalid, dtype=bool), (n, sc.shape[0])).copy()),
        time=col(time, np.float64, np.nan),
        mac=col(mac, np.uint64, 0),
        seq=col(seq, np.int64, UNKNOWN),
        rssi=col(rssi, np.float32, np.nan),
        noise=col(noise, np.float32, np.nan),
        channel=col(channel, np.int16, UNKNOWN),
        bandwidth_mhz=col(bandwidth_mhz, np.int16, UNKNOWN),
        core=col(core, np.int16, UNKNOWN),
        stream=col(stream, np.int16, UNKNOWN),
        packet_index=col(packet_index, np.int64, 0) if packet_index is not None else np.arange(n, dtype=np.int64),
        extra={k: np.asarray(v).reshape(n, *np.asarray(v).shape[1:]) for k, v in (extra or {}).items()},
    )


def concat(batches: Sequence[CSIBatch]) -> CSIBatch:
    """Concatenate batches of one layout (raises ValueError otherwise)."""
    if not batches:
        raise ValueError("nothing to concatenate")
    first = batches[0]
    if len(batches) == 1:
        return first
    for b in batches[1:]:
        if b.layout_key != first.layout_key:
            raise ValueError("cannot concatenate CSI batches with different layouts")
        if set(b.extra) != set(first.extra):
            raise ValueError("cannot concatenate CSI batches with different extra columns")

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(b, name) for b in batches])

    return replace(
        first,
        csi=cat("csi"),
        invalid=cat("invalid"),
        time=cat("time"),
        mac=cat("mac"),
        seq=cat("seq"),
        rssi=cat("rssi"),
        noise=cat("noise"),
        channel=cat("channel"),
        bandwidth_mhz=cat("bandwidth_mhz"),
        core=cat("core"),
        stream=cat("stream"),
        packet_index=cat("packet_index"),
        extra={k: np.concatenate([b.extra[k] for b in batches]) for k in first.extra},
    )


def group_by_layout(batches: Iterable[CSIBatch]) -> list[CSIBatch]:
    """Merge batches that share a layout, in order of first appearance."""
    groups: dict[tuple, list[CSIBatch]] = {}
    for b in batches:
        if len(b):
            groups.setdefault(b.layout_key + (tuple(sorted(b.extra)),), []).append(b)
    return [concat(g) for g in groups.values()]
