"""Run the GR2 pipeline on a Kubeflow Pipelines cluster: `gr2 submit` (one run) and `gr2 schedule` (recurring).

Each call compiles the preset, checks every task's placement, and uploads the result as a version of the
pipeline `gr2` named after the preset, the configuration hash and the compiled spec's hash: submitting
the same preset and code again reuses that version, a configuration or code change makes a new one.

Caching: deterministic stages cache whenever the component, configuration and inputs match. A retrain
(`retrain=True`, and every scheduled run) uses a variant of the version, suffixed `-retrain`, in which the
stages placed as `gpu-train` or `ingest` never come from the cache; asking for a retrain of a pipeline
without such a stage is an error rather than a run that silently retrains nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kfp import client as kfp_client

from gr2.config import RunConfig
from pipelines.gr2_pipeline import PIPELINE_NAME, compile_pipeline
from pipelines.placement import KINDS, cluster_config, compiled_tasks, load_compiled, placement_problems

DEFAULT_EXPERIMENT = "gr2"
RETRAIN_SUFFIX = "-retrain"
PARAMETER_TYPES = {
    "STRING": (str,),
    "NUMBER_INTEGER": (int,),
    "NUMBER_DOUBLE": (int, float),
    "BOOLEAN": (bool,),
    "STRUCT": (dict,),
    "LIST": (list,),
}


class SubmitError(ValueError):
    """A submission that cannot go ahead; the message names the parameter, value or task."""


@dataclass(frozen=True)
class Submission:
    pipeline_id: str
    version_id: str
    version_name: str
    run_id: str  # the run's id, or the recurring run's


@dataclass(frozen=True)
class CompiledPipeline:
    path: Path
    pipeline_spec: dict
    version_name: str


def parse_params(assignments: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """`NAME=VALUE` pairs, each value parsed as YAML: `train_gpus=4`, `gpu_node_selector={a: b}`."""
    params = {}
    for assignment in assignments:
        name, separator, raw = assignment.partition("=")
        if not separator or not name:
            raise SubmitError(f"--param {assignment!r}: expected NAME=VALUE, e.g. train_gpus=4")
        try:
            params[name] = yaml.safe_load(raw)
        except yaml.YAMLError as error:
            raise SubmitError(f"--param {name}: value {raw!r} is not valid YAML ({error})") from None
    return params


def check_params(pipeline_spec: dict, params: dict[str, Any]) -> None:
    declared = pipeline_spec["root"]["inputDefinitions"]["parameters"]
    for name, value in params.items():
        if name not in declared:
            raise SubmitError(f"--param {name}: not a pipeline parameter; parameters: {', '.join(sorted(declared))}")
        expected = declared[name]["parameterType"]
        wrong_bool = isinstance(value, bool) and bool not in PARAMETER_TYPES[expected]
        if wrong_bool or not isinstance(value, PARAMETER_TYPES[expected]):
            raise SubmitError(f"--param {name}: expected {expected.lower()}, got {type(value).__name__} {value!r}")


def check_cron(cron: str) -> None:
    """KFP schedules take six fields, seconds first."""
    fields = cron.split()
    if len(fields) == 5:
        raise SubmitError(f"cron {cron!r}: KFP wants six fields, seconds first, e.g. {'0 ' + cron!r}")
    if len(fields) != 6:
        raise SubmitError(f"cron {cron!r}: expected six fields (second minute hour day month weekday)")


def disable_retrain_caching(pipeline_spec: dict, platform_spec: dict | None) -> list[str]:
    """Turn caching off for every task a retrain must re-run; returns their names."""
    rerun = []
    for task in compiled_tasks(pipeline_spec, platform_spec):
        if task.kind in KINDS and KINDS[task.kind].rerun_on_retrain:
            task.task["cachingOptions"] = {}
            rerun.append(task.name)
    return rerun


def compile_for_cluster(config: RunConfig, out_dir: Path, retrain: bool) -> CompiledPipeline:
    """Compile, check the placement of every task, and make the retrain variant when asked."""
    path = out_dir / "pipeline.yaml"
    compile_pipeline(cluster_config(config), str(path))
    pipeline_spec, platform_spec = load_compiled(path.read_text())
    problems = placement_problems(pipeline_spec, platform_spec)
    if problems:
        raise SubmitError("placement problems in the compiled pipeline:\n  " + "\n  ".join(problems))
    if retrain:
        if not disable_retrain_caching(pipeline_spec, platform_spec):
            raise SubmitError(
                f"retrain: preset {config.name} compiles no stage of a kind that retraining re-runs "
                f"({', '.join(k for k, kind in KINDS.items() if kind.rerun_on_retrain)})"
            )
        documents = [pipeline_spec] + ([platform_spec] if platform_spec else [])
        path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    spec_hash = hashlib.sha256(path.read_bytes()).hexdigest()[:8]
    name = f"{config.name}-{config.config_hash()}-{spec_hash}" + (RETRAIN_SUFFIX if retrain else "")
    return CompiledPipeline(path, pipeline_spec, name)


def make_client(host: str | None, token: str | None) -> kfp_client.Client:
    """A token when given; else, inside a pod, the projected service-account token KFP's multi-user mode reads."""
    if token:
        return kfp_client.Client(host=host, existing_token=token)
    token_path = os.environ.get(kfp_client.KF_PIPELINES_SA_TOKEN_ENV, kfp_client.KF_PIPELINES_SA_TOKEN_PATH)
    if Path(token_path).is_file():
        return kfp_client.Client(host=host, credentials=kfp_client.ServiceAccountTokenVolumeCredentials(token_path))
    if host is None and "KUBERNETES_SERVICE_HOST" not in os.environ:
        raise SubmitError("--host: required outside a Kubernetes cluster, e.g. --host http://localhost:8080")
    return kfp_client.Client(host=host)


