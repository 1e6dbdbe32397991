"""Intel 5300 HAR: 11 activities x 5 persons x 2 rooms (bedroom, meeting room), Xiaoqiang Zhu's set.

File (read in place): har_2env.npz with csi_int8 int8 (2101, 3 rx, 30 subcarriers, 200 packets, re/im)
and scale float32 (2101, 200) per packet; the processed complex CSI is exactly
``(re + 1j*im) * scale[:, None, None, :]`` (the get_scaled_csi output of the source .mat files).
Each sample is 200 packets at 20 packets/s (10 s).

Returned WindowSet:
  x        representation="amplitude" (default): float32[window, time=200, feature=90],
           feature = rx * 30 + subcarrier, value |CSI|
           representation="iq": float32[window, 200, 180], feature = part * 90 + rx * 30 + subcarrier,
           part 0 = real, 1 = imaginary
           representation="conj": float32[window, 200, 120], feature = part * 60 + pair * 30 + subcarrier:
           real / imaginary of csi[rx a] * conj(csi[rx a+1]) for the adjacent pairs (0, 1), (1, 2) -- the
           inter-antenna phase, free of the per-packet phase offsets the chains share (the edge
           pipeline's ``conj`` feature, same layout)
           representation="amplitude+conj": float32[window, 200, 210], the amplitude block (90) then the
           conj block (120): the edge pipeline's ``features=("amplitude", "conj")``
  y        int64 activity index into LABELS (source activity id - 1)
  domains  "room": "bedroom" | "meetingroom"; "person": abid, hhj, zly, zxq, zyy; "repetition": int;
           "file": source .mat path (one per window, for tracing)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecsi.edge.pipeline.conjugate import conjugate_products
from edgecsi.training.datasets.base import WindowSet

NAME = "intel5300_har_2env_5person"
FILE = "har_2env.npz"
LABELS = ["lying", "sitting", "running", "walking", "pick up", "wave hand", "jump", "squat",
          "sit down", "stand up", "fall down"]
_CHUNK = 256   # samples converted at a time, bounds the float temporaries (~50 MB)
REPRESENTATIONS = {"amplitude": "x[window, packet, rx*30+subcarrier] |CSI|",
                   "iq": "x[window, packet, part*90+rx*30+subcarrier], part 0=real 1=imag",
                   "conj": "x[window, packet, part*60+pair*30+subcarrier], csi[rx a]*conj(csi[rx a+1]), part 0=real 1=imag",
                   "amplitude+conj": "x[window, packet, 0:90] |CSI| (rx*30+subcarrier), "
                                     "x[window, packet, 90:210] conj (part*60+pair*30+subcarrier)"}


def load(directory: Path, *, representation: str = "amplitude",
         rooms: tuple[str, ...] | list[str] | None = None) -> WindowSet:
    """Load the set; ``rooms`` restricts to some of ("bedroom", "meetingroom")."""
    path = Path(directory) / FILE
    if representation not in REPRESENTATIONS:
        raise ValueError(f"{NAME}: representation must be one of {sorted(REPRESENTATIONS)}, not {representation!r}")
    with np.load(path) as z:
        env_names = [str(s) for s in z["env_names"]]
        person_names = [str(s) for s in z["person_names"]]
        activity_names = [str(s) for s in z["activity_names"]]
        if activity_names[1:] != LABELS:
            raise ValueError(f"{path}: activity_names {activity_names} differ from {LABELS}")
        room = np.array(env_names)[z["env"]]
        keep = np.ones(len(room), bool) if rooms is None else np.isin(room, list(rooms))
        csi = z["csi_int8"]          # (n, rx, sub, packet, re/im); decompressed once, ~76 MB
        scale = z["scale"]
        x = _features(csi, scale, keep, representation)
        y = z["activity"][keep].astype(np.int64) - 1
        domains = {
            "room": room[keep],
            "person": np.array(person_names)[z["person"][keep]],
            "repetition": z["repetition"][keep].astype(np.int64),
            "file": z["file_names"][keep].astype(str),
        }
    return WindowSet(
        name=NAME, task="activity", x=x, y=y, labels=list(LABELS), domains=domains,
        meta={
            "source": str(path), "representation": representation,
            "features": REPRESENTATIONS[representation],
            "sampling_rate_hz": 20.0, "window_packets": 200,
            "hardware": "Intel 5300 NIC TX and RX (PCs), 3 rx antennas, 30 subcarrier groups",
            "sensing": "device-free",
            "license": "none stated in the source repo: internal evaluation only, ask the author to redistribute",
            "cite": "S. Hu et al., Proto-CSNet, MSN 2024, doi:10.1109/MSN63567.2024.00018",
            "published": {"note": "Proto-CSNet accuracy table not retrieved",
                          "own_sanity_rf300": {"within_bedroom_5fold": 0.693, "within_meetingroom_5fold": 0.524,
                                               "bedroom->meetingroom": 0.214, "meetingroom->bedroom": 0.274}},
        },
    )


def _features(csi: np.ndarray, scale: np.ndarray, keep: np.ndarray, representation: str) -> np.ndarray:
    """int8 (n, rx, sub, packet, 2) + scale (n, packet) -> float32 [n, packet, feature], in chunks."""
    rows = np.flatnonzero(keep)
    n_rx, n_sub, n_pkt = csi.shape[1:4]
    widths = {"amplitude": n_rx * n_sub, "iq": 2 * n_rx * n_sub, "conj": 2 * (n_rx - 1) * n_sub}
    width = sum(widths[k] for k in representation.split("+"))
    out = np.empty((len(rows), n_pkt, width), np.float32)
    for start in range(0, len(rows), _CHUNK):
        sel = rows[start:start + _CHUNK]
        c = len(sel)
        part = csi[sel].astype(np.float32)                                   # (c, rx, sub, packet, 2)
        s = scale[sel][:, None, None, :]
        blocks = []
        for kind in representation.split("+"):
            if kind == "amplitude":
                feat = np.hypot(part[..., 0], part[..., 1]) * s                  # (c, rx, sub, packet)
                blocks.append(feat.transpose(0, 3, 1, 2).reshape(c, n_pkt, -1))
            elif kind == "iq":
                feat = (part * s[..., None]).transpose(0, 3, 4, 1, 2)            # (c, packet, 2, rx, sub)
                blocks.append(feat.reshape(c, n_pkt, -1))
            else:
                h = (part[..., 0] + 1j * part[..., 1]) * s                       # (c, rx, sub, packet)
                h = h.transpose(0, 3, 1, 2).reshape(c * n_pkt, n_rx, 1, n_sub)   # [packet, rx, tx, sub]
                prod = conjugate_products(h).reshape(c, n_pkt, -1)               # [.., pair * sub]
                blocks.append(np.concatenate([prod.real, prod.imag], axis=2))
        out[start:start + c] = blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=2)
    return out
