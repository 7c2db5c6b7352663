"""Atomic local writes: a reader never sees half a file, a crash never leaves one."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary file beside `path`, moved onto `path` when the block succeeds and removed when it fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates owner-only files; outputs are meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """A temporary folder beside `path` that replaces `path` (and all it held) when the block succeeds.

    If another process put its own build at `path` in the instant between our two renames, that one is
    kept: builds of one path are meant to be equal, and readers may already be using it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    tmp.chmod(0o755)  # mkdtemp makes it owner-only; outputs are meant to be read by others
    # A folder cannot be renamed onto a non-empty one: move the old one aside first, so readers see the
    # old or the new folder, never a mix, and only for the instant between the two renames none.
    retired = path.with_name(f"{tmp.name}.old")
    try:
        if path.exists():
            os.replace(path, retired)
        os.replace(tmp, path)
    except OSError:
        if not path.exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)


def write_dir_atomic(path: str | Path, build: Callable[[Path], None]) -> Path:
    """`build(staging)` fills a folder that then atomically replaces `path`."""
    with atomic_dir(path) as staging:
        build(staging)
    return Path(path)


def materialise_once(path: str | Path, build: Callable[[Path], None]) -> Path:
    """`path` as it is if it exists, else built atomically (for caches of converted checkpoints)."""
    return Path(path) if Path(path).exists() else write_dir_atomic(path, build)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_text_atomic(path: str | Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, payload: object) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")
