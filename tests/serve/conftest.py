"""Fixtures of the serving tests: real Office items, a random-code SID map over them, and a model bundle
built from tiny-random (the SmolLM2 tokenizer with random 2-layer weights)."""

from __future__ import annotations

from pathlib import Path

import pytest

from gr2.lm.base import prepare_base_model
from gr2.lm.config import BaseModelConfig
from gr2.serve.bundle import load_bundle, write_bundle
from gr2.serve.config import DecodingConfig
from gr2.traces.config import PromptConfig


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
