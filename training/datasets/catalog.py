"""What is on disk: the registry joined with each data set's directory (present? how big?)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from edgecsi.training.datasets import DATASETS, dataset_root


def directory_size(path: Path) -> int:
    """Bytes of all regular files under ``path`` (0 if absent)."""
    if not path.is_dir():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def list_datasets(root: Path | str | None = None) -> list[dict]:
    """One JSON-ready dict per registered data set: the DatasetInfo fields plus ``directory``,
    ``present`` and ``size_bytes`` (what the directory holds now). Reads no data files."""
    base = dataset_root(root)
    out = []
    for info in DATASETS.values():
        directory = info.directory(base)
        row = asdict(info)
        row["tasks"] = list(info.tasks)
        row["domains"] = list(info.domains)
        row["directory"] = str(directory)
        row["present"] = directory.is_dir()
        row["size_bytes"] = info.size_on_disk(base)
        out.append(row)
    return out
