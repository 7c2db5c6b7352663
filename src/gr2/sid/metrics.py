"""Quality of a SID assignment: uniqueness, collisions, and per-level code usage."""

from __future__ import annotations

import numpy as np


def sid_share_counts(codes: np.ndarray) -> np.ndarray:
    """For each item, how many items (itself included) have exactly its codes."""
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return counts[inverse.reshape(-1)]


def uniqueness(codes: np.ndarray) -> float:
    """Share of items whose SID is theirs alone."""
    return float((sid_share_counts(codes) == 1).mean())


def colliding_items(codes: np.ndarray) -> int:
    """Items whose SID at least one other item has."""
    return int((sid_share_counts(codes) > 1).sum())


def code_usage(level_codes: np.ndarray, codebook_size: int) -> np.ndarray:
    """Share of items that picked each code of one level."""
    return np.bincount(level_codes, minlength=codebook_size) / len(level_codes)


def utilisation(level_codes: np.ndarray, codebook_size: int) -> float:
    """Share of a level's codes that at least one item uses."""
    return float((code_usage(level_codes, codebook_size) > 0).mean())


def perplexity(level_codes: np.ndarray, codebook_size: int) -> float:
    """exp(entropy of code usage): the number of equally used codes that would give the same entropy."""
    usage = code_usage(level_codes, codebook_size)
    used = usage[usage > 0]
    return float(np.exp(-(used * np.log(used)).sum()))


def level_metrics(codes: np.ndarray, codebook_size: int) -> dict[str, float]:
    metrics = {}
    for level in range(codes.shape[1]):
        metrics[f"utilisation_level_{level}"] = utilisation(codes[:, level], codebook_size)
        metrics[f"perplexity_level_{level}"] = perplexity(codes[:, level], codebook_size)
    return metrics
