"""Collaborative counts of the train split: what other shoppers bought after, and together with, an item.

The evidence teacher cites them in its traces; a direct prompt can write them beside each candidate
(`PromptConfig.direct_evidence`), so the re-ranker reads the same evidence at training and serving time.
They come from the train split only, so neither a validation nor a test target is ever counted.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gr2.prerank.base import item_popularity
from gr2.prerank.cooccurrence import transition_counts
from gr2.storage.atomic import write_bytes_atomic

COUNTS_FILE = "collaborative_counts.json.gz"
RECENT_ITEMS = 3
COPURCHASE_WINDOW = 10


def copurchase_counts(train_sequences: dict[str, list[str]], window: int = COPURCHASE_WINDOW) -> dict[str, Counter]:
    """How often two items were bought by the same user within `window` purchases of each other."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for sequence in train_sequences.values():
        for i, first in enumerate(sequence):
            for second in sequence[i + 1 : i + 1 + window]:
                counts[first][second] += 1
                counts[second][first] += 1
    return counts


@dataclass(frozen=True)
class CollaborativeCounts:
    transitions: dict[str, Counter]  # item -> items bought directly after it, with counts
    copurchases: dict[str, Counter]  # item -> items bought near it by the same user, with counts
    popularity: dict[str, int]

    @classmethod
    def from_sequences(cls, train_sequences: dict[str, list[str]]) -> CollaborativeCounts:
        return cls(
            transition_counts(train_sequences), copurchase_counts(train_sequences), item_popularity(train_sequences)
        )

    def followed(self, history: Sequence[str], candidate: str) -> int:
        """Times `candidate` was bought right after one of the user's `RECENT_ITEMS` latest items."""
        return sum(self.transitions.get(item, {}).get(candidate, 0) for item in history[-RECENT_ITEMS:])

    def bought_with(self, history: Sequence[str], candidate: str) -> int:
        """Times `candidate` was bought near any item of the history."""
        return sum(self.copurchases.get(item, {}).get(candidate, 0) for item in history)

    def note(self, history: Sequence[str], candidate: str) -> str:
        """The evidence a direct prompt writes beside a candidate."""
        return f"next {self.followed(history, candidate)}, with {self.bought_with(history, candidate)}"

    def save(self, folder: Path) -> None:
        payload = {"transitions": self.transitions, "copurchases": self.copurchases, "popularity": self.popularity}
        write_bytes_atomic(folder / COUNTS_FILE, gzip.compress(json.dumps(payload).encode(), compresslevel=6))

    @classmethod
    def load(cls, folder: Path) -> CollaborativeCounts:
        path = Path(folder) / COUNTS_FILE
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: a model trained with prompt.direct_evidence needs the train split's "
                "collaborative counts beside it"
            )
        payload = json.loads(gzip.decompress(path.read_bytes()))
        return cls(
            {item: Counter(after) for item, after in payload["transitions"].items()},
            {item: Counter(near) for item, near in payload["copurchases"].items()},
            payload["popularity"],
        )
