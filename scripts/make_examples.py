"""Build examples/esp32s2_har/ from the ESP32-S2 temporal HAR set in ../shared (ODC-By 1.0).

Keeps days D1 (training), D2 (+10 min) and D4 (+90 min): per-packet amplitudes of the 56
HT-LTF subcarriers, quantized to 0.5 (the set's amplitudes lie in 12..76, so uint8 holds
them), with the per-packet activity label and the sequence each packet belongs to.
Run once by a developer; the output is committed, the main job reads only the output.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parents[1].parent / "shared/datasets/esp32s2_temporal_har_geotecinit/02_LABELLED"
OUT = Path(__file__).resolve().parents[1] / "examples/esp32s2_har/amplitudes.npz"
STEP = 0.5


def main() -> None:
    amps, labels, days, seqs = [], [], [], []
    for day in ("D1", "D2", "D4"):
        for xf in sorted((SRC / day).glob("*-x.npy")):
            seq = xf.name[: -len("-x.npy")]
            x = np.load(xf).T  # [packet, subcarrier]
            y = np.load(xf.with_name(f"{seq}-y.npy"), allow_pickle=True).reshape(-1).astype(str)
            if x.max() >= 255 * STEP:
                sys.exit(f"{xf}: amplitude {x.max()} does not fit the uint8 grid")
            amps.append(np.round(x / STEP).astype(np.uint8))
            labels.append(y)
            days += [day] * len(y)
            seqs += [seq] * len(y)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, amplitude_q=np.concatenate(amps), step=np.float32(STEP),
                        label=np.concatenate(labels), day=np.array(days), sequence=np.array(seqs),
                        subcarriers=np.r_[np.arange(-28, 0), np.arange(1, 29)].astype(np.int16))
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e6:.2f} MB, {sum(len(l) for l in labels)} packets)")


if __name__ == "__main__":
    main()
