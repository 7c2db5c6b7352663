"""Leave-one-out splits and the ranking examples built from them.

Per user: the last item is the test target, the second-to-last the validation target, the rest is
training data. Histories given to any model are capped at the most recent `max_history` items.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from dataclasses import dataclass

from gr2.data.schema import Interactions


@dataclass(frozen=True)
class RankingExample:
    """A user's history (oldest first) and the held-out item that came next."""

    user_id: str
    history: tuple[str, ...]
    target: str


def train_prefix(sequence: list[str]) -> list[str]:
    """Items a model may train on: all but the validation and test items."""
    return sequence[:-2]


def validation_example(user: str, sequence: list[str], max_history: int) -> RankingExample:
    return RankingExample(user, tuple(sequence[:-2][-max_history:]), sequence[-2])


def test_example(user: str, sequence: list[str], max_history: int) -> RankingExample:
    return RankingExample(user, tuple(sequence[:-1][-max_history:]), sequence[-1])


def stable_fraction(key: str, salt: str) -> float:
    """A deterministic number in [0, 1) for a key, independent of Python's hash seed."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def validates_reranker(user: str, held_out_fraction: float, seed: int) -> bool:
    """Whether the user's examples validate the re-ranker instead of training it (a seeded hash of the id)."""
    return stable_fraction(user, f"rerank-valid-{seed}") < held_out_fraction


@dataclass
class LeaveOneOutSplit:
    sequences: dict[str, list[str]]
    max_history: int

    def train_sequences(self) -> dict[str, list[str]]:
        return {user: train_prefix(seq) for user, seq in self.sequences.items()}

    def validation_examples(self) -> list[RankingExample]:
        return [validation_example(u, s, self.max_history) for u, s in self.sequences.items()]

    def test_examples(self) -> list[RankingExample]:
        return [test_example(u, s, self.max_history) for u, s in self.sequences.items()]

    def reranker_examples(self, held_out_fraction: float, seed: int) -> dict[str, list[RankingExample]]:
        """Examples for the re-ranker: `train` and `valid` use the validation target (users split
        between them by a seeded hash), `test` uses the test target of every user. A pre-ranker fitted
        on `train_sequences()` has seen none of these targets."""
        train, valid = [], []
        for example in self.validation_examples():
            (valid if validates_reranker(example.user_id, held_out_fraction, seed) else train).append(example)
        return {"train": train, "valid": valid, "test": self.test_examples()}


@dataclass
class GivenTrainSplit:
    """A dataset whose sequences are its train interactions already, nothing held out of them: a slate
    dataset's (`gr2.data.slate_dataset.train_interactions`); its examples are the slates."""

    sequences: dict[str, list[str]]

    def train_sequences(self) -> dict[str, list[str]]:
        return self.sequences


def training_split(data: Interactions, max_history: int) -> LeaveOneOutSplit | GivenTrainSplit:
    """What the stages train on: leave-one-out for a sequence dataset, the given train interactions for slates."""
    return GivenTrainSplit(data.sequences) if data.kind == "slates" else LeaveOneOutSplit(data.sequences, max_history)


def sampled_user_ids(users: Collection[str], max_users: int, seed: int) -> set[str]:
    """A seeded, order-independent sample of max_users of the given user ids."""
    return set(sorted(users, key=lambda user: stable_fraction(user, f"sample-{seed}"))[:max_users])


def sample_users(sequences: dict[str, list[str]], max_users: int | None, seed: int) -> dict[str, list[str]]:
    """A seeded, order-independent sample of users (all of them when max_users is None)."""
    if max_users is None or max_users >= len(sequences):
        return sequences
    chosen = sampled_user_ids(sequences.keys(), max_users, seed)
    return {user: seq for user, seq in sequences.items() if user in chosen}
