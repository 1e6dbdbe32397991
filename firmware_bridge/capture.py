"""What a file reader returns: the batches it could read and what it had to skip."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgecsi.errors import BadPackets
from edgecsi.frames import CSIBatch


@dataclass
class Capture:
    """A whole capture file read into one batch per subcarrier layout.

    ``batches`` are in order of first appearance; ``packet_index`` inside each
    batch gives the position among accepted packets. ``bad`` counts skipped
    records by reason.
    """

    format: str
    source: str
    batches: list[CSIBatch]
    bad: BadPackets = field(default_factory=BadPackets)

    @property
    def n_packets(self) -> int:
        return sum(len(b) for b in self.batches)

    @property
    def batch(self) -> CSIBatch:
        """The single batch of a one-layout capture (the common case)."""
        if len(self.batches) != 1:
            shapes = ", ".join(f"{len(b)} x {b.csi.shape[1:]}" for b in self.batches) or "no packets"
            raise ValueError(f"{self.source}: capture has {len(self.batches)} layouts ({shapes}); use .batches")
        return self.batches[0]

    def in_order(self) -> list[tuple[CSIBatch, int]]:
        """(batch, row) pairs in original packet order, for replay."""
        pairs = [(b, i, int(b.packet_index[i])) for b in self.batches for i in range(len(b))]
        pairs.sort(key=lambda t: t[2])
        return [(b, i) for b, i, _ in pairs]

    def times(self) -> np.ndarray:
        if not self.batches:
            return np.zeros(0)
        order = np.concatenate([b.packet_index for b in self.batches])
        t = np.concatenate([b.time for b in self.batches])
        return t[np.argsort(order, kind="stable")]
