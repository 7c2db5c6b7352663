"""Direct SFT and direct DAPO: training the label logits of one prefill (`gr2.rank.direct`).

Both freeze the lower decoder layers and compute their activations for every training prompt once
(`FrozenLowerLayers`); each step then runs only the top layers. On a CPU this is what makes several passes
over all training examples affordable; on a GPU it is simply cheaper. Checkpoints hold the trainable
parameters, the optimiser and the step, so an interrupted stage resumes where it stopped.

Under torchrun (`processes` > 1) the views are sharded over the ranks (`ProcessWorld`): each rank computes
the frozen activations and the gradients of its own views of every batch (or its share of the rollout
groups), the gradients are summed, and every rank takes the same step; rank 0 alone writes checkpoints.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import mean, pstdev

import torch
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup, set_seed

from gr2.distributed.collective import SINGLE_PROCESS, ProcessWorld
from gr2.prerank.candidates import RerankExample
from gr2.rank.direct import DirectPrompt, PromptContext, direct_prompt, head_token_ids
from gr2.rank.frozen import FrozenLowerLayers, cached_lower_states
from gr2.train.checkpoint import resume_checkpoint, save_checkpoint, trainable_parameters
from gr2.train.config import DirectDapoConfig, DirectSftConfig
from gr2.train.direct_losses import (
    clipped_surrogate,
    group_advantages,
    listwise_loss,
    plackett_luce_log_probs,
    sample_plackett_luce,
)
from gr2.train.rewards import RewardBreakdown, score_ranking


@dataclass(frozen=True)
class TrainView:
    """One training prompt: an example shown in one candidate order, with the frozen layers' output.
    `index`: its place among all the views of the training set (the rank that owns it: `ProcessWorld.owns`)."""

    example: RerankExample
    prompt: DirectPrompt
    lower: torch.Tensor
    index: int

    def scores(self, split: FrozenLowerLayers) -> torch.Tensor:
        return split.label_scores(self.lower, self.prompt)

    @property
    def target_label(self) -> int:
        return self.prompt.shown.index(self.example.candidates.index(self.example.target))

    def ranking(self, labels: Sequence[int]) -> tuple[str, ...]:
        """Items of a ranking given as label indices."""
        return tuple(self.example.candidates[self.prompt.shown[label]] for label in labels)


def build_views(
    split: FrozenLowerLayers,
    tokenizer,
    examples: Sequence[RerankExample],
    context: PromptContext,
    views_per_example: int,
    cache_dir: Path | None = None,
    world: ProcessWorld = SINGLE_PROCESS,
) -> list[TrainView]:
    """The (example, candidate order) prompts this rank owns, with their frozen-layer output; one order per
    example unless shuffling. With `cache_dir`, the outputs are kept there under a hash of the frozen weights
    and the prompts, so a later stage or run with the same frozen layers and prompts reads them instead of
    recomputing."""
    orders = orders_per_example(context, views_per_example)
    owned = world.share(range(len(examples) * orders))
    shown = [view_prompt(tokenizer, examples[index // orders], context, index % orders) for index in owned]
    lowers = cached_lower_states(split, [list(prompt.token_ids) for prompt in shown], cache_dir)
    return [
        TrainView(examples[index // orders], prompt, lower, index)
        for index, prompt, lower in zip(owned, shown, lowers, strict=True)
    ]


def view_prompt(tokenizer, example: RerankExample, context: PromptContext, salt: int) -> DirectPrompt:
    return direct_prompt(tokenizer, example.history, example.candidates, context, salt)


def orders_per_example(context: PromptContext, views_per_example: int) -> int:
    """Candidate orders each example is shown in: `views_per_example` when shuffling, else the one order."""
    return views_per_example if context.config.direct_shuffle else 1


def view_schedule(count: int, epochs: float, batch_size: int, seed: int) -> list[list[int]]:
    """Batches of view indices: a seeded permutation per epoch, cut to `epochs` worth of views."""
    order: list[int] = []
    for epoch in range(math.ceil(epochs)):
        permutation = list(range(count))
        random.Random(seed + epoch).shuffle(permutation)
        order.extend(permutation)
    order = order[: max(int(count * epochs), 1)]
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def prepare_views(
    model,
    tokenizer,
    examples: Sequence[RerankExample],
    context: PromptContext,
    trainable_layers: int,
    views_per_example: int,
    cache_dir: Path | None,
    world: ProcessWorld,
) -> tuple[FrozenLowerLayers, list[TrainView]]:
    """The model split at its trainable layers and this rank's training views with their frozen-layer output."""
    split = FrozenLowerLayers(model, trainable_layers, head_token_ids(tokenizer, context.config))
    return split, build_views(split, tokenizer, examples, context, views_per_example, cache_dir, world)


def release_for_inference(model) -> None:
    """After training: every parameter trainable again (as loaded), and evaluation mode."""
    model.requires_grad_(True)
    model.eval()


