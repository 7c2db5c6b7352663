"""Reference re-rankers with no model: the incoming order, popularity, random and the oracle."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

Reranker = Callable[[Sequence[str], str], list[str]]


def incoming_order(candidates: Sequence[str], target: str) -> list[str]:
    return list(candidates)


def oracle_order(candidates: Sequence[str], target: str) -> list[str]:
    """The held-out item first, the rest in incoming order: the ceiling of every metric."""
    return [target] + [item for item in candidates if item != target]


def popularity_order(popularity: dict[str, int]) -> Reranker:
    """Most-interacted items (train split) first; ties keep the incoming order."""

    def rerank(candidates: Sequence[str], target: str) -> list[str]:
        return sorted(candidates, key=lambda item: -popularity.get(item, 0))

    return rerank


def random_order(seed: int) -> Reranker:
    rng = random.Random(seed)

    def rerank(candidates: Sequence[str], target: str) -> list[str]:
        shuffled = list(candidates)
        rng.shuffle(shuffled)
        return shuffled

    return rerank


def baseline_rerankers(popularity: dict[str, int], seed: int) -> dict[str, Reranker]:
    return {
        "prerank": incoming_order,
        "popularity": popularity_order(popularity),
        "random": random_order(seed),
        "oracle": oracle_order,
    }
