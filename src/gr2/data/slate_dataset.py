"""Slate datasets in the pipeline: a folder with `slates.jsonl[.gz]` (`gr2.data.slates`) and the item file of
the sequence format (`items.jsonl[.gz]` or `items_textid.jsonl[.gz]`), or slates made from a sequence dataset.

Every shown and history item needs metadata (the prompts show item text, the semantic IDs are made from it):
a slate showing an item without metadata is dropped and counted, a history item without it is left out and
counted, as the sequence loader does. One run re-ranks one number of candidates, so every slate must show
as many items as the first.

The data stage's artifact for slates holds the items, the usable slates, the time split's cutoff in
`dataset.json` and, as `sequences.tsv.gz`, the train interactions (`train_interactions`) that the stages
reading sequences (semantic IDs, mid-training, collaborative evidence, popularity) use.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from gr2.data.config import DataConfig, SlatesFromSequencesConfig, SlateSplitConfig
from gr2.data.errors import DatasetError
from gr2.data.loading import ITEM_FILES, find_file, load_interactions, load_items
from gr2.data.schema import Interactions, Item, LoadReport
from gr2.data.slates import SLATE_FILES, Slate, SlateLoad, keep_rankable, read_slates
from gr2.data.slates_from_sequences import fit_prefixes, slates_from_sequences
from gr2.data.split import sampled_user_ids
from gr2.prerank.cooccurrence import CooccurrenceRetriever


@dataclass
class SlateDataset:
    """Validated slates and the catalogue they draw from; `report` counts what loading dropped."""

    name: str
    items: dict[str, Item]
    slates: tuple[Slate, ...]
    report: LoadReport


def is_slate_folder(folder: Path) -> bool:
    """Whether `folder` holds a slate file (then it is read as slates, whatever the preset says)."""
    return any((folder / name).is_file() for name in SLATE_FILES)


def count_drops(load: SlateLoad, report: LoadReport) -> None:
    for reason, count in (
        ("slate without a positive", load.dropped_no_positive),
        ("slate without a negative", load.dropped_no_negative),
    ):
        if count:
            report.drop(reason, f"{count} slates", count)


def with_known_items(slates: Sequence[Slate], items: dict[str, Item], report: LoadReport) -> tuple[Slate, ...]:
    """The slates whose shown items all have metadata, their histories without the items that have none."""
    kept = []
    for slate in slates:
        unknown = [item for item in slate.shown if item not in items]
        if unknown:
            report.drop("slate showing an item without metadata", f"{slate.request_id} {unknown[0]}")
            continue
        for item in slate.history:
            if item not in items:
                report.drop("history item without metadata", f"{slate.request_id} {item}")
        kept.append(replace(slate, history=tuple(item for item in slate.history if item in items)))
    return tuple(kept)


def check_one_slate_size(slates: Sequence[Slate], where: Path) -> None:
    """A run re-ranks one number of candidates: every slate shows as many items as the first."""
    first = slates[0]
    for slate in slates:
        if len(slate.shown) != len(first.shown):
            raise DatasetError(
                f"{where}: field 'shown' of request {slate.request_id!r} has {len(slate.shown)} items, request "
                f"{first.request_id!r} {len(first.shown)}; every slate of a run must show the same number"
            )


def load_slate_folder(folder: Path, name: str | None = None) -> SlateDataset:
    """Read and validate a slate folder (slates and item metadata); raises DatasetError."""
    report = LoadReport()
    items = load_items(find_file(folder, ITEM_FILES, "item metadata"), report)
    load = read_slates(folder)
    count_drops(load, report)
    slates = with_known_items(load.slates, items, report)
    if not slates:
        raise DatasetError(f"{folder}: no slate left whose shown items all have metadata")
    check_one_slate_size(slates, folder)
    return SlateDataset(name or folder.name, items, slates, report)


def slates_of_sequences(data: Interactions, config: SlatesFromSequencesConfig) -> SlateDataset:
    """`data`'s sequences turned into slates by a co-occurrence pre-ranker fitted on `fit_prefixes` (so on
    no request and no label); slates without a positive or a negative are dropped and counted."""
    retriever = CooccurrenceRetriever(
        fit_prefixes(data.sequences, config), sorted(data.items), config.cooccurrence_window
    )
    load = keep_rankable(list(slates_from_sequences(data.sequences, retriever, config)))
    if not load.slates:
        raise DatasetError(f"{data.name}: no slate made from its sequences has a positive and a negative")
    count_drops(load, data.report)
    return SlateDataset(f"{data.name}-slates", data.items, load.slates, data.report)


def load_slate_dataset(folder: Path, config: DataConfig) -> SlateDataset | None:
    """The slates of `folder`: read from a slate folder, or made from a sequence folder when
    `config.slates_from_sequences` asks for it; None when the run is not on slates."""
    if is_slate_folder(folder):
        return load_slate_folder(folder)
    if config.slates_from_sequences is None:
        return None
    data = load_interactions(folder, min_sequence_length=config.min_sequence_length)
    return slates_of_sequences(data, config.slates_from_sequences)


def sample_slate_users(slates: Sequence[Slate], max_users: int | None, seed: int) -> tuple[Slate, ...]:
    """The slates of a seeded sample of users (as `sample_users` picks them); all when max_users is None."""
    if max_users is None:
        return tuple(slates)
    chosen = sampled_user_ids({slate.user_id for slate in slates}, max_users, seed)
    return tuple(slate for slate in slates if slate.user_id in chosen)


def time_cutoff(slates: Sequence[Slate], config: SlateSplitConfig) -> int:
    """The split's cutoff: `test_from`, else the earliest timestamp leaving at most `test_fraction` of the
    slates at or after it. Raises DatasetError unless both sides get a slate."""
    timestamps = sorted(slate.timestamp for slate in slates)
    if config.test_from is not None:
        cutoff = config.test_from
    else:
        most = math.floor(config.test_fraction * len(timestamps))
        fits = [t for t in sorted(set(timestamps)) if len(timestamps) - bisect_left(timestamps, t) <= most]
        cutoff = fits[0] if fits else timestamps[-1] + 1
    train = bisect_left(timestamps, cutoff)
    if train == 0 or train == len(timestamps):
        raise DatasetError(
            f"time split at {cutoff}: {train} of {len(timestamps)} slates before it (timestamps "
            f"{timestamps[0]}..{timestamps[-1]}); set data.slate_split so that both train and test get slates"
        )
    return cutoff


def train_interactions(train: Sequence[Slate]) -> dict[str, list[str]]:
    """Each user's interactions known before the cutoff: over their train slates in time order, the history
    items not seen yet, then the slate's positives not seen yet (highest grade first, ties in shown order).
    Users with none are left out."""
    sequences: dict[str, list[str]] = {}
    for slate in sorted(train, key=lambda s: s.timestamp):
        sequence = sequences.setdefault(slate.user_id, [])
        positives = sorted(slate.positives, key=lambda item: -slate.grades_by_item[item])
        for item in (*slate.history, *positives):
            if item not in sequence:
                sequence.append(item)
    return {user: sequence for user, sequence in sequences.items() if sequence}
