"""Real WiFi-CSI data sets, read in place, each returned as one :class:`WindowSet`.

    from edgecsi.training.datasets import load, DATASETS
    ws = load("esp32s2_temporal_har_geotecinit")        # default task/options of that set
    ws.x  # float32[window, time, feature];  ws.y  # int64[window];  ws.domains["day"] ...

The data sets live in ``<root>/<id>/`` where root is, in order: the ``root`` argument, the
``EDGECSI_DATASETS`` environment variable, ``../shared/datasets`` next to the repository.
One module per data set (``esp32s2_har.py`` ...) exposes ``load(directory, **options)``;
this module only knows their ids, descriptions and where they are.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from edgecsi.errors import EdgeCSIError
from edgecsi.training.datasets.base import WindowSet

ENV_VAR = "EDGECSI_DATASETS"
# training/datasets/__init__.py -> repo root is parents[2]; shared/ sits next to the repo.
_DEFAULT_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"


class DatasetNotFound(EdgeCSIError):
    """The data set id is unknown, or its directory is not under the data-set root."""


@dataclass(frozen=True)
class DatasetInfo:
    """What the registry knows about a data set without reading it.

    windows: task -> number of windows ``load`` returns with default options (checked by the tests).
    """

    id: str
    title: str
    path: str                      # directory name under the data-set root
    module: str                    # loader module in this package
    tasks: tuple[str, ...]         # first one is the default
    domains: tuple[str, ...]       # domain columns of the returned WindowSet
    license: str
    windows: dict[str, int] = field(default_factory=dict)
    features: str = ""             # what x[window, time, feature] holds (default options)
    sensing: str = ""              # "device-free" or "device-based"

    def directory(self, root: Path | str | None = None) -> Path:
        return dataset_root(root) / self.path

    def size_on_disk(self, root: Path | str | None = None) -> int:
        """Bytes under the data set's directory now (0 if absent)."""
        from edgecsi.training.datasets.catalog import directory_size
        return directory_size(self.directory(root))


DATASETS: dict[str, DatasetInfo] = {}


def _register(info: DatasetInfo) -> None:
    DATASETS[info.id] = info


_register(DatasetInfo(
    id="esp32s2_temporal_har_geotecinit",
    title="ESP32-S2 localized HAR, temporal domains D1..D4 (GeoTecINIT, IPIN 2023)",
    path="esp32s2_temporal_har_geotecinit",
    module="esp32s2_har",
    tasks=("activity",),
    domains=("day", "domain", "sequence", "run", "direction"),
    license="ODC-By-1.0 (data)",
    windows={"activity": 809},
    features="x[window, 50 packets, 56 HT-LTF subcarrier amplitudes] (paper's denoised windows)",
    sensing="device-free",
))
_register(DatasetInfo(
    id="intel5300_har_2env_5person",
    title="Intel 5300 HAR, 11 activities x 5 persons x 2 rooms",
    path="intel5300_har_2env_5person",
    module="intel5300_har",
    tasks=("activity",),
    domains=("room", "person", "repetition", "file"),
    license="none stated (internal evaluation only)",
    windows={"activity": 2101},
    features="x[window, 200 packets, 3 rx x 30 subcarriers |CSI|]",
    sensing="device-free",
))
_register(DatasetInfo(
    id="esp32_wical_crowd_2rooms_3days",
    title="Wi-CaL ESP32 crowd counting and section localization, 2 rooms x 3 days",
    path="esp32_wical_crowd_2rooms_3days",
    module="wical",
    tasks=("counting", "localization"),
    domains=("room", "day", "file", "row"),
    license="none stated (internal evaluation only)",
    windows={"counting": 3582 + 6567, "localization": 2985 + 5985},
    features="x[window, 1, 420 (counting) | 356 (localization) hand-crafted features of 4 links]",
    sensing="device-free",
))
_register(DatasetInfo(
    id="nexmon_csu_indoorloc_180rp",
    title="CSUIndoorLoc Nexmon CSI, 180 reference points on 5 corridors + separate test points",
    path="nexmon_csu_indoorloc_180rp",
    module="nexmon_csu",
    tasks=("localization",),
    domains=("split", "path", "room", "point", "capture", "date"),
    license="BSD-3-Clause",
    windows={"localization": 108_000 + 16_568},
    features="x[window, 1, 56 valid subcarrier |CSI|] one packet per window",
    sensing="device-based",
))
_register(DatasetInfo(
    id="ivanet_csi_ips_2020_21",
    title="iVANET-PolyU CSI_IPS 2020-21, Intel 5300 fingerprints, 8 positions, days 2..24",
    path="ivanet_csi_ips_2020_21",
    module="ivanet",
    tasks=("localization",),
    domains=("day", "period", "session", "file", "people", "obstructions"),
    license="MIT",
    windows={"localization": 102_720},
    features="x[window, 1, 2 tx x 3 rx x 30 subcarriers |scaled CSI|] one packet per window",
    sensing="device-based",
))


def dataset_root(root: Path | str | None = None) -> Path:
    """The directory that holds one sub-directory per data set."""
    if root is not None:
        return Path(root)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else _DEFAULT_ROOT


def dataset_dir(name: str, root: Path | str | None = None) -> Path:
    """Directory of data set ``name``; raises DatasetNotFound if unknown or absent."""
    info = _info(name)
    path = dataset_root(root) / info.path
    if not path.is_dir():
        raise DatasetNotFound(f"{name}: {path} does not exist (set {ENV_VAR} or pass root=)")
    return path


def load(name: str, *, root: Path | str | None = None, **options) -> WindowSet:
    """Load data set ``name`` as a WindowSet; ``options`` go to its loader (see each module's ``load``)."""
    info = _info(name)
    directory = dataset_dir(name, root)
    module = importlib.import_module(f"{__name__}.{info.module}")
    return module.load(directory, **options)


def _info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise DatasetNotFound(f"unknown data set {name!r}; known: {', '.join(DATASETS)}") from None


def __getattr__(attr: str):
    # list_datasets lives in catalog.py (it walks the disk); imported lazily to keep this module light.
    if attr == "list_datasets":
        from edgecsi.training.datasets.catalog import list_datasets
        return list_datasets
    raise AttributeError(attr)


__all__ = ["DATASETS", "DatasetInfo", "DatasetNotFound", "WindowSet", "dataset_dir", "dataset_root",
           "list_datasets", "load", "ENV_VAR"]
