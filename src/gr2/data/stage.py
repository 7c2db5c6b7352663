"""The `data` stage: load and validate a dataset, sample users, and write the leave-one-out split."""

from __future__ import annotations

from pathlib import Path

from gr2.data.artifact import write_interactions
from gr2.data.config import DataConfig
from gr2.data.loading import load_interactions
from gr2.data.registry import resolve_dataset
from gr2.data.schema import Interactions
from gr2.data.split import LeaveOneOutSplit, sample_users
from gr2.utils.text import slug


def dataset_metrics(users: dict[str, list[str]], items: int, dropped: dict[str, int], split: LeaveOneOutSplit) -> dict:
    interactions = sum(len(seq) for seq in users.values())
    metrics = {
        "users": len(users),
        "items": items,
        "interactions": interactions,
        "mean_sequence_length": interactions / len(users),
        "train_interactions": sum(len(seq) for seq in split.train_sequences().values()),
        "valid_examples": len(users),
        "test_examples": len(users),
    }
    metrics.update({f"dropped_{slug(reason)}": count for reason, count in dropped.items()})
    return metrics


def load_dataset(dataset: str, config: DataConfig) -> Interactions:
    """`dataset` (a bundled name or a folder) read and validated as this stage reads it. `gr2 run --data`
    calls it before the pipeline starts, so that a bad folder fails in seconds; raises DatasetError."""
    return load_interactions(resolve_dataset(dataset), min_sequence_length=config.min_sequence_length)


def prepare_dataset(dataset: str, config: DataConfig, seed: int, out_dir: Path) -> dict[str, float]:
    """Validate `dataset` (a bundled name or a folder), keep a seeded sample of users, write it to
    `out_dir` in the normalised format. Returns the stage's metrics."""
    data = load_dataset(dataset, config)
    data.sequences = sample_users(data.sequences, config.max_users, seed)
    used = {item for seq in data.sequences.values() for item in seq}
    data.items = {item_id: item for item_id, item in data.items.items() if item_id in used}
    write_interactions(data, out_dir)
    split = LeaveOneOutSplit(data.sequences, config.max_history)
    return dataset_metrics(data.sequences, len(data.items), data.report.dropped, split)
