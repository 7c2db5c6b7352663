"""The RQ-VAE: encoder MLP -> residual quantisation over learned codebooks -> decoder MLP.

Losses and the EMA update are pure functions of tensors, so each technique can be tested alone.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gr2.sid.config import SidConfig
from gr2.storage.atomic import write_bytes_atomic

EMA_EPS = 1e-5


def mlp(dims: list[int]) -> nn.Sequential:
    """Linear layers with ReLU between them and none after the last, He-initialised.

    PyTorch's default Linear initialisation shrinks the spread across items layer by layer, so the latent
    cloud starts tiny next to its offset and the first optimiser steps move it past its k-means codes.
    """
    layers: list[nn.Module] = []
    for index, (fan_in, fan_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        linear = nn.Linear(fan_in, fan_out)
        last = index == len(dims) - 2
        nn.init.kaiming_normal_(linear.weight, nonlinearity="linear" if last else "relu")
        nn.init.zeros_(linear.bias)
        layers.append(linear)
        if not last:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def squared_distances(points: Tensor, codebook: Tensor) -> Tensor:
    """(B, C) squared Euclidean distances between each point and each code."""
    return (points.pow(2).sum(1, keepdim=True) - 2 * points @ codebook.T + codebook.pow(2).sum(1)[None, :]).clamp_min(0)


def ema_codebook_update(
    cluster_size: Tensor, embed_sum: Tensor, residuals: Tensor, codes: Tensor, decay: float
) -> tuple[Tensor, Tensor, Tensor]:
    """One EMA step (VQ-VAE-2): running code counts and residual sums; codebook = sum / smoothed count.

    Laplace smoothing keeps a code that no item picks from dividing by zero.
    """
    onehot = F.one_hot(codes, cluster_size.numel()).type_as(residuals)
    cluster_size = decay * cluster_size + (1 - decay) * onehot.sum(0)
    embed_sum = decay * embed_sum + (1 - decay) * onehot.T @ residuals
    total = cluster_size.sum()
    smoothed = (cluster_size + EMA_EPS) / (total + cluster_size.numel() * EMA_EPS) * total
    return cluster_size, embed_sum, embed_sum / smoothed[:, None]


def commitment_loss(residuals: list[Tensor], quantised: list[Tensor]) -> Tensor:
    """sum over levels of MSE(r, sg(e)): keeps the encoder close to the codes it picks."""
    return sum(F.mse_loss(r, e.detach()) for r, e in zip(residuals, quantised, strict=True))


def codebook_loss(residuals: list[Tensor], quantised: list[Tensor]) -> Tensor:
    """sum over levels of MSE(sg(r), e): moves codes toward their residuals (when not EMA)."""
    return sum(F.mse_loss(r.detach(), e) for r, e in zip(residuals, quantised, strict=True))


def code_spacing(codebook: Tensor) -> Tensor:
    """Mean squared distance from each code to its nearest other code (detached): a level's scale."""
    distances = squared_distances(codebook, codebook).fill_diagonal_(float("inf"))
    return distances.min(1).values.mean().detach().clamp_min(1e-12)


def diversity_loss(distances: Tensor, temperature: Tensor) -> Tensor:
    """log C - I(item; code) under soft assignment softmax(-d / temperature): the KL of the batch's mean
    code usage from uniform (peaked usage costs) plus the mean entropy of each item's assignment.

    The entropy term forbids the cheap way to look diverse: a residual equidistant from many codes has
    a flat soft assignment but still one hard code. The temperature comes from the codebook
    (code_spacing), so residuals cannot flatten their assignments by moving away from every code.
    """
    probabilities = torch.softmax(-distances / temperature, dim=1)
    log_probabilities = torch.log_softmax(-distances / temperature, dim=1)
    usage = probabilities.mean(0)
    usage_kl = (usage * (usage * usage.numel()).clamp_min(1e-12).log()).sum()
    assignment_entropy = -(probabilities * log_probabilities).sum(1).mean()
    return usage_kl + assignment_entropy


def info_nce_loss(anchors: Tensor, positives: Tensor, temperature: float) -> Tensor:
    """InfoNCE with in-batch negatives: row i of anchors should match row i of positives."""
    logits = F.normalize(anchors, dim=1) @ F.normalize(positives, dim=1).T / temperature
    return F.cross_entropy(logits, torch.arange(len(anchors), device=anchors.device))


