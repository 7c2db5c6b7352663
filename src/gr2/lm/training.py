"""Hugging Face Trainer plumbing shared by mid-training, SFT and DAPO: the arguments every stage sets the
same way, resuming from the last checkpoint, and saving the trained model atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import Trainer
from transformers.trainer_utils import get_last_checkpoint

from gr2.storage.atomic import write_dir_atomic

CHECKPOINTS_KEPT = 2  # the newest to resume from, and the one before it in case the newest is half-written


def shared_training_arguments(config, checkpoint_dir: Path, seed: int) -> dict[str, Any]:
    """Keyword arguments of `TrainingArguments` (or TRL's configs built on it) common to every stage.

    `config` is a stage config with learning_rate, max_steps, save_steps, deepspeed, bf16 and
    gradient_checkpointing; each stage adds what is its own (batch shape, schedule, loss)."""
    return {
        "output_dir": str(checkpoint_dir),
        "learning_rate": config.learning_rate,
        "max_steps": config.max_steps,
        "seed": seed,
        "save_strategy": "steps",
        "save_steps": config.save_steps,
        "save_total_limit": CHECKPOINTS_KEPT,
        "deepspeed": config.deepspeed,
        "bf16": config.bf16,
        "gradient_checkpointing": config.gradient_checkpointing,
        "remove_unused_columns": False,
        "dataloader_pin_memory": torch.cuda.is_available(),
        # without a GPU, accelerate sets up a torchrun world (DDP over gloo) only when told to use the CPU;
        # DeepSpeed sets up its own
        "use_cpu": not torch.cuda.is_available() and config.deepspeed is None,
        "report_to": [],
    }


def last_checkpoint(checkpoint_dir: Path) -> str | None:
    return get_last_checkpoint(str(checkpoint_dir)) if Path(checkpoint_dir).is_dir() else None


def checkpoint_step(checkpoint: str | None) -> int:
    return int(Path(checkpoint).name.rsplit("-", 1)[1]) if checkpoint else 0


def loss_curve(trainer: Trainer) -> list[dict[str, float]]:
    """The logged training loss per step, as `[{"step": ..., "loss": ...}]`."""
    return [{"step": entry["step"], "loss": entry["loss"]} for entry in trainer.state.log_history if "loss" in entry]


def final_loss(trainer: Trainer, fallback: float) -> float:
    curve = loss_curve(trainer)
    return curve[-1]["loss"] if curve else fallback


def save_pretrained_atomic(model, tokenizer, out_dir: Path) -> Path:
    def build(staging: Path) -> None:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)

    return write_dir_atomic(out_dir, build)
