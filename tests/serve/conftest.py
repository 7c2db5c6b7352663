"""Fixtures of the serving tests: real Office items, a random-code SID map over them, and a model bundle
built from tiny-random (the SmolLM2 tokenizer with random 2-layer weights)."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import pytest

from gr2.data.loading import load_items
from gr2.data.schema import Item, LoadReport
from gr2.lm.base import prepare_base_model
from gr2.lm.config import BaseModelConfig
from gr2.serve.bundle import load_bundle, write_bundle
from gr2.serve.config import DecodingConfig
from gr2.sid.sidmap import SidMap
from gr2.traces.config import PromptConfig

REPO = Path(__file__).resolve().parents[2]
OFFICE = REPO / "data" / "amazon-office-2014"
USERS = 40


def read_sequences(path: Path, limit: int) -> list[list[str]]:
    with gzip.open(path, "rt") as lines:
        next(lines)
        return [line.split("\t")[1].split() for _, line in zip(range(limit), lines, strict=False)]


def random_sid_map(items: list[str], levels: int = 4, codebook_size: int = 16, seed: int = 0) -> SidMap:
    """Unique random codes; the last level is drawn among the codes unused under the item's prefix."""
    rng = random.Random(seed)
    codes: dict[str, tuple[int, ...]] = {}
    for item in items:
        prefix = tuple(rng.randrange(codebook_size) for _ in range(levels - 1))
        free = [code for code in range(codebook_size) if prefix + (code,) not in codes.values()]
        codes[item] = prefix + (rng.choice(free),)
    return SidMap(levels=levels, codebook_size=codebook_size, codes=codes)


@pytest.fixture(scope="session")
def sequences() -> list[list[str]]:
    return read_sequences(OFFICE / "sequences.tsv.gz", USERS)


@pytest.fixture(scope="session")
def catalog(sequences) -> dict[str, Item]:
    items = load_items(OFFICE / "items.jsonl.gz", LoadReport())
    used = {item for sequence in sequences for item in sequence}
    return {item_id: item for item_id, item in items.items() if item_id in used}


@pytest.fixture(scope="session")
def sid_map(catalog) -> SidMap:
    return random_sid_map(sorted(catalog))


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory, sid_map, catalog) -> Path:
    """A bundle of tiny-random with a short reasoning budget (tests decode fast)."""
    work = tmp_path_factory.mktemp("serve")
    prepare_base_model(BaseModelConfig(name="tiny-random", pad_vocab_to_multiple_of=1), sid_map, work / "base")
    return write_bundle(
        work / "bundle",
        work / "base",
        sid_map,
        catalog,
        PromptConfig(history_items=20),
        DecodingConfig(reasoning_tokens=8, max_candidates=10),
        source={"test": "tiny-random"},
    )


@pytest.fixture(scope="session")
def bundle(bundle_dir):
    return load_bundle(bundle_dir)


@pytest.fixture(scope="session")
def example(sequences) -> tuple[list[str], list[str]]:
    """A history of a real user and 10 distinct candidates (their next item and others' items)."""
    history = sequences[0][:-1]
    pool = [item for sequence in sequences[1:] for item in sequence if item not in history]
    candidates = list(dict.fromkeys([sequences[0][-1], *pool]))[:10]
    return history, candidates
