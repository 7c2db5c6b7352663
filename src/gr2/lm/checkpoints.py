"""Writing checkpoint directories so that a reader never sees half of one."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_dir_atomic(target: Path, build: Callable[[Path], None]) -> Path:
    """Build a directory in a temporary sibling, then rename it to `target`, replacing an old one.

    If another process renamed its own build to `target` first, that one is kept: both builds are
    meant to be equal, and readers may already be using it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    retired = staging.with_suffix(".old")
    try:
        build(staging)
        staging.chmod(0o755)  # mkdtemp makes it private
        if target.exists():
            target.rename(retired)
        try:
            staging.rename(target)
        except OSError:
            if not target.exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(retired, ignore_errors=True)
    return target


def materialise_once(target: Path, build: Callable[[Path], None]) -> Path:
    """`target` as it is if it exists, else built atomically (for caches of converted checkpoints)."""
    return target if target.exists() else write_dir_atomic(target, build)


def save_pretrained_atomic(model, tokenizer, out_dir: Path) -> Path:
    def build(staging: Path) -> None:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)

    return write_dir_atomic(out_dir, build)
