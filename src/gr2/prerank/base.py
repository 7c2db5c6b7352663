"""The interface every pre-ranker implements."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from gr2.data.split import RankingExample


class Retriever(Protocol):
    def top_k(self, examples: Sequence[RankingExample], k: int) -> list[list[str]]:
        """For each example, the k best items of the catalogue for its history, best first, none from
        the history. The example's target is never looked at."""
        ...


def item_popularity(train_sequences: dict[str, list[str]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sequence in train_sequences.values():
        for item in sequence:
            counts[item] = counts.get(item, 0) + 1
    return counts
