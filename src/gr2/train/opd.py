"""On-policy distillation (OPD, the GR2 technical report's "RL-OPD" stage before DAPO), on one process.

Each step the student samples G completions for each of `prompts_per_step` prompts (the one prompt builder,
`build_messages`), each completion is rewarded as CoT DAPO rewards it (`score_completion` plus DAPO's soft
overlong penalty), the frozen teacher scores the same tokens in one forward pass without gradients, and the
student takes an AdamW step on Eq. 4 (`gr2.train.opd_losses.opd_loss`). Teacher and student must share a
tokenizer (`check_same_tokenizer`): the teacher's log-probs are read at the student's token ids.

Checkpoints are `gr2.train.checkpoint`'s (trainable weights, optimiser, step, per-step log, RNG; written
atomically into `work_dir` every `save_steps`); each step's prompts and samples are seeded
by the step, so a resumed run continues as an uninterrupted one would have. The pipeline's `opd` stage
(`gr2.train.stage.run_opd`) runs it between SFT and DAPO.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import mean, pstdev

import torch
from tqdm.auto import tqdm
from transformers import set_seed

from gr2.data.schema import Item
from gr2.lm.models import load_model_and_tokenizer, load_on_device, resolve_checkpoint
from gr2.prerank.candidates import RerankExample
from gr2.rank.generation import chat_prompt, strip_end_markers
from gr2.sid.sidmap import SidMap
from gr2.traces.config import PromptConfig
from gr2.traces.prompt import build_messages
from gr2.train.checkpoint import resume_checkpoint, save_checkpoint, trainable_parameters
from gr2.train.config import MISSING_TEACHER, STUDENT_TEACHER, OpdConfig, RewardConfig
from gr2.train.direct import release_for_inference
from gr2.train.direct_losses import group_advantages
from gr2.train.opd_losses import OpdLoss, opd_loss, token_log_probs
from gr2.train.rewards import RewardBreakdown, score_completion, soft_overlong_penalty


class TokenizerMismatch(ValueError):
    """The teacher's tokenizer is not the student's: its log-probs would belong to other tokens."""


def tokenizer_difference(student, teacher) -> str | None:
    """The first difference between two tokenizers (vocabulary size, then a token id's text, then a special
    token), in words; None when they agree."""
    if len(student) != len(teacher):
        return f"vocabulary size {len(student)} (student) vs {len(teacher)} (teacher)"
    student_tokens = {index: token for token, index in student.get_vocab().items()}
    teacher_tokens = {index: token for token, index in teacher.get_vocab().items()}
    for index in sorted(student_tokens.keys() | teacher_tokens.keys()):
        mine, theirs = student_tokens.get(index), teacher_tokens.get(index)
        if mine != theirs:
            return f"token id {index} is {mine!r} (student) vs {theirs!r} (teacher)"
    specials, teacher_specials = student.special_tokens_map, teacher.special_tokens_map
    for name in sorted(specials.keys() | teacher_specials.keys()):
        mine, theirs = specials.get(name), teacher_specials.get(name)
        if mine != theirs:
            return f"special token {name} is {mine!r} (student) vs {theirs!r} (teacher)"
    return None


def check_same_tokenizer(student_tokenizer, teacher_tokenizer) -> None:
    """Raise `TokenizerMismatch` naming what differs unless the two tokenizers are the same."""
    difference = tokenizer_difference(student_tokenizer, teacher_tokenizer)
    if difference is not None:
        raise TokenizerMismatch(f"OPD: teacher and student must share a tokenizer, but {difference}")


def teacher_checkpoint(config: OpdConfig, student_dir: str | Path) -> str:
    """What `from_pretrained` loads as the teacher: `config.teacher` resolved like base_model.name, or the
    student's own checkpoint `student_dir` for `STUDENT_TEACHER`."""
    if config.teacher is None:
        raise ValueError(MISSING_TEACHER)
    if config.teacher == STUDENT_TEACHER:
        return str(student_dir)
    try:
        return resolve_checkpoint(config.teacher)
    except ValueError as error:
        raise ValueError(f"opd.teacher: {error}") from None


def teacher_max_memory(free_bytes: Sequence[int]) -> dict[int, int]:
    """Where the teacher goes, given each visible GPU's free memory: with several GPUs, split over every GPU
    but the student's (GPU 0) as from_pretrained's max_memory; with one or none, {} (it joins the student)."""
    return {index: free for index, free in enumerate(free_bytes) if index > 0}


