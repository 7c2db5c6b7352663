"""The launcher: a failing rank fails the launch with its own error, and the step wrapper decides where a step
runs from its config section."""

import pytest

from gr2.config import load_preset
from gr2.distributed.launch import RankFailed, StageCall, distributed_step, launch_here
from tests.conftest import REPO


def test_a_failing_rank_fails_the_launch_with_its_error(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    with pytest.raises(RankFailed, match=r"(?s)rank 1 of 2 failed: ValueError: rank 1 refuses.*Traceback"):
        launch_here(StageCall("tests.distributed.workers:fail_on_rank", {"rank": 1}), processes=2)


def record_calls(calls: list):
    @distributed_step("sft")
    def step(config_json: str, log_metric) -> None:
        calls.append(config_json)
        log_metric("ran_here", 1.0)

    return step


def test_one_process_runs_the_step_in_this_process():
    calls, logged = [], {}
    config_json = load_preset("smoke", ["sft.processes=1"]).model_dump_json()
    record_calls(calls)(config_json, logged.__setitem__)
    assert calls == [config_json] and logged == {"ran_here": 1.0}


def test_several_nodes_without_a_placement_is_refused():
    config_json = load_preset("smoke", ["sft.nodes=2", "sft.processes=1"]).model_dump_json()
    with pytest.raises(ValueError, match="sft.nodes=2: several nodes run as a Kubeflow Trainer TrainJob"):
        record_calls([])(config_json, print)
