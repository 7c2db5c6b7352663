"""Stage 2, part 2: SFT on accepted traces with the decoupled loss

    L = lambda_r * NLL(reasoning tokens) + lambda_o * NLL(ranking tokens),

each NLL a mean over its own tokens of the assistant turn (the prompt is never a target). The ranking
span starts at the answer's `"recommendations"` key; everything of the answer before it is reasoning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional
from transformers import Trainer, TrainingArguments, set_seed

from gr2.lm.chat import IGNORE_INDEX, common_prefix_length, pad_sequences
from gr2.lm.training import checkpoint_step, final_loss, last_checkpoint, shared_training_arguments
from gr2.train.config import SftConfig

PROMPT, REASONING, RANKING = 0, 1, 2
RANKING_KEY = '"recommendations"'


def span_nll_sums(logits: torch.Tensor, labels: torch.Tensor, spans: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed token NLL and token count of the reasoning and of the ranking span (two 2-vectors) of a batch:
    logits (B, T, V), labels and spans (B, T), unshifted."""
    token_nll = functional.cross_entropy(
        logits[:, :-1].flatten(0, 1).float(), labels[:, 1:].flatten(), ignore_index=IGNORE_INDEX, reduction="none"
    )
    target_spans = spans[:, 1:].flatten()
    masks = torch.stack([target_spans == REASONING, target_spans == RANKING]).float()
    return masks @ token_nll, masks.sum(dim=1)


def weighted_span_means(
    sums: torch.Tensor, counts: torch.Tensor, lambda_reasoning: float, lambda_ranking: float
) -> torch.Tensor:
    """lambda_r * reasoning mean + lambda_o * ranking mean; a span without tokens adds nothing."""
    weights = sums.new_tensor([lambda_reasoning, lambda_ranking])
    return (weights * sums / counts.clamp(min=1)).sum()


def decoupled_nll(
    logits: torch.Tensor, labels: torch.Tensor, spans: torch.Tensor, lambda_reasoning: float, lambda_ranking: float
) -> torch.Tensor:
    """The decoupled loss of a batch: logits (B, T, V), labels and spans (B, T), unshifted."""
    return weighted_span_means(*span_nll_sums(logits, labels, spans), lambda_reasoning, lambda_ranking)


@dataclass(frozen=True)
class EncodedTrace:
    input_ids: list[int]
    labels: list[int]
    spans: list[int]


def render(tokenizer, messages: list[dict[str, str]], answer: str | None) -> str:
    turns = messages if answer is None else [*messages, {"role": "assistant", "content": answer}]
    return tokenizer.apply_chat_template(
        turns, add_generation_prompt=answer is None, tokenize=False, enable_thinking=False
    )


def encode_trace(tokenizer, messages: list[dict[str, str]], answer: str) -> EncodedTrace:
    """Token ids, labels (answer only) and the span of each token (prompt, reasoning, ranking)."""
    full = render(tokenizer, messages, answer)
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    prompt_ids = tokenizer(render(tokenizer, messages, None), add_special_tokens=False)["input_ids"]
    answer_start = common_prefix_length(prompt_ids, ids)
    ranking_char = full.rfind(RANKING_KEY)
    if ranking_char == -1:
        raise ValueError("trace answer has no 'recommendations' key; only parsed, accepted traces are trainable")
    spans = [
        PROMPT if t < answer_start else (RANKING if offsets[t][0] >= ranking_char else REASONING)
        for t in range(len(ids))
    ]
    labels = [IGNORE_INDEX if span == PROMPT else token for token, span in zip(ids, spans, strict=True)]
    return EncodedTrace(ids, labels, spans)


class TraceCollator:
    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        ids = [f["input_ids"] for f in features]
        return {
            "input_ids": pad_sequences(ids, self.pad_token_id),
            "attention_mask": pad_sequences([[1] * len(i) for i in ids], 0),
            "labels": pad_sequences([f["labels"] for f in features], IGNORE_INDEX),
            "spans": pad_sequences([f["spans"] for f in features], PROMPT),
        }


class DecoupledLossTrainer(Trainer):
    """The decoupled loss with each span's mean taken over the micro-batch of the whole world (every process's
    share), so N processes of B traces train as one process of N x B. It is one mean per micro-batch, so the
    Trainer averages over gradient accumulation (`model_accepts_loss_kwargs` off: it would otherwise sum)."""

    def __init__(self, *args, lambda_reasoning: float, lambda_ranking: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.lambda_reasoning = lambda_reasoning
        self.lambda_ranking = lambda_ranking
        self.model_accepts_loss_kwargs = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        labels, spans = inputs.pop("labels"), inputs.pop("spans")
        outputs = model(**inputs)
        sums, counts = span_nll_sums(outputs.logits, labels, spans)
        world = self.accelerator.num_processes
        if world > 1:  # DDP averages the processes' gradients: scale back to the world's sum over its counts
            counts = self.accelerator.reduce(counts, reduction="sum")
        loss = world * weighted_span_means(sums, counts, self.lambda_reasoning, self.lambda_ranking)
        return (loss, outputs) if return_outputs else loss


def sft_arguments(config: SftConfig, checkpoint_dir: Path, seed: int) -> TrainingArguments:
    return TrainingArguments(
        **shared_training_arguments(config, checkpoint_dir, seed),
        num_train_epochs=config.num_train_epochs,
        warmup_steps=config.warmup_ratio,
        lr_scheduler_type="cosine",
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        logging_steps=1,
    )


def encode_traces(tokenizer, traces: list[dict], max_length: int) -> tuple[list[dict], int]:
    """Encoded accepted traces, and how many were dropped for exceeding max_length."""
    encoded = [encode_trace(tokenizer, t["messages"], t["answer"]) for t in traces]
    kept = [e for e in encoded if len(e.input_ids) <= max_length]
    rows = [{"input_ids": e.input_ids, "labels": e.labels, "spans": e.spans} for e in kept]
    return rows, len(encoded) - len(kept)


def train_sft(
    model, tokenizer, traces: list[dict], config: SftConfig, seed: int, checkpoint_dir: Path
) -> tuple[Trainer, dict[str, float]]:
    """Fine-tune `model` in place on accepted traces; resumes from the latest checkpoint in checkpoint_dir."""
    set_seed(seed)
    dataset, dropped = encode_traces(tokenizer, traces, config.max_length)
    if not dataset:
        raise ValueError(f"SFT: none of {len(traces)} traces fits max_length={config.max_length} tokens")
    trainer = DecoupledLossTrainer(
        model=model,
        args=sft_arguments(config, checkpoint_dir, seed),
        train_dataset=dataset,
        data_collator=TraceCollator(tokenizer.pad_token_id),
        lambda_reasoning=config.lambda_reasoning,
        lambda_ranking=config.lambda_ranking,
    )
    resume = last_checkpoint(checkpoint_dir)
    result = trainer.train(resume_from_checkpoint=resume)
    metrics = {
        "train_traces": len(dataset),
        "traces_dropped_too_long": dropped,
        "train_seconds": result.metrics["train_runtime"],
        "train_steps": trainer.state.global_step,
        "resumed_from_step": checkpoint_step(resume),
        "final_loss": final_loss(trainer, result.training_loss),
        "mean_tokens_per_trace": sum(len(r["input_ids"]) for r in dataset) / len(dataset),
    }
    return trainer, metrics
