"""Reference re-rankers with no model: the incoming order, popularity, random and the oracle."""

from __future__ import annotations

import random
from collections.abc import Callable

from gr2.prerank.candidates import RerankExample

Reranker = Callable[[RerankExample], list[str]]


def incoming_order(example: RerankExample) -> list[str]:
    return list(example.candidates)


def oracle_order(example: RerankExample) -> list[str]:
    """The ceiling of every metric: a slate's candidates by grade, high to low, else the held-out item first;
    ties and the rest in incoming order."""
    grades = example.grades_by_item or {example.target: 1}
    return sorted(example.candidates, key=lambda item: -grades.get(item, 0))


def popularity_order(popularity: dict[str, int]) -> Reranker:
    """Most-interacted items (train split) first; ties keep the incoming order."""

    def rerank(example: RerankExample) -> list[str]:
        return sorted(example.candidates, key=lambda item: -popularity.get(item, 0))

    return rerank


def random_order(seed: int) -> Reranker:
    rng = random.Random(seed)

    def rerank(example: RerankExample) -> list[str]:
        shuffled = list(example.candidates)
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
