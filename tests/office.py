"""Small slices of the vendored Office data, and random-code SID maps over them, for fixtures."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

from gr2.data.loading import load_items
from gr2.data.schema import Item, LoadReport
from gr2.sid.sidmap import SidMap

OFFICE = Path(__file__).resolve().parents[1] / "data" / "amazon-office-2014"


def office_sequences(users: int) -> list[list[str]]:
    """The first `users` users' full Office sequences, oldest first."""
    with gzip.open(OFFICE / "sequences.tsv.gz", "rt") as lines:
        next(lines)
        return [line.split("\t")[1].split() for _, line in zip(range(users), lines, strict=False)]


def office_catalog(sequences: list[list[str]]) -> dict[str, Item]:
    """The Office items that occur in `sequences`."""
    items = load_items(OFFICE / "items.jsonl.gz", LoadReport())
    used = {item for sequence in sequences for item in sequence}
    return {item_id: item for item_id, item in items.items() if item_id in used}


def random_sid_map(items: list[str], levels: int = 4, codebook_size: int = 16, seed: int = 0) -> SidMap:
    """Unique random codes; the last level is drawn among the codes unused under the item's prefix."""
    rng = random.Random(seed)
    codes: dict[str, tuple[int, ...]] = {}
    taken: set[tuple[int, ...]] = set()
    for item in items:
        prefix = tuple(rng.randrange(codebook_size) for _ in range(levels - 1))
        free = [code for code in range(codebook_size) if prefix + (code,) not in taken]
        codes[item] = prefix + (rng.choice(free),)
        taken.add(codes[item])
    return SidMap(levels=levels, codebook_size=codebook_size, codes=codes)