def find_version(client: kfp_client.Client, pipeline_id: str, name: str) -> str | None:
    by_name = json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})
    versions = client.list_pipeline_versions(pipeline_id, filter=by_name).pipeline_versions or []
    return versions[0].pipeline_version_id if versions else None


def ensure_version(client: kfp_client.Client, compiled: CompiledPipeline, description: str) -> tuple[str, str]:
    """The ids of the pipeline and of the version named `compiled.version_name`, uploading what is missing."""
    pipeline_id = client.get_pipeline_id(PIPELINE_NAME)
    if pipeline_id is None:
        pipeline_id = client.upload_pipeline(str(compiled.path), PIPELINE_NAME, description).pipeline_id
    version_id = find_version(client, pipeline_id, compiled.version_name)
    if version_id is None:
        version = client.upload_pipeline_version(
            str(compiled.path), compiled.version_name, pipeline_id=pipeline_id, description=description
        )
        version_id = version.pipeline_version_id
    return pipeline_id, version_id


@dataclass(frozen=True)
class Target:
    """Everything a run or a schedule needs before it is created."""

    client: kfp_client.Client
    experiment_id: str
    pipeline_id: str
    version_id: str
    version_name: str


def prepare(
    host: str | None,
    config: RunConfig,
    params: dict[str, Any],
    token: str | None,
    experiment: str,
    namespace: str | None,
    retrain: bool,
) -> Target:
    """Compile, check, upload when new, and find or create the experiment."""
    with tempfile.TemporaryDirectory() as tmp:
        compiled = compile_for_cluster(config, Path(tmp), retrain)
        check_params(compiled.pipeline_spec, params)
        client = make_client(host, token)
        pipeline_id, version_id = ensure_version(client, compiled, config.description)
    experiment_id = client.create_experiment(experiment, namespace=namespace).experiment_id
    return Target(client, experiment_id, pipeline_id, version_id, compiled.version_name)


def submit_run(
    host: str | None,
    config: RunConfig,
    params: dict[str, Any] | None = None,
    token: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    namespace: str | None = None,
    retrain: bool = False,
) -> Submission:
    """Upload the preset's pipeline version (when new) and start one run of it."""
    target = prepare(host, config, params or {}, token, experiment, namespace, retrain)
    run = target.client.run_pipeline(
        target.experiment_id,
        f"{config.name}-{time.strftime('%Y%m%d-%H%M%S')}",
        params=params or {},
        pipeline_id=target.pipeline_id,
        version_id=target.version_id,
    )
    return Submission(target.pipeline_id, target.version_id, target.version_name, run.run_id)


def schedule_run(
    host: str | None,
    config: RunConfig,
    cron: str,
    params: dict[str, Any] | None = None,
    token: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    namespace: str | None = None,
    max_concurrency: int = 1,
) -> Submission:
    """A recurring run for periodic retraining: the retrain variant, on a six-field cron, never catching up."""
    check_cron(cron)
    target = prepare(host, config, params or {}, token, experiment, namespace, retrain=True)
    recurring = target.client.create_recurring_run(
        target.experiment_id,
        f"{config.name}-retrain",
        cron_expression=cron,
        max_concurrency=max_concurrency,
        no_catchup=True,
        params=params or {},
        pipeline_id=target.pipeline_id,
        version_id=target.version_id,
    )
    return Submission(target.pipeline_id, target.version_id, target.version_name, recurring.recurring_run_id)
