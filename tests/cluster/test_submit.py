"""`submit_run` and `schedule_run` through kfp.Client against a local server speaking the KFP v2beta1 API."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gr2.config import load_preset
from pipelines import submit
from pipelines.placement import DEFAULT_CLUSTER, KIND_LABEL
from pipelines.submit import SubmitError, parse_params, schedule_run, submit_run
from tests.cluster.kfp_server import API, serving_fake_kfp
from tests.cluster.placed_pipeline import compile_placed_pipeline

FIRST_SUBMISSION = [
    f"GET {API}/healthz",
    f"GET {API}/pipelines",
    f"POST {API}/pipelines/upload",
    f"GET {API}/pipelines/pipeline-1/versions",
    f"POST {API}/pipelines/upload_version",
    f"GET {API}/experiments",
    f"POST {API}/experiments",
    f"POST {API}/runs",
]


@pytest.fixture(autouse=True)
def placed_pipeline(monkeypatch, tmp_path):
    """Submit the small placed pipeline in place of the GR2 one; no in-cluster token here."""
    monkeypatch.setattr(submit, "compile_pipeline", compile_placed_pipeline)
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setenv("HOME", str(tmp_path))  # kfp.Client reads ~/.config/kfp/context.json


@pytest.fixture
def kfp_api():
    with serving_fake_kfp() as served:
        yield served


def uploaded_spec(request) -> tuple[dict, dict]:
    pipeline_spec, platform_spec = yaml.safe_load_all(request.body["uploadfile"])
    return pipeline_spec, platform_spec


def caching_of(pipeline_spec: dict) -> dict[str, bool]:
    return {
        name: task["cachingOptions"].get("enableCache", False)
        for name, task in pipeline_spec["root"]["dag"]["tasks"].items()
    }


def test_first_submission_uploads_a_version_named_by_config_hash_and_starts_a_run(kfp_api):
    host, fake = kfp_api
    config = load_preset("smoke")
    params = {"train_gpus": 4, "gpu_node_selector": {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}}
    submission = submit_run(host, config, params, token="s3cret", experiment="gr2-test")

    assert fake.calls() == FIRST_SUBMISSION
    assert {r.authorization for r in fake.requests} == {"Bearer s3cret"}
    upload, upload_version = fake.requests[2], fake.requests[4]
    assert upload.query["name"] == "gr2"
    assert upload_version.query == {
        "name": submission.version_name,
        "pipelineid": "pipeline-1",
        "description": config.description,
    }
    assert submission.version_name.startswith(f"smoke-{config.config_hash()}-")
    assert uploaded_spec(upload_version)[0]["pipelineInfo"]["name"] == "gr2"
    assert fake.experiments[0]["display_name"] == "gr2-test"
    [run] = fake.runs
    assert run["experiment_id"] == fake.experiments[0]["experiment_id"]
    assert run["pipeline_version_reference"] == {
        "pipeline_id": "pipeline-1",
        "pipeline_version_id": submission.version_id,
    }
    assert run["runtime_config"]["parameters"] == params
    assert run["display_name"].startswith("smoke-")
    assert submission.run_id == run["run_id"]


def test_the_same_preset_and_code_reuse_their_version(kfp_api):
    host, fake = kfp_api
    config = load_preset("smoke")
    first = submit_run(host, config, token="t")
    second = submit_run(host, config, token="t")
    assert second.version_id == first.version_id and second.run_id != first.run_id
    assert [c for c in fake.calls() if "upload" in c] == [
        f"POST {API}/pipelines/upload",
        f"POST {API}/pipelines/upload_version",
    ]
    changed = submit_run(host, load_preset("smoke", ["seed=1"]), token="t")
    assert changed.version_id != first.version_id
    assert changed.version_name.split("-")[1] != first.version_name.split("-")[1]


def test_retrain_reruns_training_and_ingest_but_keeps_caching_the_rest(kfp_api):
    host, fake = kfp_api
    plain = submit_run(host, load_preset("smoke"), token="t")
    retrain = submit_run(host, load_preset("smoke"), token="t", retrain=True)
    assert retrain.version_name.endswith("-retrain") and retrain.version_id != plain.version_id
    assert retrain.version_name.split("-")[:2] == plain.version_name.split("-")[:2]  # preset, config hash
    uploads = [r for r in fake.requests if r.path.endswith("upload_version")]
    assert caching_of(uploaded_spec(uploads[0])[0]) == {"ingest": True, "train": True, "sample": True}
    assert caching_of(uploaded_spec(uploads[1])[0]) == {"ingest": False, "train": False, "sample": True}


def test_schedule_creates_a_recurring_retrain_on_a_six_field_cron(kfp_api):
    host, fake = kfp_api
    scheduled = schedule_run(host, load_preset("smoke"), "0 0 3 * * 1", {"infer_gpus": 2}, token="t")
    [recurring] = fake.recurring_runs
    assert scheduled.version_name.endswith("-retrain")
    assert recurring["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * 1"}}
    assert recurring["mode"] == "ENABLE" and recurring["no_catchup"] is True
    assert recurring["max_concurrency"] == 1
    assert recurring["pipeline_version_reference"]["pipeline_version_id"] == scheduled.version_id
    assert recurring["runtime_config"]["parameters"] == {"infer_gpus": 2}
    assert scheduled.run_id == recurring["recurring_run_id"]


def test_in_cluster_auth_sends_the_projected_service_account_token(kfp_api, monkeypatch, tmp_path):
    host, fake = kfp_api
    token = tmp_path / "token"
    token.write_text("projected-token\n")
    monkeypatch.setenv("KF_PIPELINES_SA_TOKEN_PATH", str(token))
    submit_run(host, load_preset("smoke"))
    assert {r.authorization for r in fake.requests} == {"Bearer projected-token"}


def test_bad_params_and_cron_are_named_before_anything_is_sent(kfp_api):
    host, fake = kfp_api
    config = load_preset("smoke")
    with pytest.raises(SubmitError, match=r"--param gpu_count: not a pipeline parameter; parameters: accelerator_type"):
        submit_run(host, config, {"gpu_count": 2}, token="t")
    with pytest.raises(SubmitError, match="--param train_gpus: expected number_integer, got str 'eight'"):
        submit_run(host, config, {"train_gpus": "eight"}, token="t")
    with pytest.raises(SubmitError, match="--param gpu_tolerations: expected list, got dict"):
        submit_run(host, config, {"gpu_tolerations": DEFAULT_CLUSTER.gpu_tolerations[0]}, token="t")
    with pytest.raises(SubmitError, match="cron '0 3 \\* \\* 1': KFP wants six fields, seconds first, e.g. '0 0 3"):
        schedule_run(host, config, "0 3 * * 1", token="t")
    assert fake.requests == []


def test_parse_params_reads_yaml_values():
    assert parse_params(["train_gpus=4", "gpu_node_selector={pool: h100}", "teacher_secret=gr2"]) == {
        "train_gpus": 4,
        "gpu_node_selector": {"pool": "h100"},
        "teacher_secret": "gr2",
    }
    with pytest.raises(SubmitError, match="--param 'train_gpus': expected NAME=VALUE"):
        parse_params(["train_gpus"])


def test_retrain_without_a_training_stage_is_an_error(monkeypatch, kfp_api):
    host, fake = kfp_api

    def compile_cpu_only(config, package_path, until=None):
        """The placed pipeline with its ingest stage placed as `cpu` and its training stage as `gpu`."""
        compile_placed_pipeline(config, package_path)
        path = Path(package_path)
        pipeline_spec, platform_spec = yaml.safe_load_all(path.read_text())
        executors = platform_spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
        executors["exec-ingest"]["podMetadata"]["labels"] = {KIND_LABEL: "cpu"}
        executors["exec-train"]["podMetadata"]["labels"] = {KIND_LABEL: "gpu"}
        path.write_text(yaml.safe_dump_all([pipeline_spec, platform_spec]))

    monkeypatch.setattr(submit, "compile_pipeline", compile_cpu_only)
    with pytest.raises(
        SubmitError,
        match="retrain: preset smoke compiles no stage of a kind that retraining "
        r"re-runs \(ingest, gpu-train, trainjob\)",
    ):
        submit_run(host, load_preset("smoke"), token="t", retrain=True)
    assert fake.requests == []


def test_outside_a_cluster_a_host_is_required(monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(SubmitError, match="--host: required outside a Kubernetes cluster"):
        submit_run(None, load_preset("smoke"))
