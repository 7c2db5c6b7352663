"""Training of the RQ-VAE: residual k-means initialisation, then minibatch epochs with every switch."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from gr2.sid.config import SidConfig
from gr2.sid.rqvae import (
    RQVAE,
    Reconstruction,
    code_spacing,
    codebook_loss,
    commitment_loss,
    diversity_loss,
    info_nce_loss,
    squared_distances,
)


@dataclass(frozen=True)
class Partners:
    """Co-interacted items in CSR form: the partners of row i are neighbours[offsets[i]:offsets[i+1]]."""

    offsets: np.ndarray
    neighbours: np.ndarray

    @property
    def pairs(self) -> int:
        return len(self.neighbours)

    def sample(self, rows: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(positions in rows that have a partner, one random partner row for each of them)."""
        degrees = self.offsets[rows + 1] - self.offsets[rows]
        positions = np.flatnonzero(degrees > 0)
        picks = self.offsets[rows[positions]] + rng.integers(0, degrees[positions])
        return positions, self.neighbours[picks]


def co_interaction_partners(sequences: Sequence[Sequence[str]], item_ids: Sequence[str]) -> Partners:
    """Items adjacent in a train sequence are partners, in both directions, each pair once."""
    row_of = {item: row for row, item in enumerate(item_ids)}
    neighbours: dict[int, set[int]] = defaultdict(set)
    for index, sequence in enumerate(sequences):
        unknown = [item for item in sequence if item not in row_of]
        if unknown:
            raise ValueError(f"train sequence {index} has items not in the catalogue, e.g. {unknown[0]!r}")
        rows = [row_of[item] for item in sequence]
        for left, right in zip(rows[:-1], rows[1:], strict=True):
            if left != right:
                neighbours[left].add(right)
                neighbours[right].add(left)
    degrees = np.array([len(neighbours[row]) for row in range(len(item_ids))], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(degrees)])
    flat = [partner for row in range(len(item_ids)) for partner in sorted(neighbours[row])]
    return Partners(offsets=offsets, neighbours=np.array(flat, dtype=np.int64))


def kmeans_centroids(points: np.ndarray, k: int, iterations: int, seed: int) -> np.ndarray:
    import faiss

    kmeans = faiss.Kmeans(points.shape[1], k, niter=iterations, seed=seed, min_points_per_centroid=1, verbose=False)
    kmeans.train(np.ascontiguousarray(points, dtype=np.float32))
    return kmeans.centroids


@torch.no_grad()
def residual_kmeans_init(model: RQVAE, inputs: torch.Tensor, config: SidConfig) -> None:
    """Level l's codebook = k-means centroids of the residuals the catalogue leaves after levels < l."""
    residual = model.encoder(inputs)
    for level in model.levels:
        centroids = torch.from_numpy(
            kmeans_centroids(residual.cpu().numpy(), level.size, config.kmeans_iters, config.seed)
        ).to(residual)
        level.set_codes(torch.arange(level.size, device=residual.device), centroids)
        residual = residual - centroids[squared_distances(residual, centroids).argmin(1)]


def loss_terms(
    model: RQVAE,
    inputs: torch.Tensor,
    config: SidConfig,
    contrastive_pairs: tuple[torch.Tensor, torch.Tensor] | None,
) -> tuple[Reconstruction, dict[str, torch.Tensor]]:
    """Forward one batch: its Reconstruction and each weighted loss term by name.

    contrastive_pairs: (positions in the batch, input embeddings of one partner for each).
    """
    out = model(inputs)
    q = out.quantised
    terms = {
        "reconstruction": F.mse_loss(out.output, inputs),
        "commitment": config.beta * commitment_loss(q.residuals, q.quantised),
    }
    if not config.ema:
        terms["codebook"] = codebook_loss(q.residuals, q.quantised)
    if config.diversity_loss:
        diversity = [
            diversity_loss(distances, code_spacing(level.codebook))
            for level, distances in zip(model.levels, q.distances, strict=True)
        ]
        terms["diversity"] = config.diversity_weight * torch.stack(diversity).sum()
    if contrastive_pairs is not None and len(contrastive_pairs[0]) > 1:
        anchors, partners = contrastive_pairs
        terms["contrastive"] = config.contrastive_weight * info_nce_loss(
            out.latent[anchors], model.encoder(partners), config.contrastive_temperature
        )
    return out, terms