def load_teacher(config: OpdConfig, student_tokenizer, student_dir: str | Path):
    """The frozen teacher (`teacher_checkpoint`), after checking that its tokenizer is the student's. One GPU:
    the student's device (`load_on_device`); several (the opd task gets the pod's train_gpus): split by layers
    over GPUs 1.. (`teacher_max_memory`), so a 32B teacher does not share the training student's memory."""
    checkpoint = teacher_checkpoint(config, student_dir)
    gpus = [torch.cuda.mem_get_info(index)[0] for index in range(torch.cuda.device_count())]
    spread = teacher_max_memory(gpus)
    if spread:
        teacher, teacher_tokenizer = load_model_and_tokenizer(
            checkpoint, config.teacher_dtype, device_map="auto", max_memory=spread
        )
    else:
        teacher, teacher_tokenizer = load_on_device(checkpoint, config.teacher_dtype)
    check_same_tokenizer(student_tokenizer, teacher_tokenizer)
    return teacher.requires_grad_(False).eval()


@dataclass(frozen=True)
class OpdGroup:
    """The G completions of one prompt: token ids (G, T) right-padded, the 0/1 completion mask, the teacher's
    log-probs of the sampled tokens, each completion's reward parts and total, and the group's advantages."""

    prompt_ids: torch.Tensor
    completions: torch.Tensor
    mask: torch.Tensor
    teacher_log_probs: torch.Tensor
    rewards: list[RewardBreakdown]
    totals: torch.Tensor
    advantages: torch.Tensor


def cut_after_eos(ids: list[int], eos_id: int) -> list[int]:
    """A sampled row up to and including its first EOS (the padding after it is not the completion's)."""
    return ids[: ids.index(eos_id) + 1] if eos_id in ids else ids


def free_completions(student, tokenizer, prompt_ids: torch.Tensor, config: OpdConfig) -> list[list[int]]:
    """G plain samples of one prompt (Hugging Face generate, full distribution at the temperature)."""
    with torch.no_grad():
        rows = student.generate(
            input_ids=prompt_ids.unsqueeze(0).to(student.device),
            attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long, device=student.device),
            do_sample=True,
            temperature=config.temperature,
            top_k=0,
            top_p=1.0,
            max_new_tokens=config.max_completion_length,
            num_return_sequences=config.num_generations,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    return [cut_after_eos(row.tolist(), tokenizer.eos_token_id) for row in rows[:, len(prompt_ids) :]]


