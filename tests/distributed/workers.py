"""Step-like functions that torchrun workers of the launch tests call (`module:name`, keyword arguments and a
`log_metric` callback, as `gr2.distributed.launch` calls the pipeline's steps)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import torch

from gr2.distributed.collective import join_process_group
from gr2.lm.config import MidtrainConfig
from gr2.lm.midtrain import run_midtraining
from gr2.lm.models import load_model_and_tokenizer
from gr2.lm.training import loss_curve, save_pretrained_atomic
from gr2.traces.sampling import read_traces
from gr2.train.config import DirectDapoConfig, DirectSftConfig, SftConfig
from gr2.train.direct import train_direct_dapo, train_direct_sft
from gr2.train.sft import train_sft
from tests.conftest import OFFICE_USERS
from tests.office import office_catalog, office_sequences, random_sid_map


def log_all(metrics: dict[str, float], log_metric) -> None:
    for name, value in metrics.items():
        log_metric(name, float(value))


def midtrain_office(model_dir: str, config_json: str, out_dir: str, checkpoint_dir: str, log_metric) -> None:
    """Mid-train on the Office slice of the lm tests (train: sequences less their last two items)."""
    sequences = office_sequences(OFFICE_USERS)
    catalog = office_catalog(sequences)
    train = [sequence[:-2] for sequence in sequences]
    test = [(sequence[:-1], sequence[-1]) for sequence in sequences]
    config = MidtrainConfig.model_validate_json(config_json)
    metrics = run_midtraining(
        Path(model_dir),
        catalog,
        random_sid_map(sorted(catalog)),
        train,
        test,
        config,
        Path(out_dir),
        Path(checkpoint_dir),
    )
    log_all(metrics, log_metric)


def sft_traces(
    model_dir: str, traces_file: str, config_json: str, out_dir: str, checkpoint_dir: str, log_metric
) -> None:
    """SFT on accepted traces; rank 0 saves the policy (as the sft stage publishes it) and logs the loss per step."""
    model, tokenizer = load_model_and_tokenizer(Path(model_dir))
    config = SftConfig.model_validate_json(config_json)
    trainer, metrics = train_sft(model, tokenizer, read_traces(Path(traces_file)), config, 0, Path(checkpoint_dir))
    if trainer.is_world_process_zero():
        save_pretrained_atomic(trainer.model, tokenizer, Path(out_dir))
        log_all(metrics | {f"loss_step_{row['step']}": row["loss"] for row in loss_curve(trainer)}, log_metric)


def fail_on_rank(rank: int, log_metric) -> None:
    if int(os.environ["RANK"]) == rank:
        raise ValueError(f"rank {rank} refuses")
    log_metric("finished", 1.0)


def copy_upper(source: str, target: str, log_metric) -> None:
    """Writes the upper-cased text of the input file to the output path."""
    text = Path(source).read_text()
    Path(target).parent.mkdir(parents=True, exist_ok=True)
    Path(target).write_text(text.upper())
    log_metric("characters", float(len(text)))


DIRECT_TRAINERS = {"sft": (train_direct_sft, DirectSftConfig), "dapo": (train_direct_dapo, DirectDapoConfig)}


def direct_training(
    kind: str, model_dir: str, inputs_file: str, config_json: str, out_file: str, work_dir: str, log_metric
) -> None:
    """Direct SFT or DAPO in this process's world on pickled (examples, PromptContext); rank 0 saves the
    weights to `out_file` and logs the metrics and each step's loss."""
    trainer, config_type = DIRECT_TRAINERS[kind]
    world = join_process_group()
    model, tokenizer = load_model_and_tokenizer(Path(model_dir))
    examples, context = pickle.loads(Path(inputs_file).read_bytes())
    config = config_type.model_validate_json(config_json)
    metrics, curve = trainer(model, tokenizer, examples, context, config, 0, Path(work_dir), None, world)
    if world.is_main:
        torch.save(model.state_dict(), out_file)
        log_all(metrics | {f"loss_step_{row['step']}": row["loss"] for row in curve}, log_metric)


def sum_ranks_and_copy(source: str, target: str, log_metric) -> None:
    """Every rank joins torchrun's process group (gloo) and sums rank + 1 over the world; rank 0 writes the
    upper-cased input and logs the sum, the world size and the node count torchrun saw."""
    import torch.distributed as dist

    dist.init_process_group("gloo")
    total = torch.tensor([float(dist.get_rank() + 1)])
    dist.all_reduce(total)
    if dist.get_rank() == 0:
        copy_upper(source, target, log_metric)
        log_metric("rank_sum", total.item())
        log_metric("world_size", float(dist.get_world_size()))
        log_metric("nodes", float(os.environ["GROUP_WORLD_SIZE"]))
    dist.destroy_process_group()
