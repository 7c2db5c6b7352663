"""Reading upstream artifacts: every stage after `prerank` needs some of the same inputs."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from gr2.data.artifact import read_interactions
from gr2.data.schema import Item
from gr2.data.split import GivenTrainSplit, LeaveOneOutSplit, training_split
from gr2.prerank.candidates import RerankExample, read_examples
from gr2.sid.sidmap import SidMap

SID_MAP_FILE = "sid_map.json"


@dataclass
class StageInputs:
    catalog: dict[str, Item]
    split: LeaveOneOutSplit | GivenTrainSplit
    examples: list[RerankExample]
    sids: SidMap

    def train_sequences(self) -> list[list[str]]:
        return [seq for seq in self.split.train_sequences().values() if seq]

    def examples_of(self, split: str, limit: int | None = None, seed: int = 0) -> list[RerankExample]:
        """A split's examples; with a limit, a seeded sample in stable order."""
        chosen = [e for e in self.examples if e.split == split]
        if limit is not None and limit < len(chosen):
            keep = set(random.Random(seed).sample(range(len(chosen)), limit))
            chosen = [e for i, e in enumerate(chosen) if i in keep]
        return chosen


def read_sid_map(sid_dir: str | Path) -> SidMap:
    return SidMap.load(Path(sid_dir) / SID_MAP_FILE)


def load_inputs(
    dataset_dir: str | Path, examples_dir: str | Path, sid_dir: str | Path, max_history: int
) -> StageInputs:
    data = read_interactions(dataset_dir)
    return StageInputs(
        catalog=data.items,
        split=training_split(data, max_history),
        examples=read_examples(examples_dir),
        sids=read_sid_map(sid_dir),
    )