def train_direct_sft(
    model,
    tokenizer,
    examples: Sequence[RerankExample],
    context: PromptContext,
    config: DirectSftConfig,
    seed: int,
    work_dir: Path,
    cache_dir: Path | None = None,
    world: ProcessWorld = SINGLE_PROCESS,
) -> tuple[dict[str, float], list[dict]]:
    """Fine-tune `model` in place with the listwise loss; returns metrics and the loss curve. `cache_dir`:
    where frozen-layer activations are shared (see `build_views`). A batch is `config.batch_size` views
    whatever the world's size: each rank takes its own views of it."""
    set_seed(seed)
    started = time.monotonic()
    split, views = prepare_views(
        model, tokenizer, examples, context, config.trainable_layers, config.views_per_example, cache_dir, world
    )
    cache_seconds = time.monotonic() - started
    owned = {view.index: view for view in views}
    total_views = len(examples) * orders_per_example(context, config.views_per_example)
    batches = view_schedule(total_views, config.epochs, config.batch_size, seed)
    trainable = list(trainable_parameters(split.model).values())
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = get_cosine_schedule_with_warmup(optimizer, int(config.warmup_ratio * len(batches)), len(batches))
    state = resume_checkpoint(work_dir, trainable_parameters(split.model), optimizer, scheduler)
    resumed_from = state.step
    model.train()
    for step in tqdm(range(state.step, len(batches)), desc="direct sft", unit="step", initial=state.step):
        loss_sum = 0.0
        for index in world.share(batches[step]):
            view = owned[index]
            loss = listwise_loss(view.scores(split), view.target_label, config.pairwise_weight)
            (loss / len(batches[step])).backward()
            loss_sum += loss.item()
        world.sum_gradients(trainable)
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        state.step = step + 1
        (batch_loss,) = world.sum_values([loss_sum / len(batches[step])])
        state.curve.append({"step": state.step, "loss": batch_loss, "learning_rate": scheduler.get_last_lr()[0]})
        if state.step % config.save_steps == 0 or state.step == len(batches):
            save_checkpoint(work_dir, trainable_parameters(split.model), optimizer, scheduler, state, world)
    release_for_inference(model)
    metrics = {
        "train_examples": len(examples),
        "train_views": total_views,
        "train_steps": state.step,
        "resumed_from_step": resumed_from,
        "final_loss": state.curve[-1]["loss"] if state.curve else float("nan"),
        "frozen_layers_seconds": cache_seconds,
        "train_seconds": time.monotonic() - started,
        "mean_prompt_tokens": mean_over_world([v.lower.shape[0] for v in views], world),
    }
    return metrics, state.curve


def mean_over_world(values: Sequence[float], world: ProcessWorld) -> float:
    total, count = world.sum_values([sum(values), len(values)])
    return total / count


@dataclass(frozen=True)
class RolloutGroup:
    """G rankings of one view (label indices), their log-probs when sampled, rewards and advantages."""

    view: TrainView
    rankings: torch.Tensor
    old_log_probs: torch.Tensor
    rewards: list[RewardBreakdown]
    advantages: torch.Tensor


class DynamicSamplingStarvation(RuntimeError):
    """Every sampled group had equal rewards: nothing to learn from."""


def sample_group(
    split: FrozenLowerLayers,
    view: TrainView,
    config: DirectDapoConfig,
    generator: torch.Generator,
) -> RolloutGroup:
    """G Plackett-Luce rankings from one forward pass, each scored by the verifiable reward."""
    with torch.no_grad():
        scores = view.scores(split)[: len(view.example.candidates)] / config.temperature
    rankings = sample_plackett_luce(scores, config.num_generations, generator)
    rewards = [score_ranking(view.ranking(r.tolist()), view.example, config.reward) for r in rankings]
    totals = torch.tensor([r.total for r in rewards])
    return RolloutGroup(view, rankings, plackett_luce_log_probs(scores, rankings), rewards, group_advantages(totals))


@dataclass
class RolloutStats:
    groups_generated: int = 0
    groups_dropped: int = 0
    rounds: int = 0

    @classmethod
    def merged(cls, parts: Sequence[RolloutStats]) -> RolloutStats:
        """The ranks' stats of one step as one: counts added, rounds the most any rank needed."""
        return cls(
            sum(p.groups_generated for p in parts), sum(p.groups_dropped for p in parts), max(p.rounds for p in parts)
        )


def informative_groups(
    sample: Callable[[], RolloutGroup], needed: int, min_std: float, max_rounds: int, stats: RolloutStats
) -> list[RolloutGroup]:
    """Dynamic sampling: sample groups until `needed` have differing rewards, `needed` per round at most."""
    kept: list[RolloutGroup] = []
    while len(kept) < needed:
        if stats.rounds == max_rounds:
            raise DynamicSamplingStarvation(
                f"direct DAPO: only {len(kept)} of {needed} groups had differing rewards after {max_rounds} "
                "rounds; raise max_generation_rounds or the temperature, or check the reward"
            )
        stats.rounds += 1
        for _ in range(needed - len(kept)):
            group = sample()
            stats.groups_generated += 1
            if pstdev(r.total for r in group.rewards) >= min_std:
                kept.append(group)
            else:
                stats.groups_dropped += 1
    return kept


