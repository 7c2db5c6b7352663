"""Fixtures of the lm tests: real Office items and sequences, a random-code SID map, the tiny-random model."""

from __future__ import annotations

from pathlib import Path

import pytest

from gr2.lm.base import prepare_base_model
from gr2.lm.config import BaseModelConfig
from gr2.lm.models import load_model_and_tokenizer


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
