"""SASRec (Kang & McAuley, 2018): a causal self-attention next-item model, trained on the train split.

Trained with full softmax cross-entropy over the catalogue at every position (cheap at this catalogue
size and stronger than sampled BCE); item embeddings are tied with the output layer.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from gr2.data.split import RankingExample
from gr2.prerank.config import SasRecConfig

PAD = 0


class SasRec(nn.Module):
    def __init__(self, num_items: int, max_length: int, config: SasRecConfig):
        super().__init__()
        self.item_embedding = nn.Embedding(num_items + 1, config.hidden_size, padding_idx=PAD)
        self.position_embedding = nn.Embedding(max_length, config.hidden_size)
        self.dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(
            config.hidden_size,
            config.num_heads,
            dim_feedforward=config.hidden_size,
            dropout=config.dropout,
            batch_first=True,
            norm_first=True,
        )
        self.blocks = nn.TransformerEncoder(layer, config.num_blocks, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(config.hidden_size)
        causal = torch.ones(max_length, max_length, dtype=torch.bool).triu(diagonal=1)
        self.register_buffer("causal_mask", causal)
        for embedding in (self.item_embedding, self.position_embedding):
            nn.init.normal_(embedding.weight, std=0.02)

    def forward(self, item_ids: torch.Tensor) -> torch.Tensor:
        """item_ids: (batch, length), left-padded with 0. Returns hidden states (batch, length, hidden)."""
        length = item_ids.shape[1]
        positions = torch.arange(length, device=item_ids.device)
        hidden = self.item_embedding(item_ids) * self.item_embedding.embedding_dim**0.5
        hidden = self.dropout(hidden + self.position_embedding(positions))
        hidden = self.blocks(hidden, mask=self.causal_mask[:length, :length], src_key_padding_mask=item_ids == PAD)
        return self.final_norm(hidden)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden @ self.item_embedding.weight.T


def left_pad(sequences: Sequence[Sequence[int]], length: int) -> torch.Tensor:
    batch = torch.zeros(len(sequences), length, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        tail = list(sequence)[-length:]
        if tail:
            batch[row, length - len(tail) :] = torch.tensor(tail)
    return batch


def next_item_loss(model: SasRec, sequences: Sequence[Sequence[int]], max_length: int) -> torch.Tensor:
    """Cross-entropy of predicting each item from the items before it. The batch is padded to its own
    longest sequence and logits are computed at real positions only: most users are short, so this is
    several times cheaper than padding to max_length."""
    length = min(max_length + 1, max(len(seq) for seq in sequences))
    padded = left_pad(sequences, length)
    inputs, targets = padded[:, :-1], padded[:, 1:]
    valid = (targets != PAD) & (inputs != PAD)
    logits = model.logits(model(inputs)[valid])
    logits[:, PAD] = float("-inf")
    return nn.functional.cross_entropy(logits, targets[valid])


class SasRecRetriever:
    """A trained SASRec with its item vocabulary; ranks the whole catalogue for a history."""

    def __init__(self, model: SasRec, item_ids: list[str], max_length: int):
        self.model = model.eval()
        self.item_ids = item_ids
        self.index = {item: position + 1 for position, item in enumerate(item_ids)}
        self.max_length = max_length

    def encode(self, history: Sequence[str]) -> list[int]:
        return [self.index[item] for item in history if item in self.index]

    @torch.no_grad()
    def top_k(self, examples: Sequence[RankingExample], k: int, batch_size: int = 512) -> list[list[str]]:
        results: list[list[str]] = []
        for start in range(0, len(examples), batch_size):
            chunk = [self.encode(example.history) for example in examples[start : start + batch_size]]
            scores = self.model.logits(self.model(left_pad(chunk, self.max_length))[:, -1])
            scores[:, PAD] = float("-inf")
            for row, encoded in enumerate(chunk):
                scores[row, encoded] = float("-inf")
            best = scores.topk(k, dim=1).indices.tolist()
            results.extend([[self.item_ids[i - 1] for i in row] for row in best])
        return results

    def save(self, path: Path) -> None:
        torch.save({"state": self.model.state_dict(), "item_ids": self.item_ids}, path)


def train_sasrec(
    train_sequences: dict[str, list[str]], catalog: list[str], max_length: int, config: SasRecConfig, seed: int
) -> tuple[SasRecRetriever, list[float]]:
    """Train on the train split; returns the retriever and the mean loss of each epoch."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    item_ids = sorted(catalog)
    index = {item: position + 1 for position, item in enumerate(item_ids)}
    encoded = [[index[i] for i in seq] for seq in train_sequences.values() if len(seq) >= 2]
    model = SasRec(len(item_ids), max_length, config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    losses: list[float] = []
    progress = tqdm(range(config.epochs), desc="SASRec", unit="epoch")
    for _ in progress:
        model.train()
        order = torch.randperm(len(encoded), generator=generator).tolist()
        epoch_loss, started = 0.0, time.monotonic()
        for start in range(0, len(order), config.batch_size):
            batch = [encoded[i] for i in order[start : start + config.batch_size]]
            loss = next_item_loss(model, batch, max_length)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            epoch_loss += loss.item() * len(batch)
        losses.append(epoch_loss / len(encoded))
        progress.set_postfix(loss=f"{losses[-1]:.3f}", s_per_epoch=f"{time.monotonic() - started:.1f}")
    return SasRecRetriever(model, item_ids, max_length), losses
