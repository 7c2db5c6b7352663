"""Direct ranking: every candidate scored from one prefill, no sampling (FIRST, LlamaRec).

Two readouts (`PromptConfig.direct_readout`): `answer` scores a candidate by the logit of its label token at
the first answer position; the prompt labels the candidates with `PromptConfig.direct_labels` (one token
each, checked by `label_token_ids`). `candidate` scores it by the logit of `direct_score_token` at the end of
its own line, where the model has just read it against the history. With `direct_shuffle` the candidates are
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
from gr2.inputs import StageInputs
from gr2.lm.chat import render_prompt
from gr2.sid.sidmap import SidMap
from gr2.traces.collaborative import CollaborativeCounts
from gr2.traces.config import PromptConfig
from gr2.traces.prompt import DIRECT_CANDIDATES_HEADER, build_messages


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
class PromptContext:
    """What a direct prompt is built from besides the request: the items' text, their SIDs, the prompt
    settings, and the collaborative counts when `config.direct_evidence` writes them."""

    catalog: dict[str, Item]
    sids: SidMap
    config: PromptConfig
    evidence: CollaborativeCounts | None = None

    def __post_init__(self) -> None:
        if self.config.direct_evidence and self.evidence is None:
            raise ValueError("prompt.direct_evidence is on but no collaborative counts were given to the prompt")


def stage_prompt_context(inputs: StageInputs, config: PromptConfig) -> PromptContext:
    """A pipeline stage's prompt context: collaborative counts from the train split when the prompt shows them."""
    train = inputs.split.train_sequences()
    evidence = CollaborativeCounts.from_sequences(train) if config.direct_evidence else None
    return PromptContext(inputs.catalog, inputs.sids, config, evidence)


def head_token_ids(tokenizer, config: PromptConfig) -> list[int]:
    """The tokens whose logits are the scores: the labels (`answer` readout) or the score token."""
    labels = label_token_ids(tokenizer, config.direct_labels)
    return labels if config.direct_readout == "answer" else label_token_ids(tokenizer, [config.direct_score_token])


@dataclass(frozen=True)
class DirectPrompt:
    text: str
    shown: tuple[int, ...]  # incoming index of the candidate under each label
    token_ids: tuple[int, ...]  # what the model reads: `text` tokenized once, up to the last readout position
    positions: tuple[int, ...] | None = None  # `candidate` readout: token index ending each candidate line

    def scores(self, hidden: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
        """Per-label scores from this prompt's final hidden states (T, hidden), T its own length."""
        if self.positions is None:
            return hidden[-1] @ head.T
        return hidden[list(self.positions)] @ head[0]

    def incoming_order(self, label_scores: torch.Tensor) -> torch.Tensor:
        """Per-label scores (len >= shown) -> per-candidate scores in the incoming order."""
        scores = label_scores.new_empty(len(self.shown))
        scores[list(self.shown)] = label_scores[: len(self.shown)]
        return scores


def candidate_notes(
    history: Sequence[str],
    candidates: Sequence[str],
    shown: Sequence[int],
    config: PromptConfig,
    evidence: CollaborativeCounts | None,
) -> list[str]:
    """What the prompt writes beside each shown candidate: its upstream rank and collaborative evidence."""
    notes = []
    for index in shown:
        parts = [f"upstream rank {index + 1}"] if config.direct_show_ranks else []
        if config.direct_evidence:
            parts.append(evidence.note(history, candidates[index]))
        notes.append("; ".join(parts))
    return notes


def line_end_positions(encoding, text: str, lines: int) -> tuple[int, ...]:
    """Token index of the last character of each of the `lines` candidate lines in a rendered prompt
    (`encoding`: the tokenizer's output for `text`, with its character offsets)."""
    header = f"\n{DIRECT_CANDIDATES_HEADER}\n"
    start = text.rindex(header) + len(header)
    ends = []
    for _ in range(lines):
        end = text.index("\n", start)
        ends.append(end - 1)
        start = end + 1
    return tuple(encoding.char_to_token(char) for char in ends)


def direct_prompt(
    tokenizer, history: Sequence[str], candidates: Sequence[str], context: PromptContext, salt: int = 0
) -> DirectPrompt:
    config = context.config
    shown = shown_order(candidates, config.direct_shuffle, salt)
    notes = candidate_notes(history, candidates, shown, config, context.evidence)
    system, user = build_messages(
        history, [candidates[i] for i in shown], context.catalog, context.sids, config, mode="direct", notes=notes
    )
    text = render_prompt(tokenizer, system["content"], user["content"])
    encoding = tokenizer(text, add_special_tokens=False)
    token_ids = encoding["input_ids"]
    positions = None
    if config.direct_readout == "candidate":
        positions = line_end_positions(encoding, text, len(shown))
        # attention is causal, so the tokens after the last line end (the task line, the assistant header: 12 of
        # about 280 in beauty-cpu) cannot change a score; the model does not read them
        token_ids = token_ids[: positions[-1] + 1]
    return DirectPrompt(text, shown, tuple(token_ids), positions)


def label_head(model, label_ids: Sequence[int]) -> torch.Tensor:
    """The output-embedding rows of the label tokens: (labels, hidden)."""
    return model.get_output_embeddings().weight[list(label_ids)]


@torch.no_grad()
def label_logits(model, tokenizer, prompts: Sequence[DirectPrompt], head_ids: Sequence[int]) -> list[torch.Tensor]:
    """Per prompt, the per-label scores of one batched prefill. Only the readout positions are projected,
    and only onto the head tokens (the full vocabulary head would cost as much as several layers)."""
    tokenizer.padding_side = "left"
    batch = tokenizer.pad({"input_ids": [list(p.token_ids) for p in prompts]}, return_tensors="pt").to(model.device)
    positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
    hidden = model.get_decoder()(**batch, position_ids=positions).last_hidden_state
    head = label_head(model, head_ids)
    lengths = batch["attention_mask"].sum(-1).tolist()
    return [p.scores(h[h.shape[0] - n :], head).float() for p, h, n in zip(prompts, hidden, lengths, strict=True)]


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
    context: PromptContext
    batch_size: int = 8

    def __post_init__(self) -> None:
        self.head_ids = head_token_ids(self.tokenizer, self.context.config)

    def prompt(self, history: Sequence[str], candidates: Sequence[str]) -> DirectPrompt:
        return direct_prompt(self.tokenizer, history, candidates, self.context)

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
            logits = label_logits(self.model, self.tokenizer, chunk, self.head_ids)
            scores.extend(p.incoming_order(row) for p, row in zip(chunk, logits, strict=True))
        return scores
