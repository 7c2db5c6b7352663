"""The `opd` stage as the pipeline runs it: `gr2.steps.opd_step` on artifact folders, the tiny model as its own
teacher, two steps, interrupted after the first and resumed from the stage workspace."""

import dataclasses
import json

import pytest
import torch
from safetensors.torch import load_file

from gr2.config import ConfigError, RunConfig, parse_config
from gr2.data.artifact import write_interactions
from gr2.data.schema import Interactions
from gr2.inputs import SID_MAP_FILE
from gr2.prerank.candidates import write_examples
from gr2.steps import opd_step
from gr2.train import opd
from gr2.train.config import OpdConfig


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory, office):
    """The data, prerank and sid artifacts of 300 Office users: 6 train and 2 valid examples."""
    catalog, sids, split, examples = office
    root = tmp_path_factory.mktemp("artifacts")
    write_interactions(Interactions("office-300", catalog, split.sequences), root / "dataset")
    valid = [dataclasses.replace(e, split="valid") for e in examples[6:8]]
    write_examples([*examples[:6], *valid], root / "examples")
    (root / "sid").mkdir()
    sids.save(root / "sid" / SID_MAP_FILE)
    return {"dataset": str(root / "dataset"), "examples": str(root / "examples"), "sid": str(root / "sid")}


def stage_config(workspace) -> str:
    # constrained rollouts: valid answers, so the rewards differ and the first step moves the weights
    opd_config = OpdConfig(
        enabled=True,
        teacher="student",
        num_generations=2,
        prompts_per_step=2,
        max_steps=2,
        save_steps=1,
        learning_rate=1e-3,
        constrained_rollouts=True,
        reasoning_tokens=2,
        eval_examples=2,
        eval_max_new_tokens=32,
    )
    return RunConfig(name="opd-stage", workspace=str(workspace), opd=opd_config).model_dump_json()


def run_step(config_json: str, artifacts: dict, model_in, model_out) -> dict[str, float]:
    metrics = {}
    opd_step(config_json, **artifacts, model=str(model_in), model_out=str(model_out), log_metric=metrics.__setitem__)
    return metrics


class Interrupted(Exception):
    pass


def weights(model_dir) -> dict[str, torch.Tensor]:
    return load_file(model_dir / "model.safetensors")


@pytest.mark.slow
def test_the_opd_step_trains_two_steps_and_resumes_from_its_workspace(tiny_dir, artifacts, tmp_path, monkeypatch):
    whole = run_step(stage_config(tmp_path / "whole"), artifacts, tiny_dir, tmp_path / "whole-model")
    assert (whole["train_steps"], whole["resumed_from_step"]) == (2, 0)
    assert whole["last_step_valid_share"] == 1.0 and whole["last_step_kl_mean"] > 0.0
    assert whole["eval_examples"] == 2 and {"recall@1", "ndcg@5", "invalid_rate"} <= set(whole)
    # the teacher is the input model: KL 0 at the first step, then the KL to where the student started
    curve = json.loads((tmp_path / "whole-model" / "training_curve.json").read_text())
    assert [row["step"] for row in curve] == [1, 2] and curve[0]["kl_mean"] == 0.0

    sampled = opd.sample_group
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:  # the first group of step 2
            raise Interrupted
        return sampled(*args, **kwargs)

    config_json = stage_config(tmp_path / "halves")
    monkeypatch.setattr(opd, "sample_group", interrupted)
    with pytest.raises(Interrupted):
        run_step(config_json, artifacts, tiny_dir, tmp_path / "halves-model")
    monkeypatch.setattr(opd, "sample_group", sampled)
    resumed = run_step(config_json, artifacts, tiny_dir, tmp_path / "halves-model")
    assert (resumed["train_steps"], resumed["resumed_from_step"]) == (2, 1)
    for name in ("last_step_loss", "last_step_reward_mean", "recall@1"):
        assert resumed[name] == pytest.approx(whole[name]), name

    start, trained, again = weights(tiny_dir), weights(tmp_path / "whole-model"), weights(tmp_path / "halves-model")
    assert any(not torch.equal(start[name], trained[name]) for name in start)
    for name, value in trained.items():
        assert torch.allclose(value, again[name], atol=1e-6), name


def test_an_enabled_opd_stage_without_a_teacher_is_a_config_error_naming_the_field():
    with pytest.raises(ConfigError, match=r"opd: Value error, opd.teacher is not set"):
        parse_config({"name": "x", "opd": {"enabled": True}}, "preset")
