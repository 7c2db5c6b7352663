"""Fixtures for the SID tests: small synthetic catalogues and a fake, instant sentence encoder."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from gr2.data.schema import Item
from gr2.sid import embed
from gr2.sid.config import SidConfig

FAKE_DIM = 24


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    """The tests' models are tiny: threads only add contention on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def fake_vector(text: str) -> np.ndarray:
    """A unit vector determined by the text: items in one 'category' share a direction plus noise."""
    category = text.split("Categories: ")[-1].split(";")[0]
    center = np.random.default_rng(int(hashlib.sha256(category.encode()).hexdigest()[:8], 16))
    noise = np.random.default_rng(int(hashlib.sha256(text.encode()).hexdigest()[:8], 16))
    vector = center.normal(size=FAKE_DIM) + 0.7 * noise.normal(size=FAKE_DIM)
    return (vector / np.linalg.norm(vector)).astype(np.float32)


class FakeEncoder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts, encoder, batch_size, device):
        self.calls.append(list(texts))
        return np.stack([fake_vector(text) for text in texts])


@pytest.fixture
def fake_encoder(monkeypatch) -> FakeEncoder:
    fake = FakeEncoder()
    monkeypatch.setattr(embed, "encode_texts", fake)
    return fake


def make_catalog(items: int, categories: int = 8) -> dict[str, Item]:
    return {
        f"i{index:04d}": Item(
            item_id=f"i{index:04d}",
            title=f"Product {index}",
            brand=f"Brand {index % 13}",
            categories=("Shop", f"Category {index % categories}"),
        )
        for index in range(items)
    }


@pytest.fixture
def catalog_of():
    return make_catalog


@pytest.fixture
def small_catalog() -> dict[str, Item]:
    return make_catalog(300)


@pytest.fixture
def small_config() -> SidConfig:
    """The smoke-preset shape: few codes, few epochs."""
    return SidConfig(
        codebook_size=16,
        hidden_dims=(32,),
        latent_dim=8,
        warmup_epochs=2,
        epochs=3,
        batch_size=64,
        device="cpu",
    )
