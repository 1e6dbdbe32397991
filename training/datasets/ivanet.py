"""iVANET-PolyU CSI_IPS_2020-21: Intel 5300 CSI fingerprints of 8 receiver positions (20 cm grid) in one
room, collected over months -- DEVICE-BASED fingerprinting with cross-day drift.

File (read in place): ivanet_days02-24.npz, one row per packet (only Ntx == 2 records, first 120 kept
packets of each capture file, collection days 2..24; days 25..28 are held out of this copy), with raw
unscaled CSI-Tool values csi_raw int8 [packet, tx=2, rx=3, subcarrier=30, (re, im)] plus rssi, agc,
noise. datasetDetails_perCollectionPeriod.csv describes people/door state per collection period.

Returned WindowSet, one packet per window:
  x        representation="amplitude" (default): float32[window, 1, 180] |H| of get_scaled_csi
           (spec csi-formats.md 4.4), feature = tx * 90 + rx * 30 + subcarrier
           representation="iq": float32[window, 1, 360], real block (180) then imaginary block (180)
           representation="raw_amplitude": float32[window, 1, 180] |csi_raw| without scaling
  y        int64 position index into LABELS ("l01".."l08")
  domains  "day": 2..24 (dDD); "period": 1..8 within the day (pPP); "session": "d02_p02" (one period =
           one pass over all 8 positions, 15-20 min); "file": capture file index; "people", "obstructions":
           conditions of the period from the details CSV ("" where the CSV has no row)
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edgecsi.firmware_bridge.formats import intel5300

from edgecsi.training.datasets.base import WindowSet

NAME = "ivanet_csi_ips_2020_21"
FILE = "ivanet_days02-24.npz"
DETAILS_CSV = "datasetDetails_perCollectionPeriod.csv"
LABELS = [f"l{i:02d}" for i in range(1, 9)]
_CHUNK = 16384

PUBLISHED = {
    "protocol": "Dataset A: train d02-d18, valid d19-d20, test d21-d23 (B and C need days 25..28, absent here)",
    "abstract": {"dnn_gain_over_trrs_svm_gauss": "up to 10 %", "ivector_injection_accuracy": [0.7547, 0.8062]},
    "own_sanity_rf200_single_packet": {"C_d25+d26->d27+d28": 0.595, "d02..d18->d25..d28": 0.552},
}


def load(directory: Path, *, representation: str = "amplitude", skip_first: int = 0,
         days: tuple[int, ...] | list[int] | None = None) -> WindowSet:
    """Load packets as fingerprints.

    skip_first  drop the first packets of every capture file (the authors skip 4 records,
                startsample = 5); this copy keeps packets 0..119 of each file.
    days        restrict to some collection days (2..24).
    """
    directory = Path(directory)
    path = directory / FILE
    if representation not in ("amplitude", "iq", "raw_amplitude"):
        raise ValueError(f"{NAME}: representation must be 'amplitude', 'iq' or 'raw_amplitude'")
    with np.load(path) as z:
        day = z["day"].astype(np.int64)
        period = z["period"].astype(np.int64)
        pkt = z["pkt"]
        keep = pkt >= skip_first
        if days is not None:
            keep &= np.isin(day, list(days))
        rows = np.flatnonzero(keep)
        raw = z["csi_raw"]
        if representation == "raw_amplitude":
            x = _raw_amplitude(raw, rows)
        else:
            x = _scaled(raw, z["rssi"], z["agc"], z["noise"], rows, representation)
        y = z["location"][rows].astype(np.int64) - 1
        file_id = z["file_id"][rows].astype(np.int64)
        file_names = [str(f) for f in z["file_names"]]
    day, period = day[rows], period[rows]
    session = np.char.add(np.char.add("d", np.char.zfill(day.astype(str), 2)),
                          np.char.add("_p", np.char.zfill(period.astype(str), 2)))
    details = read_period_details(directory / DETAILS_CSV)
    people = np.array([details.get(s, ("", ""))[0] for s in np.unique(session)])
    obstructions = np.array([details.get(s, ("", ""))[1] for s in np.unique(session)])
    where = np.searchsorted(np.unique(session), session)
    return WindowSet(
        name=NAME, task="localization", x=x, y=y, labels=list(LABELS),
        domains={"day": day, "period": period, "session": session, "file": file_id,
                 "people": people[where], "obstructions": obstructions[where]},
        meta={
            "source": str(path), "representation": representation, "skip_first": skip_first,
            "features": {"amplitude": "x[window, 1, tx*90+rx*30+subcarrier] |scaled CSI|",
                         "iq": "x[window, 1, part*180+tx*90+rx*30+subcarrier] scaled CSI, part 0=real 1=imag",
                         "raw_amplitude": "x[window, 1, tx*90+rx*30+subcarrier] |raw CSI|"}[representation],
            "file_names": file_names,          # indexed by domains["file"]
            "hardware": "Intel 5300 RX (HummingBoard), 3 rx antennas, TP-Link AP 2 tx streams, ping every 0.5 s",
            "sensing": "device-based",
            "geometry": "8 positions on a 20 cm grid, l01-l04 and l05-l08 on two cabinets (exact layout not given)",
            "license": "MIT, Copyright (c) 2024 iVANET-PolyU",
            "cite": "J.M.R. Reyes, I.W.-H. Ho, M.-W. Mak, ESWA 264 (2025) 125802, doi:10.1016/j.eswa.2024.125802",
            "published": PUBLISHED,
        },
    )


def read_period_details(path: Path) -> dict[str, tuple[str, str]]:
    """"dDD_pPP" -> (people in room, obstructions) from datasetDetails_perCollectionPeriod.csv."""
    out: dict[str, tuple[str, str]] = {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader)
        try:
            i_day, i_period = 2, header.index("Period")
            i_people, i_obst = header.index("People in Room"), header.index("Obstructions")
        except ValueError as exc:
            raise ValueError(f"{path}: line 1: unexpected header {header}") from exc
        for row in reader:
            if len(row) <= max(i_people, i_obst) or not row[i_period].startswith("p"):
                continue
            out[f"{row[i_day]}_{row[i_period]}"] = (row[i_people].strip(), row[i_obst].strip())
    return out


def scaled_csi(csi: np.ndarray, rssi: np.ndarray, agc: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Intel 5300 get_scaled_csi on this set's ``csi[packet, tx, rx, subcarrier]`` layout.

    rssi uint8[packet, 3] rssi_a, rssi_b, rssi_c (0 = chain absent); agc uint8[packet]; noise int8[packet].
    The Intel reader's implementation, which takes ``[packet, rx, tx, subcarrier]``.
    """
    swapped = np.swapaxes(csi, 1, 2)
    return np.swapaxes(intel5300.scaled_csi(swapped, rssi, agc, noise), 1, 2)


def _scaled(raw, rssi, agc, noise, rows: np.ndarray, representation: str) -> np.ndarray:
    width = 180 if representation == "amplitude" else 360
    out = np.empty((len(rows), 1, width), np.float32)
    for start in range(0, len(rows), _CHUNK):
        sel = rows[start:start + _CHUNK]
        part = raw[sel].astype(np.float32)                      # [c, tx, rx, sub, 2]
        h = scaled_csi(part[..., 0] + 1j * part[..., 1], rssi[sel], agc[sel], noise[sel]).reshape(len(sel), -1)
        if representation == "amplitude":
            out[start:start + len(sel), 0] = np.abs(h)
        else:
            out[start:start + len(sel), 0] = np.concatenate([h.real, h.imag], axis=1)
    return out


def _raw_amplitude(raw, rows: np.ndarray) -> np.ndarray:
    out = np.empty((len(rows), 1, 180), np.float32)
    for start in range(0, len(rows), _CHUNK):
        part = raw[rows[start:start + _CHUNK]].astype(np.float32)
        out[start:start + len(part), 0] = np.hypot(part[..., 0], part[..., 1]).reshape(len(part), -1)
    return out
