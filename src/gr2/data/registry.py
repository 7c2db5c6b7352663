"""The datasets bundled in `data/`, and how a `--data` argument resolves to a folder."""

from __future__ import annotations

import os
from pathlib import Path

from gr2.data.errors import DatasetError

DATA_ROOT_ENV = "GR2_DATA_ROOT"


def data_root() -> Path:
    """Where bundled datasets live: $GR2_DATA_ROOT (images set it), else the repository's `data/`."""
    configured = os.environ.get(DATA_ROOT_ENV)
    return Path(configured) if configured else Path(__file__).resolve().parents[3] / "data"


def bundled_datasets() -> list[str]:
    root = data_root()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "PROVENANCE.md").is_file())


def resolve_dataset(name_or_path: str) -> Path:
    """A bundled dataset's name, or a path to any folder in the normalised format."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path.resolve()
    bundled = data_root() / name_or_path
    if bundled.is_dir():
        return bundled
    known = ", ".join(bundled_datasets()) or "none found"
    raise DatasetError(f"dataset {name_or_path!r}: not a folder and not a bundled dataset (bundled: {known})")
