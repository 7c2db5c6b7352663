"""Configuration of the re-ranker's training stages."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gr2.distributed import nodes_field, processes_field

DIRECT_BATCH = (
    "batch_size and prompts_per_step are global: each process takes its share of a batch and the gradients are "
    "summed, so the result does not depend on the number of processes."
)

STUDENT_TEACHER = "student"
MISSING_TEACHER = (
    "opd.teacher is not set: name the teacher checkpoint (a directory, gs://... or a hub id with the student's "
    f"tokenizer and SID tokens), or `{STUDENT_TEACHER}` in tests"
)


class RewardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["conditional", "naive"] = Field(
        "conditional",
        description="`conditional`: with rank `promotion`, the format bonus only when the held-out item moved "
        "up or was already first (GR2); with `auc` or `ndcg`, the technical report's Eq. 7 (no rank credit for "
        "echoing a shown order that is not optimal). `naive`: R_rank + alpha * R_fmt always (the "
        "reward-hacking ablation).",
    )
    rank: Literal["promotion", "auc", "ndcg"] = Field(
        "promotion",
        description="R_rank. `promotion`: (r_pre - r_new) / K of the held-out item (single-target data); `auc`: "
        "the share of (positive, negative) pairs in the right order; `ndcg`: graded NDCG of the whole list, "
        "gain 2^grade - 1. On slates every candidate's grade counts; on single-target data `auc` and `ndcg` see "
        "the target as the one positive (grade 1).",
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
    processes: int | None = processes_field()
    nodes: int = nodes_field()
    eval_examples: int = Field(64, ge=1, description="Validation examples (seeded sample) scored after training.")
    eval_max_new_tokens: int = Field(384, ge=32, description="Generation budget per validation answer.")
    eval_batch_size: int = Field(8, ge=1, description="Prompts per generation batch.")


class DapoConfig(BaseModel):
    """DAPO on TRL's GRPOTrainer (token-level loss, asymmetric clipping, no KL) plus dynamic sampling."""

    model_config = ConfigDict(extra="forbid")

    reward: RewardConfig = Field(default_factory=RewardConfig, description="The verifiable reward.")
    run_naive_ablation: bool = Field(
        False,
        description="Also train a second policy from the same SFT checkpoint under the naive reward "
        "(`dapo_naive`), to measure whether it learns to copy the incoming order.",
    )
    num_generations: int = Field(8, ge=2, description="Completions per prompt (G); the paper's range is 8-16.")
    prompts_per_step: int = Field(4, ge=1, description="Prompt groups per optimiser step.")
    max_steps: int = Field(50, ge=1, description="Optimiser steps.")
    learning_rate: float = Field(1e-6, gt=0, description="AdamW learning rate (the paper's neighbours: 5e-7..1e-6).")
    epsilon: float = Field(0.2, gt=0, description="Lower clip range of the importance ratio (eps_low).")
    epsilon_high: float = Field(0.28, gt=0, description="Upper clip range (eps_high > eps_low: clip-higher).")
    beta: float = Field(0.0, ge=0, description="KL coefficient; 0 as in DAPO, so no reference model is loaded.")
    temperature: float = Field(1.0, gt=0, description="Rollout sampling temperature.")
    max_completion_length: int = Field(512, ge=16, description="Token budget of one rollout.")
    mask_truncated_completions: bool = Field(
        True, description="Exclude rollouts cut at max_completion_length from the loss (DAPO's overlong filtering)."
    )
    min_group_reward_std: float = Field(
        1e-3,
        ge=0,
        description="Dynamic sampling: a group whose reward std is below this carries no signal and is dropped.",
    )
    max_generation_rounds: int = Field(
        8, ge=1, description="Dynamic sampling: rounds of over-generation per step before failing with an error."
    )
    constrained_rollouts: bool = Field(
        True,
        description="Sample rollouts with the serving decoder (free reasoning, then a ranking that can only be a "
        "permutation of the candidates). False: plain sampling as in the paper, where invalid answers earn the "
        "invalid penalty (and a small model may starve dynamic sampling).",
    )
    reasoning_tokens: int = Field(256, ge=0, description="Constrained rollouts: the reasoning budget in tokens.")
    use_vllm: bool = Field(
        False, description="Generate rollouts with vLLM in TRL's colocate mode (GPU image; unconstrained rollouts)."
    )
    save_steps: int = Field(10, ge=1, description="Checkpoint every this many steps (for resuming).")
    bf16: bool = Field(False, description="bfloat16 mixed precision (GPU presets).")
    gradient_checkpointing: bool = Field(False, description="Recompute activations to save memory.")
    processes: int | None = processes_field()
    nodes: int = nodes_field()
    deepspeed: str | dict | None = Field(None, description="DeepSpeed config (path or dict) on GPUs; None on CPU.")
    max_train_prompts: int | None = Field(None, ge=1, description="Use at most this many train examples.")
    eval_examples: int = Field(64, ge=1, description="Validation examples scored after training.")
    eval_max_new_tokens: int = Field(384, ge=32, description="Generation budget per validation answer.")
    eval_batch_size: int = Field(8, ge=1, description="Prompts per generation batch.")


