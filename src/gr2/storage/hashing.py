"""Content hashes for audit trails and caches."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def hash_files(paths: list[Path]) -> str:
    """sha256 over the names and bytes of files, in the order given."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def hash_json(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
