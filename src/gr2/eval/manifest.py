"""The audit manifest: what a run was, so a reviewer can reproduce or question it."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

PACKAGES = ("gr2-kubeflow", "torch", "transformers", "trl", "kfp", "sentence-transformers", "faiss-cpu", "deepspeed")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def code_version() -> str:
    """$GR2_GIT_COMMIT (images bake it in), else the checkout's commit, else 'unknown'."""
    if os.environ.get("GR2_GIT_COMMIT"):
        return os.environ["GR2_GIT_COMMIT"]
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 else "unknown"


def build_manifest(
    config: dict, config_hash: str, dataset: dict, upstream: dict[str, str], timings: dict[str, float], image: str
) -> dict:
    return {
        "preset": config.get("name"),
        "config_hash": config_hash,
        "config": config,
        "seed": config.get("seed"),
        "dataset": dataset,
        "code_version": code_version(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "image": image,
        "upstream_artifacts": upstream,
        "stage_seconds": timings,
    }