class DirectSftConfig(BaseModel):
    """Direct SFT: the label logits of one prefill trained with a listwise loss (`gr2.train.direct`).

    The lower layers stay frozen: their activations for every training prompt are computed once and reused
    for every epoch, so only the top `trainable_layers` (and the final norm) cost compute per step."""

    model_config = ConfigDict(extra="forbid")

    start_from: Literal["base_model", "midtrain", "sft", "dapo"] = Field(
        "dapo",
        description="The stage whose model direct training starts from. `dapo` (a model trained with reasoning) "
        "makes direct training the report's CoT internalisation; `base_model`/`midtrain` skip reasoning.",
    )
    trainable_layers: int = Field(6, ge=1, description="Top decoder layers trained; the ones below are frozen.")
    views_per_example: int = Field(
        1,
        ge=1,
        description="Prompts per train example; with prompt.direct_shuffle each view shows the candidates in "
        "another seeded order (augmentation against label-position bias).",
    )
    max_train_examples: int | None = Field(None, ge=1, description="Use at most this many train examples.")
    epochs: float = Field(2.0, gt=0, description="Passes over the training views.")
    batch_size: int = Field(16, ge=1, description="Views per optimiser step (gradients accumulated one by one).")
    learning_rate: float = Field(1e-4, gt=0, description="Peak AdamW learning rate (cosine decay).")
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Share of steps with linear warm-up.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")
    pairwise_weight: float = Field(
        1.0,
        ge=0,
        description="Weight of the position-weighted pairwise (RankNet) term beside the cross-entropy on the "
        "target's label.",
    )
    save_steps: int = Field(50, ge=1, description="Checkpoint every this many steps (for resuming).")
    processes: int | None = processes_field(DIRECT_BATCH)
    nodes: int = nodes_field()
    eval_examples: int | None = Field(None, ge=1, description="Validation examples (None: all of them).")


class DirectDapoConfig(BaseModel):
    """DAPO without reasoning: G rankings per prompt sampled from the label scores (Plackett-Luce, all from
    one forward pass), GR2's verifiable reward, group-normalised advantages, clip-higher, dynamic sampling,
    no KL. Each of the K-1 placements of a ranking is one action of the token-level loss."""

    model_config = ConfigDict(extra="forbid")

    reward: RewardConfig = Field(default_factory=RewardConfig, description="The verifiable reward.")
    run_naive_ablation: bool = Field(False, description="Also train a policy under the naive reward.")
    trainable_layers: int = Field(6, ge=1, description="Top decoder layers trained; the ones below are frozen.")
    num_generations: int = Field(8, ge=2, description="Rankings sampled per prompt (G).")
    prompts_per_step: int = Field(16, ge=1, description="Prompt groups per optimiser step.")
    max_steps: int = Field(50, ge=1, description="Optimiser steps (rollout batches).")
    updates_per_batch: int = Field(
        2,
        ge=1,
        description="Gradient updates on each rollout batch (the importance ratio moves from 1 after the first).",
    )
    learning_rate: float = Field(1e-5, gt=0, description="AdamW learning rate.")
    epsilon: float = Field(0.2, gt=0, description="Lower clip range of the importance ratio (eps_low).")
    epsilon_high: float = Field(0.28, gt=0, description="Upper clip range (clip-higher).")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the label scores.")
    min_group_reward_std: float = Field(1e-3, ge=0, description="Dynamic sampling: groups below this are dropped.")
    max_generation_rounds: int = Field(8, ge=1, description="Dynamic sampling: rounds per step before failing.")
    max_train_examples: int | None = Field(None, ge=1, description="Use at most this many train examples.")
    save_steps: int = Field(10, ge=1, description="Checkpoint every this many steps (for resuming).")
    processes: int | None = processes_field(DIRECT_BATCH)
    nodes: int = nodes_field()
    eval_examples: int | None = Field(None, ge=1, description="Validation examples (None: all of them).")


