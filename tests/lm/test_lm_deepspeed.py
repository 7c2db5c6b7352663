"""The GPU presets' DeepSpeed path, run as one CPU process so it is not dead configuration."""

import json
import os
from pathlib import Path

import pytest

from gr2.lm.config import MidtrainConfig
from gr2.lm.midtrain import run_midtraining

ZERO2 = Path(__file__).resolve().parents[2] / "configs" / "deepspeed" / "zero2.json"


@pytest.fixture
def isolated_process_state():
    """DeepSpeed and accelerate set environment variables and process-wide state (the process group, the
    accelerator state) that would make every later Trainer in this process, and the subprocesses it
    starts, believe DeepSpeed is on: put all of it back after the test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)
    import torch.distributed
    from accelerate.state import AcceleratorState

    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.mark.slow
@pytest.mark.timeout(600)  # a cold run JIT-compiles two DeepSpeed ops (~3 min here)
def test_zero2_config_trains_and_checkpoints_through_deepspeed(
    tmp_path, tiny_dir, catalog, sid_map, split, monkeypatch, isolated_process_state
):
    pytest.importorskip("deepspeed")
    assert json.loads(ZERO2.read_text())["zero_optimization"]["stage"] == 2
    for name, value in {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29517",
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
    }.items():
        monkeypatch.setenv(name, value)
    train, test = split
    config = MidtrainConfig(
        deepspeed=str(ZERO2),
        num_examples=16,
        max_steps=2,
        save_steps=1,
        per_device_train_batch_size=4,
        eval_sample_size=2,
        caption_eval_size=2,
        eval_batch_size=2,
    )
    metrics = run_midtraining(tiny_dir, catalog, sid_map, train, test, config, tmp_path / "out", tmp_path / "ckpt")
    assert metrics["train_steps"] == 2 and metrics["final_loss"] > 0
    # ZeRO checkpoints are DeepSpeed's own layout: the partitioned optimiser state under global_step*/.
    assert list((tmp_path / "ckpt" / "checkpoint-2").glob("global_step2/*optim_states.pt"))
    assert (tmp_path / "out" / "model.safetensors").exists()
