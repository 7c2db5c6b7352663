import numpy as np
import pytest
import torch

from gr2.sid.config import SidConfig
from gr2.sid.metrics import utilisation
from gr2.sid.rqvae import RQVAE
from gr2.sid.stage import encode_catalog
from gr2.sid.train import co_interaction_partners, residual_kmeans_init, train_rqvae


def clustered_embeddings(items=400, dim=16, clusters=20, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(clusters, dim))
    points = centers[rng.integers(clusters, size=items)] + 0.3 * rng.normal(size=(items, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


CONFIG = dict(codebook_size=16, hidden_dims=(32,), latent_dim=8, batch_size=100, device="cpu")


def test_training_is_deterministic_for_a_seed():
    embeddings = clustered_embeddings()
    config = SidConfig(**CONFIG, warmup_epochs=2, epochs=3, dead_code_reset=True, dead_code_batches=1)
    first = encode_catalog(train_rqvae(embeddings, config).model, embeddings).codes
    again = encode_catalog(train_rqvae(embeddings, config).model, embeddings).codes
    other = encode_catalog(train_rqvae(embeddings, config.model_copy(update={"seed": 1})).model, embeddings).codes
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_training_leaves_the_callers_torch_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    train_rqvae(clustered_embeddings(), SidConfig(**CONFIG, warmup_epochs=0, epochs=1))
    assert torch.equal(torch.rand(1), expected)


def test_residual_kmeans_init_uses_every_code_of_every_level():
    embeddings = clustered_embeddings()
    inputs = torch.from_numpy(embeddings)
    config = SidConfig(**CONFIG, levels=3, random_last_level=False)
    torch.manual_seed(0)
    model = RQVAE(16, config)
    before = model.eval()(inputs).quantised.codes.numpy()
    residual_kmeans_init(model, inputs, config)
    after = model(inputs).quantised.codes.numpy()
    assert [utilisation(after[:, level], 16) for level in range(3)] == [1.0, 1.0, 1.0]
    assert min(utilisation(before[:, level], 16) for level in range(3)) < 1.0


def test_dead_code_reset_brings_unused_codes_back_into_use():
    embeddings = clustered_embeddings(items=300)
    base = SidConfig(**CONFIG, random_last_level=False, warmup_epochs=0, epochs=6, kmeans_init=False)
    plain = train_rqvae(embeddings, base)
    reset = train_rqvae(embeddings, base.model_copy(update={"dead_code_reset": True, "dead_code_batches": 2}))
    assert plain.dead_codes_reset == 0 < reset.dead_codes_reset
    used = [utilisation(encode_catalog(r.model, embeddings).codes[:, 0], 16) for r in (plain, reset)]
    assert used[1] > used[0]


def test_co_interaction_partners_are_adjacent_items_in_both_directions():
    partners = co_interaction_partners([["a", "b", "c"], ["c", "a"]], ["a", "b", "c", "d"])
    neighbours = {
        row: sorted(partners.neighbours[partners.offsets[row] : partners.offsets[row + 1]].tolist()) for row in range(4)
    }
    assert neighbours == {0: [1, 2], 1: [0, 2], 2: [0, 1], 3: []}
    positions, picked = partners.sample(np.array([3, 1]), np.random.default_rng(0))
    assert positions.tolist() == [1] and picked[0] in (0, 2)


def test_unknown_items_in_train_sequences_are_an_error():
    with pytest.raises(ValueError, match="'zz'"):
        co_interaction_partners([["a", "zz"]], ["a"])


def test_contrastive_loss_pulls_partner_latents_together():
    embeddings = clustered_embeddings(items=200)
    rng = np.random.default_rng(0)
    sequences = [[f"{a}", f"{b}"] for a, b in rng.integers(200, size=(100, 2))]
    partners = co_interaction_partners(sequences, [str(i) for i in range(200)])
    config = SidConfig(**CONFIG, warmup_epochs=0, epochs=20, contrastive_weight=1.0)

    def partner_cosine(contrastive: bool) -> float:
        result = train_rqvae(embeddings, config.model_copy(update={"contrastive": contrastive}), partners)
        latents = encode_catalog(result.model, embeddings).latents
        latents /= np.linalg.norm(latents, axis=1, keepdims=True)
        anchors = np.repeat(np.arange(200), np.diff(partners.offsets))
        return float((latents[anchors] * latents[partners.neighbours]).sum(1).mean())

    assert partner_cosine(True) > partner_cosine(False) + 0.05
