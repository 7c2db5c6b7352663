"""Stage 1b, part 2: mid-training on semantic IDs with the Hugging Face Trainer, then its evaluation.

The same code runs on CPU (no DeepSpeed) and on GPUs (a DeepSpeed ZeRO config, bf16, gradient
checkpointing). Checkpoints go to `checkpoint_dir` every `save_steps`; a run whose `checkpoint_dir`
already holds one resumes from the latest, and the examples are rebuilt identically from the seed.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from transformers import Trainer, TrainingArguments, set_seed

from gr2.data.schema import Item
from gr2.lm.chat import ChatCollator, encode_examples
from gr2.lm.config import MidtrainConfig
from gr2.lm.evaluate import evaluate_midtrained
from gr2.lm.models import load_model_and_tokenizer
from gr2.lm.tasks import build_examples
from gr2.lm.training import checkpoint_step, final_loss, last_checkpoint, shared_training_arguments
from gr2.lm.vocab import sid_token_ids
from gr2.sid.sidmap import SidMap
from gr2.storage.atomic import write_dir_atomic


def training_dtype(config: MidtrainConfig) -> str:
    """DeepSpeed with bf16 keeps its own fp32 master weights, so the model may load in bf16; a plain
    Trainer (bf16 autocast or fp32) needs fp32 weights for a sound optimiser state."""
    return "bfloat16" if config.bf16 and config.deepspeed is not None else "float32"


def training_arguments(config: MidtrainConfig, checkpoint_dir: Path) -> TrainingArguments:
    return TrainingArguments(
        **shared_training_arguments(config, checkpoint_dir, config.seed),
        num_train_epochs=config.num_train_epochs,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup_ratio,
        lr_scheduler_type=config.lr_scheduler_type,
        per_device_train_batch_size=config.per_device_train_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        logging_steps=config.logging_steps,
        train_sampling_strategy="group_by_length",
    )


def sequences_trained(trainer: Trainer, steps_before: int, dataset_size: int) -> int:
    """Training sequences this run fed to the optimiser: full batches per step, except that the last
    step of an epoch may be short (then the epoch's dataset size bounds it)."""
    args = trainer.args
    per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    steps = trainer.state.global_step - steps_before
    if args.max_steps > 0:
        return steps * per_step
    planned = dataset_size * math.ceil(args.num_train_epochs)
    return min(steps * per_step, planned - steps_before * per_step)


def run_midtraining(
    model_dir: Path,
    catalog: dict[str, Item],
    sid_map: SidMap,
    train_sequences: list[list[str]],
    eval_examples: list[tuple[list[str], str]],
    config: MidtrainConfig,
    out_dir: Path,
    checkpoint_dir: Path,
) -> dict[str, float]:
    """Mid-train the SID-extended model in `model_dir` on the task mixture built from `train_sequences`,
    save model and tokenizer to `out_dir`, and evaluate on `eval_examples` (history, held-out target).

    Under multi-process DeepSpeed every rank calls this; only the main process saves and evaluates, the
    others return the training metrics alone."""
    set_seed(config.seed)
    model, tokenizer = load_model_and_tokenizer(model_dir, training_dtype(config))
    sid_token_ids(tokenizer, sid_map)  # fails early, naming a missing SID token
    examples = build_examples(catalog, sid_map, train_sequences, config)
    dataset, dropped = encode_examples(tokenizer, config.system_prompt, examples, config.max_length)
    if not dataset:
        raise ValueError(f"no training example fits max_length={config.max_length} tokens")
    trainer = Trainer(
        model=model,
        args=training_arguments(config, Path(checkpoint_dir)),
        train_dataset=dataset,
        data_collator=ChatCollator(tokenizer.pad_token_id),
        processing_class=tokenizer,
    )
    resume = last_checkpoint(Path(checkpoint_dir))
    result = trainer.train(resume_from_checkpoint=resume)
    train_sequences_run = sequences_trained(trainer, checkpoint_step(resume), len(dataset))
    train_seconds = result.metrics["train_runtime"]
    metrics = {
        "train_seconds": train_seconds,
        "train_sequences": float(train_sequences_run),
        "seconds_per_1k_sequences": 1000 * train_seconds / max(train_sequences_run, 1),
        "train_steps": float(trainer.state.global_step),
        "final_loss": final_loss(trainer, result.training_loss),
        "resumed_from_step": float(checkpoint_step(resume)),
        "examples": float(len(dataset)),
        "examples_dropped_too_long": float(dropped),
        "mean_tokens_per_example": sum(len(row["input_ids"]) for row in dataset) / len(dataset),
        **{f"examples_{task}": float(sum(e.task == task for e in examples)) for task in config.tasks.weights()},
    }
    if not trainer.is_world_process_zero():
        return metrics
    write_dir_atomic(Path(out_dir), lambda staging: trainer.save_model(str(staging)))
    caption_items = sorted({item for sequence in train_sequences for item in sequence})
    with torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=config.bf16):
        metrics |= evaluate_midtrained(trainer.model, tokenizer, catalog, sid_map, eval_examples, caption_items, config)
    return metrics
