"""Uncertainty of a metric on a finite set of examples: bootstrap intervals and a paired test."""

from __future__ import annotations

import numpy as np


def bootstrap_interval(values: np.ndarray, samples: int, seed: int, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-example values."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(samples, len(values)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def paired_sign_flip_p_value(model: np.ndarray, baseline: np.ndarray, permutations: int, seed: int) -> float:
    """Two-sided p-value that the mean paired difference is 0 (random sign flips of the differences)."""
    differences = model - baseline
    observed = abs(differences.mean())
    if not differences.any():
        return 1.0
    rng = np.random.default_rng(seed)
    signs = rng.choice([-1.0, 1.0], size=(permutations, len(differences)))
    flipped = np.abs((signs * differences).mean(axis=1))
    return float((np.sum(flipped >= observed - 1e-12) + 1) / (permutations + 1))