@torch.no_grad()
def update_codebooks(model: RQVAE, out: Reconstruction, config: SidConfig) -> int:
    """EMA step and dead-code reset after the gradient step; returns how many codes were re-seeded."""
    reset = 0
    for level, residual, codes in zip(model.levels, out.quantised.residuals, out.quantised.codes.T, strict=True):
        if config.ema:
            level.ema_update(residual.detach(), codes)
        if config.dead_code_reset:
            reset += level.reset_dead_codes(residual.detach(), codes, config.dead_code_batches)
    return reset


@dataclass
class TrainResult:
    model: RQVAE
    seconds: float
    final_losses: dict[str, float]  # mean of each term over the last epoch
    dead_codes_reset: int


def resolve_device(device: str | None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def epoch_batches(items: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A random partition into equal batches of about batch_size: no tiny last batch to skew EMA stats."""
    return np.array_split(rng.permutation(items), max(1, items // batch_size))


def warmup_epoch(
    model: RQVAE,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    config: SidConfig,
    rng: np.random.Generator,
) -> dict[str, float]:
    """One epoch of plain autoencoding (quantiser bypassed)."""
    batches = epoch_batches(len(inputs), config.batch_size, rng)
    total = 0.0
    for rows in batches:
        loss = F.mse_loss(model.decoder(model.encoder(inputs[rows])), inputs[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.item() / len(batches)
    return {"warmup_reconstruction": total}


def quantised_epoch(
    model: RQVAE,
    optimizer: torch.optim.Optimizer,
    inputs: torch.Tensor,
    config: SidConfig,
    rng: np.random.Generator,
    partners: Partners | None,
) -> tuple[dict[str, float], int]:
    """One epoch of RQ-VAE training: (mean of each loss term, codes re-seeded by dead-code reset)."""
    batches = epoch_batches(len(inputs), config.batch_size, rng)
    sums: dict[str, float] = defaultdict(float)
    reset = 0
    for rows in batches:
        pairs = None
        if partners is not None:
            positions, partner_rows = partners.sample(rows, rng)
            pairs = (torch.from_numpy(positions).to(inputs.device), inputs[partner_rows])
        out, terms = loss_terms(model, inputs[rows], config, pairs)
        loss = sum(terms.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        reset += update_codebooks(model, out, config)
        for name, value in terms.items():
            sums[name] += value.item() / len(batches)
    return dict(sums), reset


def train_rqvae(embeddings: np.ndarray, config: SidConfig, partners: Partners | None = None) -> TrainResult:
    """Warm-up as a plain autoencoder, initialise the codebooks, train the RQ-VAE.

    Deterministic for a given config.seed on one device and thread count; the caller's RNGs are untouched.
    """
    if config.contrastive and partners is None:
        raise ValueError("contrastive is on but no co-interaction partners were given (train sequences)")
    partners = partners if config.contrastive else None
    device = resolve_device(config.device)
    rng = np.random.default_rng(config.seed)
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(config.seed)
        model = RQVAE(embeddings.shape[1], config).to(device)
        inputs = torch.from_numpy(embeddings).to(device)
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=config.lr, weight_decay=config.weight_decay
        )
        start = time.perf_counter()
        losses: dict[str, float] = {}
        dead_codes_reset = 0
        progress = tqdm(range(config.warmup_epochs + config.epochs), desc="RQ-VAE", unit="epoch")
        for epoch in progress:
            if epoch < config.warmup_epochs:
                losses = warmup_epoch(model, optimizer, inputs, config, rng)
            else:
                if epoch == config.warmup_epochs and config.kmeans_init:
                    residual_kmeans_init(model, inputs, config)
                losses, reset = quantised_epoch(model, optimizer, inputs, config, rng, partners)
                dead_codes_reset += reset
            progress.set_postfix({name: f"{value:.4g}" for name, value in losses.items()})
        seconds = time.perf_counter() - start
    return TrainResult(model.eval(), seconds, losses, dead_codes_reset)
