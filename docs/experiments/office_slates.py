"""Slates from the bundled Office sequences with the co-occurrence pre-ranker (docs/slates.md, "Slates from
the bundled data").

Fits `CooccurrenceRetriever` on each user's items before their first request point, makes the slates,
writes them with `write_slates`, reads them back with `read_slates` and prints: slates written, dropped for
no positive / no negative, kept, slates with more than one positive, slates by number of positives,
shown items by grade, and the wall time of each step.
"""

import argparse
import tempfile
import time
from pathlib import Path

from gr2.data.loading import load_interactions
from gr2.data.slates import read_slates, write_slates
from gr2.data.slates_from_sequences import (
    SequenceSlatesConfig,
    SlateStatistics,
    fit_prefixes,
    slate_statistics,
    slates_from_sequences,
)
from gr2.prerank.config import PrerankConfig
from gr2.prerank.cooccurrence import CooccurrenceRetriever

DATA = Path(__file__).resolve().parents[2] / "data" / "amazon-office-2014"


def describe(name: str, stats: SlateStatistics) -> None:
    print(f"{name}: {stats.slates} slates, {stats.multi_positive} with more than one positive")
    print(f"  slates by number of positives: {stats.positives_per_slate}")
    print(f"  shown items by grade: {stats.grade_counts}")


def main() -> None:
    defaults = SequenceSlatesConfig()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--k", type=int, default=defaults.k)
    parser.add_argument("--window", type=int, default=defaults.window)
    parser.add_argument("--requests-per-user", type=int, default=defaults.requests_per_user)
    parser.add_argument("--min-history", type=int, default=defaults.min_history)
    parser.add_argument("--out", help="folder for slates.jsonl.gz (default: a temporary folder)")
    args = parser.parse_args()
    config = SequenceSlatesConfig(
        k=args.k, window=args.window, requests_per_user=args.requests_per_user, min_history=args.min_history
    )
    started = time.monotonic()
    interactions = load_interactions(args.data)
    loaded = time.monotonic()
    retriever = CooccurrenceRetriever(
        fit_prefixes(interactions.sequences, config), list(interactions.items), PrerankConfig().cooccurrence_window
    )
    slates = slates_from_sequences(interactions.sequences, retriever, config)
    made = time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        path = write_slates(args.out or scratch, slates)
        size = path.stat().st_size
        load = read_slates(path.parent)
    finished = time.monotonic()

    print(f"data {args.data}: {len(interactions.sequences)} users, {len(interactions.items)} items")
    print(f"config {config.model_dump()}")
    print(f"written: {len(slates)} slates ({size} bytes gzipped)")
    dropped = f"dropped {load.dropped_no_positive} without a positive, {load.dropped_no_negative} without a negative"
    print(f"read back: kept {len(load.slates)}, {dropped}")
    describe("written", slate_statistics(slates))
    describe("kept", slate_statistics(load.slates))
    print(
        f"wall seconds: load {loaded - started:.2f}, fit and slates {made - loaded:.2f}, "
        f"write and read {finished - made:.2f}, total {finished - started:.2f}"
    )


if __name__ == "__main__":
    main()
