"""CSUIndoorLoc: Nexmon (Broadcom) CSI fingerprints at 180 reference points on 5 corridors, plus
separately captured test points near (not at) the reference points. DEVICE-BASED: the capturing
device sits at the point. 5 GHz 802.11ac, 20 MHz, 64 FFT bins, one core / one stream.

Files (read in place): csu_ref_first600.npz (first 600 packets of each of the 180 reference captures),
csu_test.npz (all packets of the 166 test captures), location_coords.xlsx (sheets ref_coord_pathK /
test_coord_pathK: location, x_coord, y_coord in metres).

Returned WindowSet, one packet per window:
  x        representation="amplitude" (default): float32[window, 1, 56] |CSI| of the valid subcarriers
           in frequency order -28..-1, +1..+28 (FFT bins 36..63 then 1..28; DC/guard bins dropped)
           representation="iq": float32[window, 1, 112], the 56 I values then the 56 Q values
  y        int64 index into labels = point names: the 180 reference names, then names that only
           occur as test points ("A233_3"). A test point has the label of the reference point of the
           same name (its nearby twin); its own position is in coords.
  coords   float32[window, 2] (x, y) metres from location_coords.xlsx; NaN for the two test points
           the sheet lacks (242_1, A233_3)
  domains  "split": "ref" | "test"; "path": corridor 1..5 (each its own AP/channel); "room": the room
           part of the name ("204", "A233"); "point": name; "capture": "<split>/<name>" (one pcap);
           "date": capture day (UTC, YYYY-MM-DD)
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np

from edgecsi.training.datasets.base import WindowSet

NAME = "nexmon_csu_indoorloc_180rp"
FILES = {"ref": "csu_ref_first600.npz", "test": "csu_test.npz"}
COORDS_XLSX = "location_coords.xlsx"
# Valid data+pilot bins of a 20 MHz 64-point FFT in subcarrier order -28..-1, +1..+28.
VALID_BINS = np.concatenate([np.arange(36, 64), np.arange(1, 29)])


def load(directory: Path, *, splits: tuple[str, ...] | list[str] = ("ref", "test"),
         paths: tuple[int, ...] | list[int] | None = None, representation: str = "amplitude",
         infer_path: bool = True, require_coords: bool = False) -> WindowSet:
    """Load reference and/or test packets, optionally only some corridors (``paths``).

    infer_path: two test points are stored with path -1 (unknown); their channel (chanspec) is used
    by exactly one corridor in the reference data, so that corridor is assigned. False keeps -1.
    require_coords: drop the windows without coordinates (test points 242_1 and A233_3, 200 packets),
    for coordinate-regression targets.
    """
    directory = Path(directory)
    if representation not in ("amplitude", "iq"):
        raise ValueError(f"{NAME}: representation must be 'amplitude' or 'iq', not {representation!r}")
    for s in splits:
        if s not in FILES:
            raise ValueError(f"{NAME}: unknown split {s!r}; have {tuple(FILES)}")
    coords_table = read_coordinates(directory / COORDS_XLSX)
    with np.load(directory / FILES["ref"]) as z:
        ref_names = [str(s) for s in z["loc_names"]]
        chan_to_path = _channel_paths(z["chanspec"], z["path"]) if infer_path else {}
    parts = [_read_split(directory, s, representation, coords_table, chan_to_path) for s in splits]

    names = np.concatenate([p["point"] for p in parts])
    labels = ref_names + sorted(set(names.tolist()) - set(ref_names))
    index = {n: i for i, n in enumerate(labels)}
    keep = np.ones(len(names), bool)
    path_col = np.concatenate([p["path"] for p in parts])
    if paths is not None:
        keep &= np.isin(path_col, list(paths))
    split_col = np.concatenate([np.full(len(p["point"]), s) for p, s in zip(parts, splits)])
    domains = {
        "split": split_col,
        "path": path_col,
        "room": np.array([n.rsplit("_", 1)[0] for n in names]),
        "point": names,
        "capture": np.char.add(np.char.add(split_col, "/"), names),
        "date": np.concatenate([p["date"] for p in parts]),
    }
    ws = WindowSet(
        name=NAME, task="localization",
        x=np.concatenate([p["x"] for p in parts]),
        y=np.array([index[n] for n in names.tolist()], dtype=np.int64),
        labels=labels, domains=domains,
        coords=np.concatenate([p["coords"] for p in parts]),
        meta={
            "source": str(directory), "representation": representation,
            "features": ("x[window, 1, 56 |CSI| subcarriers -28..-1,+1..+28]" if representation == "amplitude"
                         else "x[window, 1, 56 I then 56 Q, subcarriers -28..-1,+1..+28]"),
            "subcarriers": list(range(-28, 0)) + list(range(1, 29)),
            "hardware": "Nexmon CSI (Broadcom, chip 0x0065), 5 GHz 802.11ac 20 MHz, 1 core 1 stream",
            "sensing": "device-based",
            "n_reference_points": len(ref_names),
            "license": "BSD-3-Clause, Copyright (c) 2022 EPIC-CSU",
            "cite": "L. Wang, S. Pasricha, A Framework for CSI-Based Indoor Localization with 1D CNNs, IPIN 2022",
            "published": {"note": "IPIN 2022 error figures not retrieved",
                          "own_sanity_rf200_ref->test_rp_accuracy": "1-15 % (mean error 6-13 m)",
                          "own_sanity_within_ref_first400->last200_path1": 0.62},
            "path_inferred": {k: v for p in parts for k, v in p["inferred"].items()},
        },
    )
    if require_coords:
        keep &= np.isfinite(ws.coords).all(axis=1)
    return ws if keep.all() else ws.subset(keep)


def read_coordinates(xlsx: Path) -> dict[tuple[str, str], tuple[int, float, float]]:
    """(split, point name) -> (path, x, y) metres from the ref_coord_pathK / test_coord_pathK sheets."""
    import openpyxl   # training extra; only needed here

    table: dict[tuple[str, str], tuple[int, float, float]] = {}
    wb = openpyxl.load_workbook(xlsx, read_only=True, data_only=True)
    try:
        for sheet in wb.worksheets:
            title = sheet.title
            if "_coord_path" not in title:
                continue
            split, path = title.split("_coord_path")
            for line, row in enumerate(sheet.iter_rows(min_row=2, max_col=3, values_only=True), start=2):
                name, x, y = (tuple(row) + (None, None, None))[:3]
                if name is None:
                    continue
                if not isinstance(x, (int, float)) or not isinstance(y, (int, float)):
                    raise ValueError(f"{xlsx}: sheet {title} line {line}: coordinates {x!r}, {y!r} are not numbers")
                key = (split, str(name))
                if key in table:
                    raise ValueError(f"{xlsx}: sheet {title} line {line}: {name} listed twice")
                table[key] = (int(path), float(x), float(y))
    finally:
        wb.close()
    return table


def _channel_paths(chanspec: np.ndarray, path: np.ndarray) -> dict[int, int]:
    """chanspec -> corridor, for the chanspecs used by exactly one corridor in the reference data."""
    pairs = np.unique(np.stack([chanspec.astype(np.int64), path.astype(np.int64)]), axis=1)
    out: dict[int, int] = {}
    for c in np.unique(pairs[0]):
        owners = pairs[1][pairs[0] == c]
        if len(owners) == 1:
            out[int(c)] = int(owners[0])
    return out


def _read_split(directory: Path, split: str, representation: str,
                coords_table: dict, chan_to_path: dict[int, int]) -> dict[str, np.ndarray]:
    with np.load(directory / FILES[split]) as z:
        iq = z["csi_iq_int16"][:, VALID_BINS, :].astype(np.float32)          # [packet, 56, (I, Q)]
        names = np.asarray(z["loc_names"]).astype(str)[z["loc_idx"]]
        path = z["path"].astype(np.int64)
        chanspec = z["chanspec"].astype(np.int64)
        t_unix = z["t_unix"]
    if representation == "amplitude":
        x = np.hypot(iq[..., 0], iq[..., 1])[:, None, :]
    else:
        x = np.concatenate([iq[..., 0], iq[..., 1]], axis=1)[:, None, :]
    unknown = path < 0
    inferred: dict[str, int] = {}
    for c in np.unique(chanspec[unknown]):
        if int(c) in chan_to_path:
            hit = unknown & (chanspec == c)
            path[hit] = chan_to_path[int(c)]
            inferred.update({f"{split}/{n}": chan_to_path[int(c)] for n in np.unique(names[hit])})
    coords = np.full((len(names), 2), np.nan, np.float32)
    for name in np.unique(names):
        entry = coords_table.get((split, str(name)))
        if entry is not None:
            coords[names == name] = entry[1:]
    # One date per capture is enough; captures last seconds.
    first = {n: i for i, n in reversed(list(enumerate(names.tolist())))}
    day_of = {n: _dt.datetime.fromtimestamp(float(t_unix[i]), _dt.timezone.utc).strftime("%Y-%m-%d")
              for n, i in first.items()}
    return {"x": x, "point": names, "path": path, "coords": coords, "inferred": inferred,
            "date": np.array([day_of[n] for n in names.tolist()])}
