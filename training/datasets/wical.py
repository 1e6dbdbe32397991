"""Wi-CaL: ESP32 device-free crowd counting and crowd (section) localization, 2 rooms x 3 days.

File (read in place): wical_features.npz, hand-crafted features per window (the authors' CSV files,
not raw CSI), arrays prefixed ``small_`` (5.5 x 5.5 m, 0..5 people) or ``medium_`` (11 x 5.5 m,
0..10 people), one set for counting (420 features) and one for sections (356 features).

Returned WindowSet (one task per load, the two tasks have different features):
  task="counting"      x float32[window, 1, 420]: 4 links x 105 (13 subcarriers x [std, min, max, qtl,
                       qtu, avg, iqr], 12 adjacent-subcarrier differences, euclidean distance, rss)
                       y float32 people count (regression, as the paper; labels == []), or with
                       counting_target="classes" int64 count with labels "0".."10"
  task="localization"  x float32[window, 1, 356]: 4 links x 89 (13 x [std, min, max, qtl, qtu, avg],
                       cur1..6, der1..5); y int64 section: 0 = everybody walking all over, 1..4 =
                       crowd gathered in section 1..4
  domains  "room": "small" | "medium"; "day": 1..3 (the authors' sess1..3, numbered per room);
           "file": source CSV, e.g. "small/sess1/P=3" (one recording); "row": row in that CSV
  meta["feature_names"]: one name per feature (``l1_std1`` = link 1, std of subcarrier 1)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgecsi.training.datasets.base import WindowSet

NAME = "esp32_wical_crowd_2rooms_3days"
FILE = "wical_features.npz"
ROOMS = ("small", "medium")
SECTION_LABELS = ["all_over", "section_1", "section_2", "section_3", "section_4"]
MAX_PEOPLE = {"small": 5, "medium": 10}

PUBLISHED = {
    "protocol": "leave-one-session(day)-out CV per room, conventional ML (paper abstract)",
    "counting_median_abs_error": {"small": 0.35, "medium": 0.41},
    "localization_accuracy": {"small": 0.914, "medium": 0.981},
    "repo_notebooks_medium": {"localization_rf": 0.972, "localization_dnn": 0.976,
                              "counting_medae": 0.411, "counting_r2": 0.940},
    "own_sanity_rf200": {"section_acc": {"small": 0.880, "medium": 0.972},
                         "counting_medae": {"small": 0.400, "medium": 0.445}},
}


def load(directory: Path, *, task: str = "counting", rooms: tuple[str, ...] | list[str] = ROOMS,
         counting_target: str = "regression") -> WindowSet:
    """Load one task for the given rooms (both by default)."""
    path = Path(directory) / FILE
    if task not in ("counting", "localization"):
        raise ValueError(f"{NAME}: task must be 'counting' or 'localization', not {task!r}")
    if counting_target not in ("regression", "classes"):
        raise ValueError(f"{NAME}: counting_target must be 'regression' or 'classes'")
    kind = "count" if task == "counting" else "section"
    xs, ys, room_col, day_col, row_col = [], [], [], [], []
    with np.load(path) as z:                      # only the arrays of this task/room are decompressed
        for room in rooms:
            if room not in ROOMS:
                raise ValueError(f"{NAME}: unknown room {room!r}; have {ROOMS}")
            x = z[f"{room}_{kind}_X"]
            xs.append(x.reshape(len(x), 1, -1))
            ys.append(z[f"{room}_{kind}_y"])
            day_col.append(z[f"{room}_{kind}_session"].astype(np.int64))
            row_col.append(z[f"{room}_{kind}_row"].astype(np.int64))
            room_col.append(np.full(len(x), room))
        feature_names = [str(s) for s in z[f"{kind}_feature_names"]]
    y = np.concatenate(ys)
    if task == "localization":
        labels, y = list(SECTION_LABELS), y.astype(np.int64)
    elif counting_target == "classes":
        labels, y = [str(i) for i in range(max(MAX_PEOPLE[r] for r in rooms) + 1)], y.astype(np.int64)
    else:
        labels, y = [], y.astype(np.float32)
    room_all, day_all = np.concatenate(room_col), np.concatenate(day_col)
    prefix = "P=" if task == "counting" else "S="
    files = np.char.add(np.char.add(np.char.add(room_all, "/sess"), day_all.astype(str)),
                        np.char.add("/" + prefix, np.concatenate(ys).astype(str)))
    return WindowSet(
        name=NAME, task=task, x=np.concatenate(xs).astype(np.float32, copy=False), y=y, labels=labels,
        domains={"room": room_all, "day": day_all, "file": files, "row": np.concatenate(row_col)},
        meta={
            "source": str(path), "features": f"x[window, 1, {len(feature_names)} hand-crafted features]",
            "feature_names": feature_names,
            "hardware": "ESP32 links (4 links, 13 subcarriers used)", "sensing": "device-free",
            "room_size_m": {"small": (5.5, 5.5), "medium": (11.0, 5.5)},
            "license": "none stated in the source repo: internal evaluation only",
            "cite": "H. Choi et al., Wi-CaL, IEEE Access 10 (2022) 24395-24410, doi:10.1109/ACCESS.2022.3155812",
            "published": PUBLISHED,
        },
    )
