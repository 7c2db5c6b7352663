"""Stage 3: DAPO with GR2's conditional verifiable reward, on TRL's GRPOTrainer.

TRL provides the DAPO loss (`loss_type="dapo"`: token-level over the batch), asymmetric clipping and
beta = 0. It has no dynamic sampling, so this module adds it as a thin layer: over-generate, drop the
groups whose rewards are all (nearly) equal, keep generating for fresh prompts until the step's groups
are full, and fail with `DynamicSamplingStarvation` after `max_generation_rounds`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean, pstdev

import torch
from trl import GRPOConfig, GRPOTrainer

from gr2.data.schema import Item
from gr2.lm.training import checkpoint_step, last_checkpoint, shared_training_arguments
from gr2.prerank.candidates import RerankExample
from gr2.sid.sidmap import SidMap
from gr2.traces.config import PromptConfig
from gr2.traces.prompt import build_messages
from gr2.train.config import DapoConfig, RewardConfig
from gr2.train.rewards import score_completion, soft_overlong_penalty
from gr2.train.rollouts import ConstrainedRollout

Batch = dict[str, torch.Tensor]


class DynamicSamplingStarvation(RuntimeError):
    """Every generation round produced groups with equal rewards: there is nothing to learn from."""


def group_reward_std(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    return rewards.view(-1, group_size).std(dim=1, unbiased=False)


def informative_groups(rewards: torch.Tensor, group_size: int, min_std: float) -> list[int]:
    """Indices of the groups whose rewards differ (std at least min_std), in order."""
    return torch.nonzero(group_reward_std(rewards, group_size) >= min_std).flatten().tolist()


def select_groups(batch: Batch, groups: Sequence[int], group_size: int) -> Batch:
    rows = torch.tensor([g * group_size + i for g in groups for i in range(group_size)], dtype=torch.long)
    return {key: value.index_select(0, rows) if is_per_row(value) else value for key, value in batch.items()}


def is_per_row(value) -> bool:
    return isinstance(value, torch.Tensor) and value.dim() >= 1


def pad_width(tensor: torch.Tensor, width: int, left: bool) -> torch.Tensor:
    missing = width - tensor.shape[1]
    if missing <= 0:
        return tensor
    padding = tensor.new_zeros((tensor.shape[0], missing, *tensor.shape[2:]))
    return torch.cat([padding, tensor] if left else [tensor, padding], dim=1)


def concat_batches(batches: Sequence[Batch]) -> Batch:
    """Row-wise concatenation; prompts are left-padded and completions right-padded to a common width,
    and `num_items_in_batch` (DAPO's token normaliser) is recounted from the completion masks."""
    merged: Batch = {}
    for key in batches[0]:
        values = [b[key] for b in batches]
        if not is_per_row(values[0]):
            continue
        if values[0].dim() >= 2:
            width = max(v.shape[1] for v in values)
            values = [pad_width(v, width, left=key.startswith("prompt")) for v in values]
        merged[key] = torch.cat(values, dim=0)
    if "num_items_in_batch" in batches[0]:
        merged["num_items_in_batch"] = merged["completion_mask"].sum()
    return merged


@dataclass
class DynamicSamplingStats:
    rounds: int = 0
    groups_generated: int = 0
    groups_dropped: int = 0

    @property
    def dropped_share(self) -> float:
        return self.groups_dropped / self.groups_generated if self.groups_generated else 0.0


def fill_with_informative_groups(
    generate: Callable[[int], tuple[Batch, torch.Tensor]],
    groups_needed: int,
    group_size: int,
    min_std: float,
    max_rounds: int,
    most_missing_of_all_ranks: Callable[[int], int] = lambda missing: missing,
) -> tuple[Batch, DynamicSamplingStats]:
    """Call `generate(n_groups)` -> (batch, per-row rewards) until `groups_needed` informative groups are
    collected; returns exactly that many groups.

    With several processes generation gathers across them, so every rank generates in every round, as many
    groups as the rank missing the most (`most_missing_of_all_ranks`), until none misses any."""
    stats, kept, have = DynamicSamplingStats(), [], 0
    while (missing := most_missing_of_all_ranks(groups_needed - have)) > 0:
        if stats.rounds == max_rounds:
            raise DynamicSamplingStarvation(
                f"dynamic sampling: only {have} of {groups_needed} groups had differing rewards after "
                f"{max_rounds} generation rounds ({stats.groups_dropped} of {stats.groups_generated} groups "
                f"dropped); raise max_generation_rounds or the sampling temperature, or check the reward"
            )
        batch, rewards = generate(missing)
        stats.rounds += 1
        generated = rewards.numel() // group_size
        useful = informative_groups(rewards, group_size, min_std)[: groups_needed - have]
        stats.groups_generated += generated
        stats.groups_dropped += generated - len(informative_groups(rewards, group_size, min_std))
        if useful:
            kept.append(select_groups(batch, useful, group_size))
            have += len(useful)
    return concat_batches(kept), stats


@dataclass
class RerankReward:
    """TRL reward function: GR2's verifiable reward plus DAPO's soft overlong penalty, remembering the
    last call's totals so the dynamic-sampling layer can see the groups' rewards."""

    sids: SidMap
    config: RewardConfig
    last_totals: list[float] = field(default_factory=list)
    __name__: str = "gr2_reward"

    def __call__(self, prompts, completions, completion_ids, candidates, target, grades, log_metric=None, **kwargs):
        scores, penalties = [], []
        rows = zip(completions, completion_ids, candidates, target, grades, strict=True)
        for completion, ids, cands, tgt, graded in rows:
            text = completion[0]["content"] if isinstance(completion, list) else completion
            example = RerankExample("train", "", (), tuple(cands), tgt, None if graded is None else tuple(graded))
            scores.append(score_completion(text, example, self.sids, self.config))
            penalties.append(
                soft_overlong_penalty(len(ids), self.config.overlong_max_tokens, self.config.overlong_cache_tokens)
            )
        self.last_totals = [score.total + penalty for score, penalty in zip(scores, penalties, strict=True)]
        if log_metric is not None:
            log_reward_components(log_metric, scores, penalties)
        return self.last_totals


def log_reward_components(log_metric: Callable[[str, float], None], scores, penalties: list[float]) -> None:
    """Per-step means (and stds of the reward parts) of what the reward saw, logged under `gr2/`."""
    log_metric("gr2/valid_share", mean(s.valid for s in scores))
    log_metric("gr2/order_copy_rate", mean(s.order_copy for s in scores))
    parts = {
        "rank_reward": [s.rank for s in scores],
        "format_bonus": [s.format_bonus for s in scores],
        "invalid_penalty": [0.0 if s.valid else s.total for s in scores],
        "overlong_penalty": penalties,
    }
    for name, values in parts.items():
        log_metric(f"gr2/{name}_mean", mean(values))
        log_metric(f"gr2/{name}_std", pstdev(values))


class DynamicSamplingGRPOTrainer(GRPOTrainer):
    """GRPOTrainer whose training batches hold only groups with differing rewards (DAPO's dynamic sampling)."""

    def __init__(
        self,
        *args,
        reward: RerankReward,
        prompt_pool: list[dict],
        min_group_reward_std: float,
        max_generation_rounds: int,
        seed: int,
        **kwargs,
    ):
        super().__init__(*args, reward_funcs=[reward], **kwargs)
        self.gr2_reward = reward
        self.prompt_pool = prompt_pool
        self.min_group_reward_std = min_group_reward_std
        self.max_generation_rounds = max_generation_rounds
        self.refill_rng = random.Random(seed + self.accelerator.process_index)  # each rank its own prompts

    def most_missing_of_all_ranks(self, missing: int) -> int:
        return int(self.accelerator.gather(torch.tensor([missing], device=self.accelerator.device)).max())

    def fresh_inputs(self, groups: int) -> list[dict]:
        rows = self.refill_rng.sample(self.prompt_pool, min(groups, len(self.prompt_pool)))
        return [row for row in rows for _ in range(self.num_generations)]

    def _generate_and_score_completions(self, inputs):
        if not self.model.training:
            return super()._generate_and_score_completions(inputs)
        group_size = self.num_generations

        def generate(groups: int) -> tuple[Batch, torch.Tensor]:
            rows = inputs if generate.first else self.fresh_inputs(groups)
            generate.first = False
            batch = super(DynamicSamplingGRPOTrainer, self)._generate_and_score_completions(rows)
            return batch, torch.tensor(self.gr2_reward.last_totals)

        generate.first = True
        batch, stats = fill_with_informative_groups(
            generate,
            len(inputs) // group_size,
            group_size,
            self.min_group_reward_std,
            self.max_generation_rounds,
            self.most_missing_of_all_ranks,
        )
        if "num_items_in_batch" in batch:  # DAPO's normaliser: the completion tokens of the whole world
            batch["num_items_in_batch"] = self.accelerator.gather(batch["num_items_in_batch"].reshape(1)).sum()
        self._metrics["train"]["dynamic_sampling/dropped_group_share"].append(stats.dropped_share)
        self._metrics["train"]["dynamic_sampling/rounds"].append(stats.rounds)
        return batch


def prompt_rows(
    examples: Sequence[RerankExample], catalog: dict[str, Item], sids: SidMap, prompt: PromptConfig
) -> list[dict]:
    """GRPO dataset rows: the conversational prompt plus what the reward needs to verify an answer."""
    return [
        {
            "prompt": build_messages(e.history, e.candidates, catalog, sids, prompt),
            "candidates": list(e.candidates),
            "target": e.target,
            "grades": None if e.grades is None else list(e.grades),
        }
        for e in examples
    ]


def grpo_arguments(config: DapoConfig, checkpoint_dir: Path, seed: int) -> GRPOConfig:
    return GRPOConfig(
        **shared_training_arguments(config, checkpoint_dir, seed),
        loss_type="dapo",
        epsilon=config.epsilon,
        epsilon_high=config.epsilon_high,
        beta=config.beta,
        num_generations=config.num_generations,
        per_device_train_batch_size=config.num_generations * config.prompts_per_step,
        gradient_accumulation_steps=1,
        temperature=config.temperature,
        max_completion_length=config.max_completion_length,
        mask_truncated_completions=config.mask_truncated_completions,
        scale_rewards="group",
        use_vllm=config.use_vllm,
        vllm_mode="colocate",
        logging_steps=1,
        chat_template_kwargs={"enable_thinking": False},
    )


def train_dapo(
    model,
    tokenizer,
    examples: Sequence[RerankExample],
    inputs_catalog: dict[str, Item],
    sids: SidMap,
    prompt: PromptConfig,
    config: DapoConfig,
    reward_config: RewardConfig,
    seed: int,
    checkpoint_dir: Path,
) -> tuple[DynamicSamplingGRPOTrainer, dict[str, float]]:
    """Train `model` in place with DAPO; resumes from the latest checkpoint in checkpoint_dir."""
    from datasets import Dataset

    rows = prompt_rows(examples, inputs_catalog, sids, prompt)
    reward = RerankReward(sids, reward_config)
    rollout = None
    if config.constrained_rollouts:
        by_prompt = {row["prompt"][-1]["content"]: tuple(row["candidates"]) for row in rows}
        rollout = ConstrainedRollout(sids, by_prompt, config.reasoning_tokens, config.temperature)
    trainer = DynamicSamplingGRPOTrainer(
        model=model,
        args=grpo_arguments(config, checkpoint_dir, seed),
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        reward=reward,
        prompt_pool=rows,
        min_group_reward_std=config.min_group_reward_std,
        max_generation_rounds=config.max_generation_rounds,
        seed=seed,
        rollout_func=rollout,
    )
    resume = last_checkpoint(checkpoint_dir)
    result = trainer.train(resume_from_checkpoint=resume)
    return trainer, {
        "train_prompts": len(rows),
        "train_seconds": result.metrics["train_runtime"],
        "train_steps": trainer.state.global_step,
        "resumed_from_step": checkpoint_step(resume),
    }


def training_curve(log_history: list[dict]) -> list[dict]:
    """Per-step rows of what DAPO logged: reward, valid share, order-copy rate, lengths, clipping."""
    keys = (
        "reward",
        "reward_std",
        "gr2/valid_share",
        "gr2/order_copy_rate",
        "gr2/rank_reward_mean",
        "gr2/rank_reward_std",
        "gr2/format_bonus_mean",
        "gr2/format_bonus_std",
        "gr2/invalid_penalty_mean",
        "gr2/overlong_penalty_mean",
        "completions/mean_length",
        "clip_ratio/region_mean",
        "clip_ratio/high_mean",
        "clip_ratio/low_mean",
        "dynamic_sampling/dropped_group_share",
        "loss",
    )
    return [{"step": e["step"], **{k: e[k] for k in keys if k in e}} for e in log_history if "reward" in e]
