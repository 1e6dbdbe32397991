"""Per-packet feature vectors: one CSI packet -> ``x[feature]`` float64.

Feature blocks appear in the order of ``PipelineConfig.features``; inside a
block the index runs C-order over the axes named below (subcarrier fastest):

- ``amplitude``: ``[rx, tx, subcarrier]``, |H| times the packet's AGC scale.
- ``phase``: ``[rx, tx, subcarrier]``, sanitised phase (see ``phase.py``), radians.
- ``conj``: ``[part, pair, tx, subcarrier]``, part 0 = real, 1 = imaginary of
  ``H_a * conj(H_b)`` (AGC scale squared) for adjacent receive-antenna pairs.

So an Intel-5300-like 3 rx x 1 tx x 30 subcarrier stream with
``features=("amplitude",)`` gives 90 features, feature ``rx*30 + sc``.
``feature_names()`` spells the layout out.
"""

from __future__ import annotations

import numpy as np

from edgecsi.edge.pipeline.config import PipelineConfig
from edgecsi.edge.pipeline.conjugate import antenna_pairs, conjugate_products
from edgecsi.edge.pipeline.gain import agc_scale
from edgecsi.edge.pipeline.phase import detrend_matrix, sanitize_phase
from edgecsi.edge.pipeline.subcarriers import kept_columns, select_subcarriers
from edgecsi.frames import CSIBatch


class PacketFeatures:
    """Callable turning a single-stream batch into ``(time[packet], x[packet, feature])``.

    Packets that cannot give a feature vector (no valid kept bin, non-finite
    CSI or time, unknown RSSI with ``agc='rssi'``) are left out; ``dropped``
    counts them.
    """

    def __init__(self, config: PipelineConfig) -> None:
        if config.subcarriers is None or config.n_rx is None or config.n_tx is None:
            raise ValueError("the pipeline layout (subcarriers, n_rx, n_tx) is not resolved; fit the pipeline first")
        if "conj" in config.features and config.n_rx < 2:
            raise ValueError("feature 'conj' needs at least two receive antennas")
        self.config = config
        self.kept = tuple(config.subcarriers)
        self.n_rx, self.n_tx, self.n_sc = config.n_rx, config.n_tx, len(self.kept)
        self._detrend = detrend_matrix(np.asarray(self.kept)) if "phase" in config.features else None
        self._columns: dict[bytes, np.ndarray] = {}
        self.dropped = 0

    @property
    def n_features(self) -> int:
        per_chain = self.n_rx * self.n_tx * self.n_sc
        sizes = {"amplitude": per_chain, "phase": per_chain, "conj": 2 * (self.n_rx - 1) * self.n_tx * self.n_sc}
        return sum(sizes[k] for k in self.config.features)

    def feature_names(self) -> list[str]:
        names: list[str] = []
        for kind in self.config.features:
            if kind in ("amplitude", "phase"):
                names += [f"{kind}[rx{r},tx{t},sc{s}]"
                          for r in range(self.n_rx) for t in range(self.n_tx) for s in self.kept]
            else:
                names += [f"conj.{part}[rx{a}*rx{b},tx{t},sc{s}]" for part in ("re", "im")
                          for a, b in antenna_pairs(self.n_rx) for t in range(self.n_tx) for s in self.kept]
        return names

    def _columns_for(self, batch: CSIBatch) -> np.ndarray:
        key = batch.subcarriers.tobytes()
        cols = self._columns.get(key)
        if cols is None:
            cols = self._columns[key] = kept_columns(batch.subcarriers, self.kept)
        return cols

    def __call__(self, batch: CSIBatch) -> tuple[np.ndarray, np.ndarray]:
        n = len(batch)
        if n == 0:
            return np.zeros(0), np.zeros((0, self.n_features))
        if (batch.n_rx, batch.n_tx) != (self.n_rx, self.n_tx):
            raise ValueError(f"batch has {batch.n_rx} rx x {batch.n_tx} tx, the pipeline was built for "
                             f"{self.n_rx} rx x {self.n_tx} tx")
        csi, ok = select_subcarriers(batch, self._columns_for(batch), self.kept)
        scale = agc_scale(csi, self.config.agc, batch.rssi)
        ok &= np.isfinite(scale) & np.isfinite(batch.time)
        if not ok.all():
            self.dropped += int(n - ok.sum())
            csi, scale = csi[ok], scale[ok]
        time = batch.time[ok] if not ok.all() else batch.time
        m = csi.shape[0]
        blocks = []
        for kind in self.config.features:
            if kind == "amplitude":
                blocks.append((np.abs(csi) * scale[:, None, None, None]).reshape(m, -1))
            elif kind == "phase":
                blocks.append(sanitize_phase(csi, np.asarray(self.kept), self._detrend).reshape(m, -1))
            else:
                prod = conjugate_products(csi) * (scale * scale)[:, None, None, None]
                blocks.append(np.concatenate([prod.real.reshape(m, -1), prod.imag.reshape(m, -1)], axis=1))
        x = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=1)
        return np.asarray(time, dtype=np.float64), x