def constrained_completions(
    student, tokenizer, prompt: str, example: RerankExample, sids: SidMap, config: OpdConfig
) -> list[list[int]]:
    """G answers of the serving decoder (greedy reasoning, a sampled permutation), as token ids ending in EOS."""
    from gr2.serve.backends import LocalBackend

    options = [sids.codes[item] for item in example.candidates]
    answers = LocalBackend(student, tokenizer).answer(
        [prompt] * config.num_generations,
        [options] * config.num_generations,
        config.reasoning_tokens,
        math.inf,
        temperature=config.temperature,
    )
    return [tokenizer(a.text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for a in answers]


def padded(completions: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Completions as one (G, T) tensor right-padded with `pad_id`, and the float mask of their tokens."""
    width = max(len(ids) for ids in completions)
    ids = torch.tensor([row + [pad_id] * (width - len(row)) for row in completions])
    mask = torch.tensor([[1.0] * len(row) + [0.0] * (width - len(row)) for row in completions])
    return ids, mask


def completion_log_probs(model, prompt_ids: torch.Tensor, completions: torch.Tensor, temperature: float):
    """log pi(y_t | prompt, y_<t) of every completion token (G, T) at `temperature`, one forward pass of the
    G rows (right padding sits after the tokens it could affect). The log-probs are on the device of the
    logits (a teacher split over GPUs gives them on its last one)."""
    inputs = torch.cat([prompt_ids.expand(len(completions), -1), completions], dim=1).to(model.device)
    logits = model(input_ids=inputs, logits_to_keep=completions.shape[1] + 1).logits[:, :-1]
    return token_log_probs(logits.float() / temperature, completions.to(logits.device))


def completion_rewards(
    tokenizer, completions: Sequence[list[int]], example: RerankExample, sids: SidMap, reward: RewardConfig
) -> tuple[list[RewardBreakdown], torch.Tensor]:
    """Each completion's verifiable reward (`score_completion`) and its total with the soft overlong penalty,
    as CoT DAPO rewards it."""
    texts = [strip_end_markers(tokenizer.decode(ids, skip_special_tokens=False), tokenizer) for ids in completions]
    parts = [score_completion(text, example, sids, reward) for text in texts]
    penalties = [
        soft_overlong_penalty(len(ids), reward.overlong_max_tokens, reward.overlong_cache_tokens) for ids in completions
    ]
    return parts, torch.tensor([p.total + penalty for p, penalty in zip(parts, penalties, strict=True)])


def sample_group(
    student,
    teacher,
    tokenizer,
    example: RerankExample,
    catalog: dict[str, Item],
    sids: SidMap,
    prompt_config: PromptConfig,
    config: OpdConfig,
) -> OpdGroup:
    """G student completions of one example, rewarded and scored by the teacher (no gradients)."""
    prompt = chat_prompt(tokenizer, build_messages(example.history, example.candidates, catalog, sids, prompt_config))
    prompt_ids = torch.tensor(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    if config.constrained_rollouts:
        completions = constrained_completions(student, tokenizer, prompt, example, sids, config)
    else:
        completions = free_completions(student, tokenizer, prompt_ids, config)
    rewards, totals = completion_rewards(tokenizer, completions, example, sids, config.reward)
    ids, mask = padded(completions, tokenizer.pad_token_id)
    with torch.no_grad():
        teacher_log_probs = completion_log_probs(teacher, prompt_ids, ids, config.temperature)
    device = student.device
    return OpdGroup(
        prompt_ids,
        ids,
        mask.to(device),
        teacher_log_probs.to(device),
        rewards,
        totals,
        group_advantages(totals).to(device),
    )


def policy_update(student, groups: Sequence[OpdGroup], old: dict[int, torch.Tensor], config: OpdConfig) -> OpdLoss:
    """Gradients of Eq. 4 over a rollout batch (every completion token of the batch weighs the same); `old`
    keeps each group's log-probs from the batch's first update (the rollout policy). Returns the batch's loss,
    sampled KL and clip share as floats."""
    tokens = sum(float(group.mask.sum()) for group in groups)
    loss = kl = clip_ratio = 0.0
    for index, group in enumerate(groups):
        log_probs = completion_log_probs(student, group.prompt_ids, group.completions, config.temperature)
        old_log_probs = old.setdefault(index, log_probs.detach())
        parts = opd_loss(
            log_probs,
            old_log_probs,
            group.teacher_log_probs,
            group.advantages,
            group.mask,
            config.kl_coef,
            config.epsilon,
            config.epsilon_high,
            tokens,
        )
        parts.loss.backward()
        loss, kl, clip_ratio = loss + parts.loss.item(), kl + parts.kl.item(), clip_ratio + parts.clip_ratio.item()
    return OpdLoss(loss, kl, clip_ratio)


def step_log(step: int, groups: Sequence[OpdGroup], first: OpdLoss, last: OpdLoss) -> dict[str, float]:
    """One step's row: the last update's loss and clip share, the rollout policy's sampled KL (first update),
    and what the reward saw."""
    totals = [float(t) for group in groups for t in group.totals]
    rewards = [r for group in groups for r in group.rewards]
    return {
        "step": step,
        "loss": last.loss,
        "kl_mean": first.kl,
        "clip_ratio": last.clip_ratio,
        "reward_mean": mean(totals),
        "reward_std": pstdev(totals),
        "valid_share": mean(r.valid for r in rewards),
        "order_copy_rate": mean(r.order_copy for r in rewards),
        "mean_completion_tokens": mean(float(t) for group in groups for t in group.mask.sum(-1)),
    }


def train_opd(
    student,
    teacher,
    tokenizer,
    examples: Sequence[RerankExample],
    catalog: dict[str, Item],
    sids: SidMap,
    prompt_config: PromptConfig,
    config: OpdConfig,
    seed: int,
    work_dir: Path,
) -> tuple[dict[str, float], list[dict]]:
    """Train `student` in place by on-policy distillation from the frozen `teacher` (same tokenizer: see
    `load_teacher`); resumes from the checkpoint in `work_dir`. Returns metrics and the per-step log."""
    set_seed(seed)
    started = time.monotonic()
    pool = list(examples[: config.max_train_prompts])
    weights = trainable_parameters(student)
    optimizer = torch.optim.AdamW(weights.values(), lr=config.learning_rate, weight_decay=0.0)
    work_dir = Path(work_dir)
    state = resume_checkpoint(work_dir, weights, optimizer, None)
    resumed_from = state.step
    for step in tqdm(
        range(state.step, config.max_steps), desc="opd", unit="step", initial=state.step, total=config.max_steps
    ):
        # seeded by the step, so a resumed run samples what an uninterrupted one would have
        torch.manual_seed(seed * 1_000_003 + step)
        chosen = random.Random(seed * 1_000_003 + step).sample(pool, min(config.prompts_per_step, len(pool)))
        student.eval()  # rollouts with the KV cache: gradient checkpointing, when on, applies in train mode only
        groups = [sample_group(student, teacher, tokenizer, e, catalog, sids, prompt_config, config) for e in chosen]
        student.train()
        old: dict[int, torch.Tensor] = {}
        updates = []
        for _ in range(config.updates_per_batch):
            updates.append(policy_update(student, groups, old, config))
            torch.nn.utils.clip_grad_norm_(weights.values(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
        state.step += 1
        state.curve.append(step_log(state.step, groups, updates[0], updates[-1]))
        if state.step % config.save_steps == 0 or state.step == config.max_steps:
            save_checkpoint(work_dir, weights, optimizer, None, state)
    release_for_inference(student)
    metrics = {
        "train_prompts": len(pool),
        "train_steps": state.step,
        "resumed_from_step": resumed_from,
        "train_seconds": time.monotonic() - started,
    }
    return metrics | state.last_step_metrics(), state.curve
