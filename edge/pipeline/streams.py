"""Split a batch into its physical streams: one transmitter MAC x receive core x spatial stream.

The pipeline runs per stream: packets of different transmitters (or of
different Nexmon cores / spatial streams, which arrive as separate packets)
must not be interpolated into each other.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from edgecsi.frames import CSIBatch, mac_to_str


class StreamKey(NamedTuple):
    """``(mac, core, stream)``: 48-bit MAC as int, core and spatial stream (-1 unknown)."""

    mac: int
    core: int
    stream: int

    def __str__(self) -> str:
        return f"{mac_to_str(self.mac)}/core{self.core}/ss{self.stream}"


def stream_keys(batch: CSIBatch) -> np.ndarray:
    """Per-packet stream identity as a structured-free int array ``key[packet, 3]`` (mac, core, stream)."""
    return np.stack([batch.mac.astype(np.int64), batch.core.astype(np.int64), batch.stream.astype(np.int64)], axis=1)


def split_streams(batch: CSIBatch) -> dict[StreamKey, CSIBatch]:
    """``{StreamKey: batch of that stream's packets}``, packets in their original order.

    Keys appear in order of first packet. A batch with one stream is returned
    as is (no copy).
    """
    n = len(batch)
    if n == 0:
        return {}
    keys = stream_keys(batch)
    if (keys == keys[0]).all():
        return {StreamKey(*(int(v) for v in keys[0])): batch}
    uniq, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    out: dict[StreamKey, CSIBatch] = {}
    for u in np.argsort(first, kind="stable"):
        out[StreamKey(*(int(v) for v in uniq[u]))] = batch.select(np.flatnonzero(inverse == u))
    return out


def single_stream_key(batch: CSIBatch) -> StreamKey | None:
    """The batch's one stream key; None for an empty batch; ValueError when it holds several."""
    if len(batch) == 0:
        return None
    keys = stream_keys(batch)
    if not (keys == keys[0]).all():
        n = len(np.unique(keys, axis=0))
        raise ValueError(f"batch holds {n} streams (mac x core x spatial stream); split it with split_streams() first")
    return StreamKey(*(int(v) for v in keys[0]))
