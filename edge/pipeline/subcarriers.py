"""Which subcarrier bins a pipeline keeps, and pulling them out of a batch.

The kept set is fixed per pipeline (the model's feature count depends on it):
bins that are nulls/guards or usually garbage are dropped once, at fit time.
A kept bin that is invalid in one particular packet (an ESP32 first-word
glitch, a Nexmon status word) is filled per packet by linear interpolation of
the complex value over subcarrier index from its valid neighbours, so every
packet yields the same feature vector.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from edgecsi.firmware_bridge.ofdm import NFFT_BY_BW, pilot_mask
from edgecsi.frames import CSIBatch

_BW_BY_NFFT = {nfft: bw for bw, nfft in NFFT_BY_BW.items()}


def batch_bandwidth(batch: CSIBatch) -> int | None:
    """The batch's bandwidth in MHz: the most common known column value, else from a full FFT layout."""
    bw = batch.bandwidth_mhz[batch.bandwidth_mhz > 0]
    if bw.size:
        values, counts = np.unique(bw, return_counts=True)
        return int(values[np.argmax(counts)])
    return _BW_BY_NFFT.get(int(batch.subcarriers.shape[0]))


def choose_subcarriers(batches: Iterable[CSIBatch], *, max_invalid_fraction: float,
                       drop_pilots: bool, candidates: Iterable[int] | None = None) -> tuple[int, ...]:
    """Kept subcarrier indices (ascending) for a set of same-layout batches.

    A bin is kept when it is invalid in at most ``max_invalid_fraction`` of the
    packets (and, with ``drop_pilots``, is not a pilot of the batches'
    bandwidth). ``candidates`` restricts the choice to a given list.
    """
    batches = [b for b in batches if len(b)]
    if not batches:
        raise ValueError("cannot choose subcarriers from no packets")
    sc = batches[0].subcarriers
    invalid = np.zeros(sc.shape[0], dtype=np.int64)
    total = 0
    for b in batches:
        if not np.array_equal(b.subcarriers, sc):
            raise ValueError("training batches have different subcarrier layouts; fit one pipeline per layout")
        invalid += b.invalid.sum(axis=0)
        total += len(b)
    keep = invalid <= max_invalid_fraction * total
    if candidates is not None:
        keep &= np.isin(sc, np.asarray(list(candidates), dtype=np.int32))
    if drop_pilots:
        bw = batch_bandwidth(batches[0])
        if bw is None:
            raise ValueError("drop_pilots needs the bandwidth: the batch has no bandwidth_mhz column and no full FFT layout")
        keep &= ~pilot_mask(sc, bw)
    if not keep.any():
        raise ValueError("no subcarrier is valid often enough to keep")
    return tuple(int(v) for v in sc[keep])


def kept_columns(batch_subcarriers: np.ndarray, kept: tuple[int, ...]) -> np.ndarray:
    """Column index into the batch's subcarrier axis for each kept subcarrier (ValueError if one is missing)."""
    sc = np.asarray(batch_subcarriers, dtype=np.int32)
    want = np.asarray(kept, dtype=np.int32)
    pos = np.searchsorted(sc, want)
    pos_clipped = np.minimum(pos, sc.shape[0] - 1)
    missing = sc[pos_clipped] != want
    if missing.any():
        raise ValueError(f"batch lacks subcarriers the pipeline keeps: {want[missing][:8].tolist()}")
    return pos_clipped


def select_subcarriers(batch: CSIBatch, columns: np.ndarray, kept: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``(csi[packet, rx, tx, kept] complex128, ok[packet])`` with per-packet invalid bins filled.

    ``ok`` is False for packets with no valid kept bin or non-finite values;
    their rows are left as they are and must be dropped by the caller.
    """
    csi = batch.csi[..., columns].astype(np.complex128)
    invalid = batch.invalid[:, columns] | ~np.isfinite(csi).all(axis=(1, 2))
    ok = ~invalid.all(axis=1)
    rows = np.flatnonzero(invalid.any(axis=1) & ok)
    if rows.size:
        k = np.asarray(kept, dtype=np.float64)
        for i in rows:  # rare per packet on most chips; a loop keeps the fill obvious
            good = ~invalid[i]
            bad = ~good
            block = csi[i]  # [rx, tx, kept]
            for r in range(block.shape[0]):
                for t in range(block.shape[1]):
                    v = block[r, t]
                    v[bad] = (np.interp(k[bad], k[good], v[good].real)
                              + 1j * np.interp(k[bad], k[good], v[good].imag))
    return csi, ok
