"""Fixtures of the lm tests: real Office items and sequences, a random-code SID map, the tiny-random model."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

from gr2.data.schema import Item
from gr2.lm.base import prepare_base_model
from gr2.lm.config import BaseModelConfig
from gr2.lm.models import load_model_and_tokenizer
from gr2.sid.sidmap import SidMap

OFFICE = Path(__file__).resolve().parents[2] / "data" / "amazon-office-2014"
USERS = 60


def read_items(path: Path) -> dict[str, Item]:
    items = {}
    with gzip.open(path, "rt") as lines:
        for line in lines:
            row = json.loads(line)
            categories = row.get("categories_list") or (row["categories"] or "").split(", ")
            item = Item(
                item_id=str(row["item_id"]),
                title=row.get("title"),
                brand=row.get("brand"),
                categories=tuple(c for c in categories if c),
                description=row.get("description"),
            )
            items[item.item_id] = item
    return items


def read_sequences(path: Path, limit: int) -> list[list[str]]:
    with gzip.open(path, "rt") as lines:
        next(lines)
        return [line.split("\t")[1].split() for _, line in zip(range(limit), lines, strict=False)]


def random_sid_map(items: list[str], levels: int, codebook_size: int, seed: int) -> SidMap:
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


@pytest.fixture(scope="session")
def sequences() -> list[list[str]]:
    """The first users' full Office sequences, oldest first."""
    return read_sequences(OFFICE / "sequences.tsv.gz", USERS)


@pytest.fixture(scope="session")
def catalog(sequences) -> dict[str, Item]:
    items = read_items(OFFICE / "items.jsonl.gz")
    used = {item for sequence in sequences for item in sequence}
    return {item_id: item for item_id, item in items.items() if item_id in used}


@pytest.fixture(scope="session")
def sid_map(catalog) -> SidMap:
    return random_sid_map(sorted(catalog), levels=4, codebook_size=16, seed=0)


@pytest.fixture(scope="session")
def model_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("model-cache")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, model_cache, sid_map) -> Path:
    """tiny-random with the SID vocabulary, as prepare_base_model saves it."""
    out = tmp_path_factory.mktemp("tiny") / "base"
    prepare_base_model(BaseModelConfig(name="tiny-random", cache_dir=model_cache), sid_map, out)
    return out


@pytest.fixture
def tiny(tiny_dir):
    """A fresh (model, tokenizer) pair of the SID-extended tiny-random model."""
    return load_model_and_tokenizer(tiny_dir)


@pytest.fixture(scope="session")
def split(sequences) -> tuple[list[list[str]], list[tuple[list[str], str]]]:
    """Leave-one-out: training sequences without their last two items; test (history, last item)."""
    train = [sequence[:-2] for sequence in sequences]
    test = [(sequence[:-1], sequence[-1]) for sequence in sequences]
    return train, test
