"""Direct ranking: every candidate scored by the logit of its label token at the first answer position.

One prefill per request, no sampling (FIRST, LlamaRec). The prompt labels the candidates with
`PromptConfig.direct_labels` (one token each, checked by `label_token_ids`); with `direct_shuffle` they are
shown in an order seeded by the candidate list, so a label carries no position. Scores are returned in the
incoming order of the candidates, and may be fused with the incoming order's prior (`fused_scores`).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from gr2.data.schema import Item
from gr2.lm.chat import render_prompt
from gr2.sid.sidmap import SidMap
from gr2.traces.config import PromptConfig
from gr2.traces.prompt import build_messages


class LabelTokenError(ValueError):
    """A direct label is not exactly one token of the model's tokenizer."""


def label_token_ids(tokenizer, labels: Sequence[str]) -> list[int]:
    """The token id of each label as the first answer token; refuses labels that are not one token."""
    ids = []
    for label in labels:
        tokens = tokenizer.encode(label, add_special_tokens=False)
        if len(tokens) != 1:
            raise LabelTokenError(
                f"direct label {label!r} is {len(tokens)} tokens {tokens} of this tokenizer; every label in "
                "prompt.direct_labels must be exactly one token"
            )
        ids.append(tokens[0])
    if len(set(ids)) != len(ids):
        raise LabelTokenError(f"prompt.direct_labels {list(labels)} map to repeated tokens {ids}")
    return ids


def shown_order(candidates: Sequence[str], shuffle: bool, salt: int = 0) -> tuple[int, ...]:
    """Incoming indices of the candidates in the order the prompt shows them; a shuffle is seeded by the
    candidate list (and `salt`, for training-time augmentation), so one request always reads the same."""
    order = list(range(len(candidates)))
    if shuffle:
        seed = zlib.crc32(("\x1f".join(candidates) + f"\x1e{salt}").encode())
        random.Random(seed).shuffle(order)
    return tuple(order)


@dataclass(frozen=True)
class DirectPrompt:
    text: str
    shown: tuple[int, ...]  # incoming index of the candidate under each label

    def incoming_order(self, label_scores: torch.Tensor) -> torch.Tensor:
        """Per-label scores (len >= shown) -> per-candidate scores in the incoming order."""
        scores = label_scores.new_empty(len(self.shown))
        scores[list(self.shown)] = label_scores[: len(self.shown)]
        return scores


def direct_prompt(
    tokenizer,
    history: Sequence[str],
    candidates: Sequence[str],
    catalog: dict[str, Item],
    sids: SidMap,
    config: PromptConfig,
    salt: int = 0,
) -> DirectPrompt:
    shown = shown_order(candidates, config.direct_shuffle, salt)
    ranks = [index + 1 for index in shown] if config.direct_show_ranks else None
    system, user = build_messages(
        history, [candidates[i] for i in shown], catalog, sids, config, mode="direct", incoming_ranks=ranks
    )
    return DirectPrompt(render_prompt(tokenizer, system["content"], user["content"]), shown)


def label_head(model, label_ids: Sequence[int]) -> torch.Tensor:
    """The output-embedding rows of the label tokens: (labels, hidden)."""
    return model.get_output_embeddings().weight[list(label_ids)]


@torch.no_grad()
def label_logits(model, tokenizer, texts: Sequence[str], label_ids: Sequence[int]) -> torch.Tensor:
    """(len(texts), labels) logits of the label tokens after each rendered prompt. Only the last position
    is projected, and only onto the labels (the full vocabulary head would cost as much as several layers)."""
    tokenizer.padding_side = "left"
    batch = tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    hidden = model.get_decoder()(**batch, position_ids=positions).last_hidden_state[:, -1]
    return (hidden @ label_head(model, label_ids).T).float()


def incoming_prior(k: int) -> torch.Tensor:
    """A strictly decreasing prior over incoming ranks 1..k: -ln(rank)."""
    return -torch.log(torch.arange(1, k + 1, dtype=torch.float32))


def fused_scores(scores: torch.Tensor, fusion_lambda: float) -> torch.Tensor:
    """Model log-probabilities over the candidates plus lambda * incoming prior (incoming order, last dim).
    Lambda 0 is the model alone; a large lambda gives back the incoming order."""
    return scores.log_softmax(-1) + fusion_lambda * incoming_prior(scores.shape[-1])


def ranking_from_scores(candidates: Sequence[str], scores: torch.Tensor) -> tuple[str, ...]:
    """Candidates by descending score; ties keep the incoming order."""
    order = sorted(range(len(candidates)), key=lambda i: (-float(scores[i]), i))
    return tuple(candidates[i] for i in order)


@dataclass
class DirectScorer:
    """Scores requests with a model in direct mode, batched."""

    model: object
    tokenizer: object
    catalog: dict[str, Item]
    sids: SidMap
    config: PromptConfig
    batch_size: int = 8

    def __post_init__(self) -> None:
        self.label_ids = label_token_ids(self.tokenizer, self.config.direct_labels)

    def prompt(self, history: Sequence[str], candidates: Sequence[str]) -> DirectPrompt:
        return direct_prompt(self.tokenizer, history, candidates, self.catalog, self.sids, self.config)

    def score(
        self, requests: Sequence[tuple[Sequence[str], Sequence[str]]], progress: bool = False
    ) -> list[torch.Tensor]:
        """Per request (history, candidates): the candidates' scores in the incoming order."""
        self.model.eval()
        prompts = [self.prompt(history, candidates) for history, candidates in requests]
        scores: list[torch.Tensor] = []
        starts = range(0, len(prompts), self.batch_size)
        for start in tqdm(starts, desc="direct scores", unit="batch", disable=not progress):
            chunk = prompts[start : start + self.batch_size]
            logits = label_logits(self.model, self.tokenizer, [p.text for p in chunk], self.label_ids)
            scores.extend(p.incoming_order(row) for p, row in zip(chunk, logits, strict=True))
        return scores