class OpdConfig(BaseModel):
    """On-policy distillation (`gr2.train.opd`, the report's RL-OPD before DAPO): the student samples G
    completions per prompt, the frozen teacher gives the log-prob of every sampled token, and the loss is
    DAPO's clipped surrogate with the sequence reward plus kl_coef times the per-token reverse KL to the
    teacher (the report's Eq. 4). Teacher and student must share a tokenizer. As a pipeline stage (`enabled`)
    it runs between `sft` and `dapo`, on one process."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(
        False,
        description="Run the `opd` stage between `sft` and `dapo` (the report's RL-OPD order SFT -> OPD -> DAPO); "
        "DAPO and its naive ablation then start from the OPD policy. Needs `teacher`.",
    )
    teacher: str | None = Field(
        None,
        description="The teacher checkpoint: a local directory, a remote fsspec URI (gs://...) or a Hugging Face "
        "id, resolved like base_model.name. It must have the student's tokenizer, SID tokens included (a "
        f"teacher mid-trained with the same SID map); checked when it is loaded. `{STUDENT_TEACHER}`: a frozen "
        "copy of the stage's input model, so the KL term only holds the student near where it started (0 at the "
        "first step); for tests and the smoke preset, which have no teacher with the student's SID tokens.",
    )
    teacher_dtype: Literal["float32", "bfloat16", "auto"] = Field("auto", description="dtype the teacher loads in.")
    kl_coef: float = Field(
        1.0,
        ge=0,
        description="beta of Eq. 4, the weight of the per-token reverse KL to the teacher (OPEN in the report). "
        "1: the KL of a token and the unit-variance sequence advantage weigh alike; 0 is plain DAPO.",
    )
    reward: RewardConfig = Field(default_factory=RewardConfig, description="The verifiable sequence reward.")
    num_generations: int = Field(8, ge=2, description="Completions sampled per prompt (G).")
    prompts_per_step: int = Field(4, ge=1, description="Prompt groups per optimiser step.")
    max_steps: int = Field(50, ge=1, description="Optimiser steps (rollout batches).")
    updates_per_batch: int = Field(
        1,
        ge=1,
        description="Gradient updates on each rollout batch. With 1 the importance ratio is 1 and nothing is "
        "clipped (TRL's default); above 1 the later updates are off-policy and the clip applies.",
    )
    learning_rate: float = Field(1e-6, gt=0, description="AdamW learning rate (DAPO's published range 5e-7..1e-6).")
    max_completion_length: int = Field(
        512, ge=8, description="Token budget of one plainly sampled completion (constrained: see reasoning_tokens)."
    )
    temperature: float = Field(
        1.0,
        gt=0,
        description="Sampling temperature; student and teacher log-probs are both taken at it, so an identical "
        "teacher has KL 0 at any temperature.",
    )
    epsilon: float = Field(0.2, gt=0, description="Lower clip range of the importance ratio (eps_low).")
    epsilon_high: float = Field(0.28, gt=0, description="Upper clip range (clip-higher).")
    constrained_rollouts: bool = Field(
        False,
        description="Sample with the serving decoder (greedy reasoning, then a ranking that can only be a "
        "permutation) instead of plain sampling. Off by default: its tokens are not drawn from the student's "
        "distribution, so the sampled KL is then not an estimate of the student's reverse KL; on for a small "
        "student whose free answers are all invalid (flat rewards).",
    )
    reasoning_tokens: int = Field(256, ge=0, description="Constrained rollouts: the reasoning budget in tokens.")
    gradient_checkpointing: bool = Field(False, description="Recompute activations to save memory.")
    save_steps: int = Field(10, ge=1, description="Checkpoint every this many steps (for resuming).")
    max_train_prompts: int | None = Field(None, ge=1, description="Use at most this many train examples.")
    eval_examples: int = Field(64, ge=1, description="Validation examples scored after training.")
    eval_max_new_tokens: int = Field(384, ge=32, description="Generation budget per validation answer.")
    eval_batch_size: int = Field(8, ge=1, description="Prompts per generation batch.")

    @model_validator(mode="after")
    def _stage_has_a_teacher(self) -> OpdConfig:
        if self.enabled and self.teacher is None:
            raise ValueError(MISSING_TEACHER)
        return self