def policy_update(
    split: FrozenLowerLayers, groups: Sequence[RolloutGroup], config: DirectDapoConfig, world: ProcessWorld
) -> tuple[float, float]:
    """One gradient pass over a rollout batch with DAPO's token-level loss (every placement of every ranking
    in the world's batch weighs the same), gradients summed over the world; returns the batch's loss and
    share of clipped actions."""
    (actions,) = world.sum_values([sum(g.rankings.shape[0] * (g.rankings.shape[1] - 1) for g in groups)])
    total_loss, clipped = 0.0, 0
    for group in groups:
        scores = group.view.scores(split)[: group.rankings.shape[1]] / config.temperature
        log_probs = plackett_luce_log_probs(scores, group.rankings)
        losses, was_clipped = clipped_surrogate(
            log_probs, group.old_log_probs, group.advantages, config.epsilon, config.epsilon_high
        )
        loss = losses.sum() / actions
        loss.backward()
        total_loss += loss.item()
        clipped += int(was_clipped.sum())
    world.sum_gradients(list(trainable_parameters(split.model).values()))
    total_loss, clipped = world.sum_values([total_loss, clipped])
    return total_loss, clipped / actions


def rollout_log(rewards: Sequence[RewardBreakdown], stats: RolloutStats) -> dict[str, float]:
    """Per-step means and stds of what the reward saw, as the reasoning-mode DAPO logs them."""
    parts = {"reward": [r.total for r in rewards], "rank_reward": [r.rank for r in rewards]}
    parts["format_bonus"] = [r.format_bonus for r in rewards]
    logged = {f"{name}_mean": mean(values) for name, values in parts.items()}
    logged |= {f"{name}_std": pstdev(values) for name, values in parts.items()}
    return logged | {
        "valid_share": mean(r.valid for r in rewards),
        "order_copy_rate": mean(r.order_copy for r in rewards),
        "dropped_group_share": stats.groups_dropped / max(stats.groups_generated, 1),
        "rounds": stats.rounds,
    }


def train_direct_dapo(
    model,
    tokenizer,
    examples: Sequence[RerankExample],
    context: PromptContext,
    config: DirectDapoConfig,
    seed: int,
    work_dir: Path,
    cache_dir: Path | None = None,
    world: ProcessWorld = SINGLE_PROCESS,
) -> tuple[dict[str, float], list[dict]]:
    """DAPO on the label scores; returns metrics and the per-step log. Each rank samples its share of the
    step's `prompts_per_step` groups from its own views."""
    set_seed(seed)
    started = time.monotonic()
    split, views = prepare_views(model, tokenizer, examples, context, config.trainable_layers, 1, cache_dir, world)
    optimizer = torch.optim.AdamW(trainable_parameters(split.model).values(), lr=config.learning_rate, weight_decay=0.0)
    state = resume_checkpoint(work_dir, trainable_parameters(split.model), optimizer, None)
    resumed_from = state.step
    groups_here = len(world.share(range(config.prompts_per_step)))
    model.train()
    for step in tqdm(range(state.step, config.max_steps), desc="direct dapo", unit="step", initial=state.step):
        # seeded by the step (and rank), so a resumed run samples what an uninterrupted one would have
        generator = torch.Generator().manual_seed((seed * 1_000_003 + step) * world.size + world.rank)
        picker = random.Random((seed + step) * world.size + world.rank)
        stats = RolloutStats()
        groups = informative_groups(
            lambda picker=picker, generator=generator: sample_group(split, picker.choice(views), config, generator),
            groups_here,
            config.min_group_reward_std,
            config.max_generation_rounds,
            stats,
        )
        for _ in range(config.updates_per_batch):
            loss, clip_share = policy_update(split, groups, config, world)
            optimizer.step()
            optimizer.zero_grad()
        state.step += 1
        gathered = world.gather(([r for g in groups for r in g.rewards], stats))
        rewards = [r for part, _ in gathered for r in part]
        logged = rollout_log(rewards, RolloutStats.merged([part for _, part in gathered]))
        state.curve.append({"step": state.step, "loss": loss, "clip_ratio": clip_share, **logged})
        if state.step % config.save_steps == 0 or state.step == config.max_steps:
            save_checkpoint(work_dir, trainable_parameters(split.model), optimizer, None, state, world)
    release_for_inference(model)
    metrics = {
        "train_examples": len(examples),
        "train_steps": state.step,
        "resumed_from_step": resumed_from,
        "train_seconds": time.monotonic() - started,
    }
    return metrics | state.last_step_metrics(), state.curve
