"""Non-neural pre-rankers: popularity, and item-to-item transitions with a popularity prior."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from gr2.data.split import RankingExample
from gr2.prerank.base import item_popularity


class PopularityRetriever:
    """The most interacted items of the train split that the user has not had."""

    def __init__(self, train_sequences: dict[str, list[str]], catalog: Sequence[str]):
        popularity = item_popularity(train_sequences)
        self.ranked = sorted(catalog, key=lambda item: (-popularity.get(item, 0), item))

    def top_k(self, examples: Sequence[RankingExample], k: int) -> list[list[str]]:
        return [self.top_k_excluding(set(example.history), k) for example in examples]

    def top_k_excluding(self, seen: set[str], k: int) -> list[str]:
        return [item for item in self.ranked[: k + len(seen)] if item not in seen][:k]


def transition_counts(train_sequences: dict[str, list[str]]) -> dict[str, Counter]:
    """How often item b directly followed item a in the train split."""
    transitions: dict[str, Counter] = defaultdict(Counter)
    for sequence in train_sequences.values():
        for before, after in zip(sequence, sequence[1:], strict=False):
            transitions[before][after] += 1
    return transitions


class CooccurrenceRetriever:
    """Scores items by how often they followed the user's recent items (the most recent weighs most),
    fills the rest of the list by popularity."""

    def __init__(self, train_sequences: dict[str, list[str]], catalog: Sequence[str], window: int):
        self.transitions = transition_counts(train_sequences)
        self.popular = PopularityRetriever(train_sequences, catalog)
        self.window = window

    def top_k(self, examples: Sequence[RankingExample], k: int) -> list[list[str]]:
        return [self._top_k(example.history, k) for example in examples]

    def _top_k(self, history: Sequence[str], k: int) -> list[str]:
        seen = set(history)
        scores: Counter = Counter()
        for distance, item in enumerate(reversed(history[-self.window :])):
            for following, count in self.transitions.get(item, {}).items():
                if following not in seen:
                    scores[following] += count / (distance + 1)
        ranked = [item for item, _ in sorted(scores.items(), key=lambda pair: (-pair[1], pair[0]))][:k]
        filler = [item for item in self.popular.top_k_excluding(seen | set(ranked), k) if item not in ranked]
        return (ranked + filler)[:k]
