"""The `data` stage: load and validate a dataset, sample users, and write the leave-one-out split; or, for a
slate dataset (`gr2.data.slate_dataset`), the slates with their time split and train interactions."""

from __future__ import annotations

from pathlib import Path

from gr2.data.artifact import write_interactions
from gr2.data.config import DataConfig
from gr2.data.loading import load_interactions
from gr2.data.registry import resolve_dataset
from gr2.data.schema import Interactions
from gr2.data.slate_dataset import (
    SlateDataset,
    load_slate_dataset,
    sample_slate_users,
    time_cutoff,
    train_interactions,
)
from gr2.data.slates import split_by_time, write_slates
from gr2.data.slates_from_sequences import slate_statistics
from gr2.data.split import LeaveOneOutSplit, sample_users
from gr2.utils.text import slug


def dropped_metrics(dropped: dict[str, int]) -> dict[str, int]:
    return {f"dropped_{slug(reason)}": count for reason, count in dropped.items()}


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
    metrics.update(dropped_metrics(dropped))
    return metrics


def load_dataset(dataset: str, config: DataConfig) -> Interactions | SlateDataset:
    """`dataset` (a bundled name or a folder) read and validated as this stage reads it: slates for a slate
    folder or with `config.slates_from_sequences`, else sequences. `gr2 run --data` calls it before the
    pipeline starts, so that a bad folder fails in seconds; raises DatasetError."""
    folder = resolve_dataset(dataset)
    slates = load_slate_dataset(folder, config)
    return slates or load_interactions(folder, min_sequence_length=config.min_sequence_length)


def prepare_slates(data: SlateDataset, config: DataConfig, seed: int, out_dir: Path) -> dict[str, float]:
    """Keep the slates of a seeded sample of users, split them by time and write the slate artifact: the
    slates, the items they use, the train interactions and the cutoff (`test_from` in dataset.json)."""
    slates = sample_slate_users(data.slates, config.max_users, seed)
    cutoff = time_cutoff(slates, config.slate_split)
    train, test = split_by_time(slates, cutoff)
    used = {item for slate in slates for item in (*slate.history, *slate.shown)}
    interactions = Interactions(
        data.name,
        {item_id: item for item_id, item in data.items.items() if item_id in used},
        train_interactions(train),
        data.report,
        kind="slates",
    )
    path = write_slates(out_dir, slates)
    write_interactions(interactions, out_dir, extra_files=(path,), test_from=cutoff)
    stats = slate_statistics(slates)
    metrics = {
        "users": len({slate.user_id for slate in slates}),
        "items": len(interactions.items),
        "slates": stats.slates,
        "train_slates": len(train),
        "test_slates": len(test),
        "test_from": cutoff,
        "multi_positive_slates": stats.multi_positive,
        "train_interactions": sum(len(sequence) for sequence in interactions.sequences.values()),
    }
    metrics |= {f"shown_grade_{grade}": count for grade, count in stats.grade_counts.items()}
    return metrics | dropped_metrics(data.report.dropped)


def prepare_dataset(dataset: str, config: DataConfig, seed: int, out_dir: Path) -> dict[str, float]:
    """Validate `dataset` (a bundled name or a folder), keep a seeded sample of users, write it to
    `out_dir` in the normalised format (for slates: `prepare_slates`). Returns the stage's metrics."""
    data = load_dataset(dataset, config)
    if isinstance(data, SlateDataset):
        return prepare_slates(data, config, seed, out_dir)
    data.sequences = sample_users(data.sequences, config.max_users, seed)
    used = {item for seq in data.sequences.values() for item in seq}
    data.items = {item_id: item for item_id, item in data.items.items() if item_id in used}
    write_interactions(data, out_dir)
    split = LeaveOneOutSplit(data.sequences, config.max_history)
    return dataset_metrics(data.sequences, len(data.items), data.report.dropped, split)
