"""The `sft`, `opd` and `dapo` stages: train the re-ranker from the previous stage's model and validate it."""

from __future__ import annotations

from pathlib import Path

from gr2.eval.validate import validate_policy
from gr2.inputs import StageInputs
from gr2.lm.models import load_model_and_tokenizer, load_on_device
from gr2.lm.training import loss_curve, save_pretrained_atomic
from gr2.storage.atomic import write_json_atomic
from gr2.traces.config import PromptConfig
from gr2.traces.sampling import read_traces
from gr2.traces.stage import SFT_FILE
from gr2.train.config import DapoConfig, OpdConfig, RewardConfig, SftConfig
from gr2.train.dapo import train_dapo, training_curve
from gr2.train.opd import load_teacher, train_opd
from gr2.train.sft import train_sft

CURVE_FILE = "training_curve.json"


def run_sft(
    inputs: StageInputs,
    model_dir: Path,
    traces_dir: Path,
    config: SftConfig,
    prompt: PromptConfig,
    seed: int,
    work_dir: Path,
    out_dir: Path,
    constrained: bool,
) -> dict[str, float]:
    """SFT, then validation decoded as `constrained` says (as served, or free as in the paper)."""
    model, tokenizer = load_model_and_tokenizer(model_dir)
    traces = read_traces(traces_dir / SFT_FILE)
    trainer, metrics = train_sft(model, tokenizer, traces, config, seed, work_dir)
    curve = loss_curve(trainer)
    return metrics | publish_policy(trainer, tokenizer, curve, inputs, config, prompt, seed, out_dir, constrained)


def run_dapo(
    inputs: StageInputs,
    model_dir: Path,
    config: DapoConfig,
    reward: RewardConfig,
    prompt: PromptConfig,
    seed: int,
    work_dir: Path,
    out_dir: Path,
    constrained: bool,
) -> dict[str, float]:
    model, tokenizer = load_model_and_tokenizer(model_dir)
    examples = inputs.examples_of("train", config.max_train_prompts, seed)
    trainer, metrics = train_dapo(
        model, tokenizer, examples, inputs.catalog, inputs.sids, prompt, config, reward, seed, work_dir
    )
    curve = training_curve(trainer.state.log_history)
    if curve:
        metrics |= {f"last_step_{k.replace('/', '_')}": v for k, v in curve[-1].items() if k != "step"}
    return metrics | publish_policy(trainer, tokenizer, curve, inputs, config, prompt, seed, out_dir, constrained)


def run_opd(
    inputs: StageInputs,
    model_dir: Path,
    config: OpdConfig,
    prompt: PromptConfig,
    seed: int,
    work_dir: Path,
    out_dir: Path,
    constrained: bool,
) -> dict[str, float]:
    """On-policy distillation of the SFT policy from the frozen teacher, on one process (`train_opd`);
    resumes from `work_dir`."""
    student, tokenizer = load_on_device(model_dir)
    if config.gradient_checkpointing:
        student.gradient_checkpointing_enable()
    teacher = load_teacher(config, tokenizer, model_dir)
    examples = inputs.examples_of("train", config.max_train_prompts, seed)
    metrics, curve = train_opd(
        student, teacher, tokenizer, examples, inputs.catalog, inputs.sids, prompt, config, seed, work_dir
    )
    del teacher  # its memory is free for the validation
    return metrics | publish_model(student, tokenizer, curve, inputs, config, prompt, seed, out_dir, constrained)


def publish_policy(trainer, tokenizer, curve: list[dict], *publish) -> dict[str, float]:
    """`publish_model` for a Hugging Face Trainer's policy (`publish`: its remaining arguments): in a launched
    world rank 0 alone publishes; the other ranks return no metrics."""
    if not trainer.is_world_process_zero():
        return {}
    return publish_model(trainer.model, tokenizer, curve, *publish)


def publish_model(
    model,
    tokenizer,
    curve: list[dict],
    inputs: StageInputs,
    config: SftConfig | DapoConfig | OpdConfig,
    prompt: PromptConfig,
    seed: int,
    out_dir: Path,
    constrained: bool,
) -> dict[str, float]:
    """Save the trained policy with its training curve, then score it on validation examples."""
    save_pretrained_atomic(model, tokenizer, out_dir)
    write_json_atomic(out_dir / CURVE_FILE, curve)
    return validate_policy(
        model,
        tokenizer,
        inputs,
        "valid",
        config.eval_examples,
        prompt,
        config.eval_max_new_tokens,
        config.eval_batch_size,
        seed,
        constrained,
    )
