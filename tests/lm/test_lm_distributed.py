"""Mid-training on two CPU processes (torchrun, gloo) trains exactly as one process with the same global batch."""

import pytest
import torch
from safetensors.torch import load_file

from gr2.distributed.launch import StageCall, launch_here
from gr2.lm.config import MidtrainConfig
from tests.conftest import REPO
from tests.distributed.workers import midtrain_office


def midtrain_config(per_device_batch: int) -> str:
    return MidtrainConfig(
        num_examples=32,
        max_steps=3,
        logging_steps=1,
        learning_rate=3e-3,
        per_device_train_batch_size=per_device_batch,
        eval_sample_size=2,
        caption_eval_size=2,
        eval_batch_size=2,
    ).model_dump_json()


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(tmp_path, tiny_dir, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the workers import tests.distributed.workers
    one: dict[str, float] = {}
    midtrain_office(str(tiny_dir), midtrain_config(8), str(tmp_path / "one"), str(tmp_path / "ckpt1"), one.__setitem__)
    arguments = {
        "model_dir": str(tiny_dir),
        "config_json": midtrain_config(4),
        "out_dir": str(tmp_path / "two"),
        "checkpoint_dir": str(tmp_path / "ckpt2"),
    }
    two = launch_here(StageCall("tests.distributed.workers:midtrain_office", arguments), processes=2)
    assert two["train_steps"] == one["train_steps"] == 3
    assert two["train_sequences"] == one["train_sequences"] == 24  # 2 processes x 4 = 8 per step
    assert two["final_loss"] == pytest.approx(one["final_loss"], rel=1e-5)
    assert two["sid_valid_rate"] == one["sid_valid_rate"]  # rank 0 evaluated and published its metrics
    weights_one = load_file(tmp_path / "one" / "model.safetensors")
    weights_two = load_file(tmp_path / "two" / "model.safetensors")
    for name, tensor in weights_one.items():
        torch.testing.assert_close(weights_two[name], tensor, rtol=1e-4, atol=1e-6, msg=name)
