"""Re-ranking examples: a history, the pre-ranker's K candidates in its order, and the held-out target.

The prerank stage writes them to `examples.jsonl.gz`, one JSON object per line; every later stage
(traces, SFT, RL, evaluation, the serving example request) reads them back with `read_examples`.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from gr2.data.split import RankingExample
from gr2.prerank.base import Retriever
from gr2.storage.atomic import write_bytes_atomic

EXAMPLES_FILE = "examples.jsonl.gz"


@dataclass(frozen=True)
class RerankExample:
    split: str
    user_id: str
    history: tuple[str, ...]
    candidates: tuple[str, ...]
    target: str

    @property
    def target_position(self) -> int | None:
        """1-based position of the target in the incoming order."""
        return self.candidates.index(self.target) + 1 if self.target in self.candidates else None


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


def write_examples(examples: Sequence[RerankExample], folder: Path) -> None:
    lines = "".join(json.dumps(asdict(e)) + "\n" for e in examples)
    write_bytes_atomic(folder / EXAMPLES_FILE, gzip.compress(lines.encode(), mtime=0))


def read_examples(folder: str | Path, split: str | None = None) -> list[RerankExample]:
    path = Path(folder) / EXAMPLES_FILE
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    examples = [
        RerankExample(r["split"], r["user_id"], tuple(r["history"]), tuple(r["candidates"]), r["target"]) for r in rows
    ]
    return [e for e in examples if split is None or e.split == split]
