import torch

from gr2.sid.config import SidConfig
from gr2.sid.rqvae import (
    RQVAE,
    CodebookLevel,
    code_spacing,
    diversity_loss,
    ema_codebook_update,
    info_nce_loss,
    load_quantizer,
    save_quantizer,
    squared_distances,
)


def test_squared_distances_match_cdist():
    points, codes = torch.randn(7, 5), torch.randn(4, 5)
    assert torch.allclose(squared_distances(points, codes), torch.cdist(points, codes) ** 2, atol=1e-4)


def test_ema_moves_codes_toward_their_assigned_residuals_and_leaves_unused_codes():
    codebook = torch.zeros(3, 2)
    residuals = torch.tensor([[1.0, 1.0], [3.0, 1.0], [-2.0, 0.0]])
    codes = torch.tensor([0, 0, 1])
    cluster_size, embed_sum = torch.ones(3), codebook.clone()
    targets = torch.tensor([[2.0, 1.0], [-2.0, 0.0]])
    for _ in range(200):
        cluster_size, embed_sum, codebook = ema_codebook_update(cluster_size, embed_sum, residuals, codes, 0.9)
    assert torch.allclose(codebook[:2], targets, atol=1e-3)
    assert torch.allclose(codebook[2], torch.zeros(2))


def test_one_ema_step_moves_by_one_minus_decay():
    level = CodebookLevel(2, 2, ema=True, ema_decay=0.9)
    level.set_codes(torch.arange(2), torch.tensor([[0.0, 0.0], [5.0, 5.0]]))
    before = (level.codebook[0] - torch.tensor([1.0, 0.0])).norm()
    level.ema_update(torch.tensor([[1.0, 0.0]]), torch.tensor([0]))
    after = (level.codebook[0] - torch.tensor([1.0, 0.0])).norm()
    assert after < before
    assert torch.allclose(level.codebook[1], torch.tensor([5.0, 5.0]), atol=1e-3)


def test_ema_codebook_is_not_a_gradient_parameter():
    names = {name for name, _ in RQVAE(8, SidConfig(ema=True, latent_dim=4, hidden_dims=(8,))).named_parameters()}
    assert not any("codebook" in name for name in names)
    names = {name for name, _ in RQVAE(8, SidConfig(ema=False, latent_dim=4, hidden_dims=(8,))).named_parameters()}
    assert any("codebook" in name for name in names)


def test_dead_code_reset_reseeds_codes_unused_for_patience_batches():
    torch.manual_seed(0)
    level = CodebookLevel(4, 2, ema=True, ema_decay=0.99)
    level.set_codes(torch.arange(4), torch.full((4, 2), 100.0))
    residuals = torch.randn(16, 2)
    codes = torch.zeros(16, dtype=torch.long)
    assert level.reset_dead_codes(residuals, codes, patience=2) == 0
    assert level.reset_dead_codes(residuals, codes, patience=2) == 3
    reseeded = level.codebook[1:]
    assert all((reseeded[i] == residuals).all(1).any() for i in range(3))
    assert (level.codebook[0] == 100.0).all()


def test_diversity_loss_is_zero_for_confident_uniform_usage_and_larger_when_peaked():
    temperature = torch.tensor(1.0)
    uniform = torch.tensor([[0.0, 30.0], [30.0, 0.0]])
    peaked = torch.tensor([[0.0, 30.0], [0.0, 30.0]])
    assert diversity_loss(uniform, temperature) < 1e-6
    assert torch.isclose(diversity_loss(peaked, temperature), torch.log(torch.tensor(2.0)))


def test_diversity_loss_prefers_items_on_distinct_codes_to_items_between_or_far_from_codes():
    codebook = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    temperature = code_spacing(codebook)
    assert temperature == 1.0

    def loss(points):
        return diversity_loss(squared_distances(torch.tensor(points), codebook), temperature)

    on_codes = loss([[0.0, 0.0], [1.0, 0.0]])
    assert on_codes < loss([[0.5, 0.0], [0.5, 0.0]])
    assert on_codes < loss([[-50.0, 0.0], [-50.0, 1.0]])


def test_info_nce_prefers_matched_pairs():
    anchors = torch.eye(4)
    assert info_nce_loss(anchors, anchors, 0.1) < info_nce_loss(anchors, anchors.roll(1, 0), 0.1)


def test_straight_through_sends_reconstruction_gradient_to_the_encoder():
    model = RQVAE(6, SidConfig(latent_dim=3, hidden_dims=(5,), codebook_size=4, levels=2))
    inputs = torch.randn(10, 6)
    out = model(inputs)
    (out.output - inputs).pow(2).mean().backward()
    assert model.encoder[0].weight.grad.abs().sum() > 0
    assert torch.allclose(out.quantised.latent, sum(out.quantised.quantised))


def test_quantizer_round_trips(tmp_path):
    model = RQVAE(6, SidConfig(latent_dim=3, hidden_dims=(5,), codebook_size=4, levels=3)).eval()
    save_quantizer(model, tmp_path / "quantizer.pt")
    loaded = load_quantizer(tmp_path / "quantizer.pt")
    inputs = torch.randn(20, 6)
    assert torch.equal(model(inputs).quantised.codes, loaded(inputs).quantised.codes)
    assert loaded.config == model.config
