"""SFT on two CPU processes (torchrun, gloo) trains exactly as one process with the same global batch: the
decoupled loss takes each span's mean over the whole world's micro-batch."""

import json

import pytest
import torch
from safetensors.torch import load_file

from gr2.distributed.launch import StageCall, launch_here
from gr2.train.config import SftConfig
from tests.conftest import REPO
from tests.distributed.workers import sft_traces


def sft_config(per_device_batch: int) -> str:
    return SftConfig(
        max_steps=3, learning_rate=3e-3, warmup_ratio=0, per_device_train_batch_size=per_device_batch
    ).model_dump_json()


@pytest.mark.slow
def test_two_processes_match_one_with_the_same_global_batch(tmp_path, tiny_dir, traces, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the workers import tests.distributed.workers
    traces_file = tmp_path / "traces.jsonl"
    # whole global batches only: at an epoch's end a short batch is split unevenly (accelerate repeats samples)
    kept = traces[: len(traces) // 4 * 4]
    assert kept, "the fixture has fewer than 4 accepted traces"
    traces_file.write_text("".join(json.dumps(trace) + "\n" for trace in kept))
    one: dict[str, float] = {}
    sft_traces(
        str(tiny_dir), str(traces_file), sft_config(4), str(tmp_path / "one"), str(tmp_path / "c1"), one.__setitem__
    )
    arguments = {
        "model_dir": str(tiny_dir),
        "traces_file": str(traces_file),
        "config_json": sft_config(2),
        "out_dir": str(tmp_path / "two"),
        "checkpoint_dir": str(tmp_path / "c2"),
    }
    two = launch_here(StageCall("tests.distributed.workers:sft_traces", arguments), processes=2)
    assert two["train_steps"] == one["train_steps"] == 3
    for step in (1, 2, 3):
        assert two[f"loss_step_{step}"] == pytest.approx(one[f"loss_step_{step}"], rel=1e-5)
    weights_one = load_file(tmp_path / "one" / "model.safetensors")
    weights_two = load_file(tmp_path / "two" / "model.safetensors")
    for name, tensor in weights_one.items():
        torch.testing.assert_close(weights_two[name], tensor, rtol=1e-4, atol=1e-6, msg=name)