class CodebookLevel(nn.Module):
    """One level's C codes: a parameter trained by gradient, or a buffer updated by EMA."""

    def __init__(self, size: int, dim: int, ema: bool, ema_decay: float) -> None:
        super().__init__()
        self.ema = ema
        self.ema_decay = ema_decay
        initial = torch.empty(size, dim).uniform_(-1 / size, 1 / size)
        if ema:
            self.register_buffer("codebook", initial)
            self.register_buffer("cluster_size", torch.ones(size))
            self.register_buffer("embed_sum", initial.clone())
        else:
            self.codebook = nn.Parameter(initial)
        self.register_buffer("unused_batches", torch.zeros(size, dtype=torch.long))

    @property
    def size(self) -> int:
        return self.codebook.shape[0]

    @torch.no_grad()
    def set_codes(self, indices: Tensor, vectors: Tensor) -> None:
        """Overwrite some codes; EMA statistics restart as if each had been seen once at that vector."""
        self.codebook[indices] = vectors
        if self.ema:
            self.cluster_size[indices] = 1.0
            self.embed_sum[indices] = vectors

    @torch.no_grad()
    def ema_update(self, residuals: Tensor, codes: Tensor) -> None:
        self.cluster_size, self.embed_sum, codebook = ema_codebook_update(
            self.cluster_size, self.embed_sum, residuals, codes, self.ema_decay
        )
        self.codebook.copy_(codebook)

    @torch.no_grad()
    def reset_dead_codes(self, residuals: Tensor, codes: Tensor, patience: int) -> int:
        """Re-seed codes unused for `patience` consecutive batches with random batch residuals."""
        used = torch.bincount(codes, minlength=self.size) > 0
        self.unused_batches = torch.where(used, 0, self.unused_batches + 1)
        dead = (self.unused_batches >= patience).nonzero().flatten()
        if len(dead):
            picks = torch.randint(len(residuals), (len(dead),), device=residuals.device)
            self.set_codes(dead, residuals[picks])
            self.unused_batches[dead] = 0
        return len(dead)


@dataclass
class Quantised:
    codes: Tensor  # (B, K) long
    residuals: list[Tensor]  # K x (B, D): the input of each level
    quantised: list[Tensor]  # K x (B, D): the code picked at each level
    distances: list[Tensor]  # K x (B, C)

    @property
    def latent(self) -> Tensor:
        return torch.stack(self.quantised).sum(0)


@dataclass
class Reconstruction:
    latent: Tensor
    quantised: Quantised
    output: Tensor


class RQVAE(nn.Module):
    def __init__(self, input_dim: int, config: SidConfig) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.config = config
        hidden = list(config.hidden_dims)
        self.encoder = mlp([input_dim, *hidden, config.latent_dim])
        self.decoder = mlp([config.latent_dim, *reversed(hidden), input_dim])
        self.levels = nn.ModuleList(
            CodebookLevel(config.codebook_size, config.latent_dim, config.ema, config.ema_decay)
            for _ in range(config.learned_levels)
        )

    def quantise(self, latent: Tensor) -> Quantised:
        """Greedy residual quantisation; the next level sees r - sg(e) so gradients reach the encoder."""
        residual = latent
        codes, residuals, quantised, distances = [], [], [], []
        for level in self.levels:
            level_distances = squared_distances(residual, level.codebook)
            level_codes = level_distances.argmin(1)
            code_vectors = level.codebook[level_codes]
            codes.append(level_codes)
            residuals.append(residual)
            quantised.append(code_vectors)
            distances.append(level_distances)
            residual = residual - code_vectors.detach()
        return Quantised(torch.stack(codes, 1), residuals, quantised, distances)

    def forward(self, inputs: Tensor) -> Reconstruction:
        latent = self.encoder(inputs)
        quantised = self.quantise(latent)
        straight_through = latent + (quantised.latent - latent).detach()
        return Reconstruction(latent, quantised, self.decoder(straight_through))

    def codebooks(self) -> list[Tensor]:
        return [level.codebook.detach() for level in self.levels]


def save_quantizer(model: RQVAE, path: str | Path) -> None:
    """The trained state and everything needed to rebuild the module (see load_quantizer)."""
    buffer = io.BytesIO()
    payload = {
        "config": model.config.model_dump(mode="json"),
        "input_dim": model.input_dim,
        "state_dict": {name: tensor.cpu() for name, tensor in model.state_dict().items()},
    }
    torch.save(payload, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def load_quantizer(path: str | Path, device: str = "cpu") -> RQVAE:
    payload = torch.load(path, map_location=device, weights_only=True)
    model = RQVAE(payload["input_dim"], SidConfig(**payload["config"]))
    model.load_state_dict(payload["state_dict"])
    return model.to(device).eval()
