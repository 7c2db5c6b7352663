"""Re-ranking examples: a history, the pre-ranker's K candidates in its order, and the held-out target.

An example made from a logged slate (`gr2.data.slates`) also carries each candidate's grade; its target is
then the slate's primary positive (`primary_target`), which the stages that need one target use.

The prerank stage writes them to `examples.jsonl.gz`, one JSON object per line; every later stage
(traces, SFT, RL, evaluation, the serving example request) reads them back with `read_examples`.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from gr2.data.slates import Slate, split_by_time
from gr2.data.split import RankingExample, validates_reranker
from gr2.prerank.base import Retriever
from gr2.storage.atomic import write_bytes_atomic

EXAMPLES_FILE = "examples.jsonl.gz"


@dataclass(frozen=True)
class RerankExample:
    """A history, the candidates in the incoming order and the held-out target; for a slate also `grades`,
    one per candidate (`grades[i]` is the grade of `candidates[i]`), None for single-target data."""

    split: str
    user_id: str
    history: tuple[str, ...]
    candidates: tuple[str, ...]
    target: str
    grades: tuple[int, ...] | None = None

    @property
    def target_position(self) -> int | None:
        """1-based position of the target in the incoming order."""
        return self.candidates.index(self.target) + 1 if self.target in self.candidates else None

    @property
    def grades_by_item(self) -> dict[str, int] | None:
        """Each candidate's grade for a slate example; None for single-target data."""
        return None if self.grades is None else dict(zip(self.candidates, self.grades, strict=True))

    def reordered(self, candidates: Sequence[str]) -> RerankExample:
        """The same example with its candidates in another incoming order; grades move with their items."""
        if sorted(candidates) != sorted(self.candidates):
            raise ValueError("reordered needs the example's own candidates")
        grades = self.grades_by_item
        return replace(
            self,
            candidates=tuple(candidates),
            grades=None if grades is None else tuple(grades[item] for item in candidates),
        )


def primary_target(shown: Sequence[str], labels: Sequence[int]) -> str:
    """The one target of a slate for the stages that need one: the highest-graded shown item, ties to the
    one shown first."""
    best = max(range(len(shown)), key=lambda index: (labels[index], -index))
    if labels[best] <= 0:
        raise ValueError("a slate without a positive has no target")
    return shown[best]


@dataclass
class SplitCandidates:
    kept: list[RerankExample]
    total: int

    @property
    def coverage(self) -> float:
        """Share of examples whose target the pre-ranker put in its top K (its Recall@K)."""
        return len(self.kept) / self.total if self.total else 0.0


def build_examples(
    split: str, examples: Sequence[RankingExample], retriever: Retriever, k: int, keep_all: bool
) -> SplitCandidates:
    lists = retriever.top_k(examples, k)
    built = [
        RerankExample(split, e.user_id, tuple(e.history), tuple(candidates), e.target)
        for e, candidates in zip(examples, lists, strict=True)
    ]
    kept = [e for e in built if keep_all or e.target_position is not None]
    return SplitCandidates(kept=kept, total=len(built))


def slate_example(split: str, slate: Slate, max_history: int) -> RerankExample:
    """A slate as a re-ranking example: its shown items in shown order are the candidates (the incoming
    order), with their grades; the target is `primary_target`; the history is capped at max_history."""
    target = primary_target(slate.shown, slate.labels)
    return RerankExample(split, slate.user_id, slate.history[-max_history:], slate.shown, target, slate.labels)


def slate_examples(
    slates: Sequence[Slate], test_from: int, valid_fraction: float, seed: int, max_history: int
) -> list[RerankExample]:
    """One example per slate: `test` from `test_from` on; the earlier slates `train`, or `valid` for the users
    the leave-one-out split would hold out (the same seeded hash of the user id)."""
    train, test = split_by_time(slates, test_from)
    examples = [
        slate_example("valid" if validates_reranker(s.user_id, valid_fraction, seed) else "train", s, max_history)
        for s in train
    ]
    return examples + [slate_example("test", s, max_history) for s in test]


def example_record(example: RerankExample) -> dict:
    """One line of the examples file; `grades` only for slate examples, so single-target files are as before."""
    record = asdict(example)
    if example.grades is None:
        del record["grades"]
    return record


def write_examples(examples: Sequence[RerankExample], folder: Path) -> None:
    lines = "".join(json.dumps(example_record(e)) + "\n" for e in examples)
    write_bytes_atomic(folder / EXAMPLES_FILE, gzip.compress(lines.encode(), mtime=0))


def read_examples(folder: str | Path, split: str | None = None) -> list[RerankExample]:
    path = Path(folder) / EXAMPLES_FILE
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    examples = [
        RerankExample(
            r["split"],
            r["user_id"],
            tuple(r["history"]),
            tuple(r["candidates"]),
            r["target"],
            tuple(r["grades"]) if "grades" in r else None,
        )
        for r in rows
    ]
    return [e for e in examples if split is None or e.split == split]
