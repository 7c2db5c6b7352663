"""Candidate lists produced by a user's own ranker.

File format (`candidates.tsv` or `candidates.tsv.gz`): a header `user_id<TAB>split<TAB>item_ids`, then one
row per user and split (`train`, `valid` or `test`), item ids space-separated, best first. The `train`
and `valid` rows rank for the validation target, `test` rows for the test target; the ranker that made
them must not have trained on those targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gr2.data.errors import DatasetError
from gr2.data.loading import read_lines
from gr2.data.split import RankingExample

HEADER = ("user_id", "split", "item_ids")
SPLITS = ("train", "valid", "test")


def read_external_candidates(path: str | Path, catalog: set[str]) -> dict[tuple[str, str], list[str]]:
    """(user_id, split) -> candidate list. Unknown items or splits are errors naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: external candidate file not found")
    lists: dict[tuple[str, str], list[str]] = {}
    for number, line in read_lines(path):
        fields = line.split("\t")
        if number == 1:
            if tuple(fields) != HEADER:
                raise DatasetError(f"{path}:1: header must be 'user_id<TAB>split<TAB>item_ids'")
            continue
        if len(fields) != 3 or fields[1] not in SPLITS:
            raise DatasetError(f"{path}:{number}: expected user_id, split ({'|'.join(SPLITS)}), item ids")
        unknown = [item for item in fields[2].split() if item not in catalog]
        if unknown:
            raise DatasetError(f"{path}:{number}: item {unknown[0]!r} is not in the catalogue")
        lists[(fields[0], fields[1])] = fields[2].split()
    return lists


class ExternalRetriever:
    """Serves the lists of one split from an external candidate file."""

    def __init__(self, lists: dict[tuple[str, str], list[str]], split: str):
        self.lists = lists
        self.split = split

    def top_k(self, examples: Sequence[RankingExample], k: int) -> list[list[str]]:
        missing = [e.user_id for e in examples if (e.user_id, self.split) not in self.lists]
        if missing:
            raise DatasetError(f"external candidates: no {self.split!r} list for user {missing[0]!r}")
        return [self.lists[(e.user_id, self.split)][:k] for e in examples]
