"""Checkpoints of the training loops this project runs itself (direct SFT and DAPO, on-policy distillation):
the trainable weights, the optimiser and scheduler, the step, the logged curve and the RNG state, written
atomically by rank 0 into the stage's workspace, so an interrupted stage resumes where it stopped. (The
Hugging Face Trainer's stages use the Trainer's own checkpoints.)"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gr2.distributed.collective import SINGLE_PROCESS, ProcessWorld
from gr2.storage.atomic import atomic_dir

CHECKPOINT_DIR = "loop-checkpoint"
STATE_FILE = "state.pt"


@dataclass
class TrainingState:
    """What a checkpoint holds besides the weights and the optimiser."""

    step: int = 0
    curve: list[dict] = field(default_factory=list)
    rng: dict = field(default_factory=dict)

    def last_step_metrics(self) -> dict[str, float]:
        """The last logged step's values as `last_step_<name>` metrics (none before the first step)."""
        last = self.curve[-1] if self.curve else {}
        return {f"last_step_{name}": value for name, value in last.items() if name != "step"}


def trainable_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(
    work_dir: Path,
    trainable: Mapping[str, torch.nn.Parameter],
    optimizer,
    scheduler,
    state: TrainingState,
    world: ProcessWorld = SINGLE_PROCESS,
) -> None:
    """Rank 0 writes the checkpoint (every rank holds the same weights and optimiser state)."""
    if not world.is_main:
        return
    state.rng = {"torch": torch.get_rng_state(), "python": random.getstate()}
    payload = {
        "trainable": {name: p.detach().clone() for name, p in trainable.items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler else None,
        "state": state.__dict__,
    }
    with atomic_dir(work_dir / CHECKPOINT_DIR) as staging:
        torch.save(payload, staging / STATE_FILE)


def resume_checkpoint(
    work_dir: Path, trainable: Mapping[str, torch.nn.Parameter], optimizer, scheduler
) -> TrainingState:
    """Load the last checkpoint into the weights and optimiser; a fresh state when there is none."""
    path = work_dir / CHECKPOINT_DIR / STATE_FILE
    if not path.is_file():
        return TrainingState()
    payload = torch.load(path, weights_only=False)
    with torch.no_grad():
        for name, value in payload["trainable"].items():
            trainable[name].copy_(value)
    optimizer.load_state_dict(payload["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(payload["scheduler"])
    state = TrainingState(**payload["state"])
    torch.set_rng_state(state.rng["torch"])
    random.setstate(state.rng["python"])
    return state
