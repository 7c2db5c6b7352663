"""The `direct_sft` and `direct_dapo` stages: train a direct re-ranker from the previous stage's model,
choose its fusion lambda on validation examples and publish it with that lambda (`direct.json`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from gr2.distributed.collective import join_process_group
from gr2.eval.gate import FUSED
from gr2.eval.validate import validate_direct
from gr2.inputs import StageInputs
from gr2.lm.models import load_on_device
from gr2.lm.training import save_pretrained_atomic
from gr2.rank.direct import stage_prompt_context
from gr2.rank.frozen import CachedDirectScorer
from gr2.serve.config import DecodingConfig
from gr2.storage.atomic import write_json_atomic
from gr2.traces.config import PromptConfig
from gr2.train.config import DirectDapoConfig, DirectSftConfig, RewardConfig
from gr2.train.direct import train_direct_dapo, train_direct_sft
from gr2.train.stage import CURVE_FILE

DIRECT_FILE = "direct.json"


def read_direct_file(model_dir: Path) -> dict | None:
    """What a direct training stage stored with its model (`fusion_lambda`, `labels`, `trainable_layers`: the
    top layers it trained, below which its weights are those it started from); None for other models."""
    path = Path(model_dir) / DIRECT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def read_fusion_lambda(model_dir: Path) -> float | None:
    """The fusion lambda a direct training stage stored with its model; None for other models."""
    stored = read_direct_file(model_dir)
    return stored["fusion_lambda"] if stored else None


def serving_decoding(row: str, model_dir: Path) -> DecodingConfig:
    """How a gate row's model is served: direct mode (with the stored lambda for a fused row) for a model a
    direct stage trained, the reasoning mode's defaults otherwise."""
    fusion_lambda = read_fusion_lambda(model_dir)
    if fusion_lambda is None:
        return DecodingConfig()
    return DecodingConfig(mode="direct", fusion_lambda=fusion_lambda if row.endswith(FUSED) else 0.0)


def run_direct_sft(
    inputs: StageInputs,
    model_dir: Path,
    config: DirectSftConfig,
    prompt: PromptConfig,
    fusion_lambdas: list[float],
    seed: int,
    work_dir: Path,
    out_dir: Path,
    cache_dir: Path | None = None,
) -> dict[str, float]:
    return train_and_publish(
        train_direct_sft, inputs, model_dir, config, prompt, fusion_lambdas, seed, work_dir, out_dir, cache_dir
    )


def run_direct_dapo(
    inputs: StageInputs,
    model_dir: Path,
    config: DirectDapoConfig,
    reward: RewardConfig,
    prompt: PromptConfig,
    fusion_lambdas: list[float],
    seed: int,
    work_dir: Path,
    out_dir: Path,
    cache_dir: Path | None = None,
) -> dict[str, float]:
    config = config.model_copy(update={"reward": reward})
    return train_and_publish(
        train_direct_dapo, inputs, model_dir, config, prompt, fusion_lambdas, seed, work_dir, out_dir, cache_dir
    )


def train_and_publish(
    trainer: Callable,
    inputs: StageInputs,
    model_dir: Path,
    config: DirectSftConfig | DirectDapoConfig,
    prompt: PromptConfig,
    fusion_lambdas: list[float],
    seed: int,
    work_dir: Path,
    out_dir: Path,
    cache_dir: Path | None,
) -> dict[str, float]:
    """Train the model of `model_dir` with `trainer` (direct SFT or DAPO) on the train examples, then publish it.
    Under torchrun every rank trains its share; rank 0 alone validates and publishes (the others return {})."""
    world = join_process_group()
    model, tokenizer = load_on_device(model_dir)
    examples = inputs.examples_of("train", config.max_train_examples, seed)
    context = stage_prompt_context(inputs, prompt)
    metrics, curve = trainer(model, tokenizer, examples, context, config, seed, work_dir, cache_dir, world)
    if not world.is_main:
        return {}
    scorer = CachedDirectScorer(model, tokenizer, context, config.trainable_layers, cache_dir)
    return metrics | publish_direct(scorer, curve, inputs, config, fusion_lambdas, seed, out_dir)


def publish_direct(
    scorer: CachedDirectScorer,
    curve: list[dict],
    inputs: StageInputs,
    config: DirectSftConfig | DirectDapoConfig,
    fusion_lambdas: list[float],
    seed: int,
    out_dir: Path,
) -> dict[str, float]:
    """Validate the trained model (choosing the fusion lambda), then save it with its lambda, the layers it
    trained, its training curve and the collaborative counts its prompts cite (serving writes the same)."""
    metrics, fusion_lambda = validate_direct(scorer, inputs, config.eval_examples, fusion_lambdas, seed)
    context = scorer.context
    save_pretrained_atomic(scorer.model, scorer.tokenizer, out_dir)
    write_json_atomic(out_dir / CURVE_FILE, curve)
    stored = {
        "fusion_lambda": fusion_lambda,
        "labels": context.config.direct_labels,
        "trainable_layers": config.trainable_layers,
    }
    write_json_atomic(out_dir / DIRECT_FILE, stored)
    if context.evidence is not None:
        context.evidence.save(out_dir)
    return metrics
