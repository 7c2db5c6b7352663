"""Configuration of the re-ranker's training stages."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RewardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["conditional", "naive"] = Field(
        "conditional",
        description="`conditional`: the format bonus only when the held-out item moved up or was already "
        "first (GR2); `naive`: R_rank + alpha * R_fmt always (the reward-hacking ablation).",
    )
    alpha: float = Field(0.2, ge=0.0, description="Weight of the format reward.")
    invalid_penalty: float = Field(-1.0, le=0.0, description="Reward of an output that does not parse.")
    overlong_max_tokens: int = Field(512, ge=8, description="DAPO soft overlong penalty: the length budget.")
    overlong_cache_tokens: int = Field(
        64, ge=0, description="DAPO soft overlong penalty: the last this many tokens of the budget ramp to -1."
    )


class SftConfig(BaseModel):
    """Supervised fine-tuning on accepted teacher traces with GR2's decoupled loss."""

    model_config = ConfigDict(extra="forbid")

    lambda_reasoning: float = Field(
        0.5,
        ge=0.0,
        description="Weight of the NLL over the explanation tokens. Below lambda_ranking: the ranking is what "
        "is verified; the reasoning only has to be plausible, and a teacher's (here, partly templated) wording "
        "should not dominate the gradient.",
    )
    lambda_ranking: float = Field(1.0, ge=0.0, description="Weight of the NLL over the ranking tokens.")
    max_length: int = Field(1024, ge=64, description="Longest training sequence; longer traces are dropped.")
    num_train_epochs: float = Field(2.0, gt=0, description="Passes over the accepted traces.")
    max_steps: int = Field(-1, description="If positive, the number of optimiser steps; overrides epochs.")
    learning_rate: float = Field(5e-5, gt=0, description="Peak AdamW learning rate.")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps with linear warm-up.")
    per_device_train_batch_size: int = Field(4, ge=1, description="Traces per device per micro-batch.")
    gradient_accumulation_steps: int = Field(1, ge=1, description="Micro-batches per optimiser step.")
    save_steps: int = Field(50, ge=1, description="Checkpoint every this many steps (for resuming).")
    deepspeed: str | dict | None = Field(None, description="DeepSpeed config (path or dict) on GPUs; None on CPU.")
    bf16: bool = Field(False, description="bfloat16 mixed precision (GPU presets).")
    gradient_checkpointing: bool = Field(False, description="Recompute activations to save memory.")
    eval_examples: int = Field(64, ge=1, description="Validation examples (seeded sample) scored after training.")
    eval_max_new_tokens: int = Field(384, ge=32, description="Generation budget per validation answer.")
    eval_batch_size: int = Field(8, ge=1, description="Prompts per generation batch.")
