"""Direct training on two CPU processes (torchrun, gloo): direct SFT trains exactly as one process with the
same global batch (each rank takes its views of every batch, gradients are summed); direct DAPO samples each
rank's share of the groups and logs the whole world's rollouts."""

import pickle

import pytest
import torch

from gr2.distributed.launch import StageCall, launch_here
from gr2.rank.direct import PromptContext
from gr2.traces.collaborative import CollaborativeCounts
from gr2.train.checkpoint import CHECKPOINT_DIR
from gr2.train.config import DirectDapoConfig, DirectSftConfig
from tests.conftest import REPO
from tests.distributed.workers import direct_training


@pytest.fixture
def direct_inputs(tmp_path, office, prompt_config):
    catalog, sids, split, examples = office
    evidence = CollaborativeCounts.from_sequences(split.train_sequences())
    config = prompt_config.model_copy(
        update={"direct_readout": "candidate", "direct_evidence": True, "direct_shuffle": True}
    )
    path = tmp_path / "inputs.pkl"
    path.write_bytes(pickle.dumps((examples[:6], PromptContext(catalog, sids, config, evidence))))
    return path


def train_in_worlds(kind: str, config_json: str, tiny_dir, inputs, tmp_path, monkeypatch) -> tuple[dict, dict]:
    """Metrics of one process here and of two launched ones, with the weights each saved."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the workers import tests.distributed.workers
    arguments = {"kind": kind, "model_dir": str(tiny_dir), "inputs_file": str(inputs), "config_json": config_json}
    one: dict[str, float] = {}
    direct_training(
        **arguments, out_file=str(tmp_path / "one.pt"), work_dir=str(tmp_path / "w1"), log_metric=one.__setitem__
    )
    call = StageCall(
        "tests.distributed.workers:direct_training",
        arguments | {"out_file": str(tmp_path / "two.pt"), "work_dir": str(tmp_path / "w2")},
    )
    two = launch_here(call, processes=2)
    return one, two


@pytest.mark.slow
def test_direct_sft_on_two_processes_matches_one(tiny_dir, direct_inputs, tmp_path, monkeypatch):
    # 6 examples x 2 candidate orders = 12 views: 3 batches of 4, so each rank takes 2 views of each
    config = DirectSftConfig(trainable_layers=1, views_per_example=2, epochs=1, batch_size=4, learning_rate=3e-3)
    one, two = train_in_worlds("sft", config.model_dump_json(), tiny_dir, direct_inputs, tmp_path, monkeypatch)
    assert one["train_steps"] == two["train_steps"] == 3 and one["train_views"] == two["train_views"] == 12
    for step in (1, 2, 3):
        assert two[f"loss_step_{step}"] == pytest.approx(one[f"loss_step_{step}"], rel=1e-5)
    weights_one, weights_two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    for name, tensor in weights_one.items():
        torch.testing.assert_close(weights_two[name], tensor, rtol=1e-4, atol=1e-6, msg=name)
    assert any(not torch.equal(weights_one[name], tensor) for name, tensor in load_tiny(tiny_dir).items())


def load_tiny(tiny_dir) -> dict[str, torch.Tensor]:
    from gr2.lm.models import load_model_and_tokenizer

    return load_model_and_tokenizer(tiny_dir)[0].state_dict()


@pytest.mark.slow
def test_direct_dapo_on_two_processes_trains_on_the_whole_worlds_groups(tiny_dir, direct_inputs, tmp_path, monkeypatch):
    config = DirectDapoConfig(
        trainable_layers=1, num_generations=4, prompts_per_step=4, max_steps=2, learning_rate=1e-3
    )
    one, two = train_in_worlds("dapo", config.model_dump_json(), tiny_dir, direct_inputs, tmp_path, monkeypatch)
    assert one["train_steps"] == two["train_steps"] == 2
    assert two["last_step_valid_share"] == 1.0 and two["last_step_reward_std"] > 0
    # the world's rollout groups, not rank 0's alone: at least prompts_per_step groups generated
    assert two["last_step_dropped_group_share"] < 1.0
    assert (tmp_path / "w2" / CHECKPOINT_DIR / "state.pt").is_file()
    assert not torch.equal(
        torch.load(tmp_path / "two.pt")["model.norm.weight"], load_tiny(tiny_dir)["model.norm.weight"]
    )
