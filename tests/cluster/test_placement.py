"""Placement on a small pipeline compiled to YAML: the Kubernetes platform spec every kind of task gets."""

import copy
import json

import pytest
import yaml
from kfp import compiler, dsl, local

from gr2.config import load_preset
from pipelines.placement import (
    KIND_LABEL,
    KINDS,
    WORKSPACE_MOUNT,
    ClusterParams,
    cluster_config,
    load_compiled,
    place_task,
    placement_problems,
    task_kind,
)
from tests.cluster.placed_pipeline import TEACHER_ENV, build_placed_pipeline, compile_placed_pipeline, ingest


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    path = tmp_path_factory.mktemp("placed") / "pipeline.yaml"
    compile_placed_pipeline(load_preset("smoke"), str(path))
    return load_compiled(path.read_text())


def executor(pipeline_spec: dict, platform_spec: dict, task: str) -> tuple[dict, dict, dict]:
    """The task spec, its container and its Kubernetes settings."""
    spec = pipeline_spec["root"]["dag"]["tasks"][task]
    label = pipeline_spec["components"][spec["componentRef"]["name"]]["executorLabel"]
    container = pipeline_spec["deploymentSpec"]["executors"][label]["container"]
    return spec, container, platform_spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"][label]


def channel(name: str) -> str:
    return f"{{{{$.inputs.parameters['pipelinechannel--{name}']}}}}"


def test_cluster_values_are_pipeline_parameters_with_defaults(compiled):
    parameters = compiled[0]["root"]["inputDefinitions"]["parameters"]
    assert parameters["gpu_node_selector"]["parameterType"] == "STRUCT"
    assert parameters["gpu_node_selector"]["defaultValue"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert parameters["gpu_tolerations"]["parameterType"] == "LIST"
    assert parameters["gpu_tolerations"]["defaultValue"][0]["key"] == "nvidia.com/gpu"
    assert parameters["train_gpus"] == {"defaultValue": 8.0, "isOptional": True, "parameterType": "NUMBER_INTEGER"}
    assert parameters["accelerator_type"]["defaultValue"] == "nvidia.com/gpu"


def test_training_task_gets_gpus_node_pool_shm_workspace_retries_and_timeout(compiled):
    spec, container, k8s = executor(*compiled, "train")
    resources = container["resources"]
    assert resources["accelerator"] == {
        "resourceType": channel("accelerator_type"),
        "resourceCount": channel("train_gpus"),
    }
    assert (resources["resourceCpuRequest"], resources["resourceMemoryRequest"]) == ("48", "480Gi")
    assert resources["resourceMemoryLimit"] == "480Gi"
    assert k8s["nodeSelector"] == {"nodeSelectorJson": {"componentInputParameter": "gpu_node_selector"}}
    assert k8s["tolerations"] == [{"tolerationJson": {"componentInputParameter": "gpu_tolerations"}}]
    assert k8s["emptyDirMounts"] == [
        {"medium": "Memory", "mountPath": "/dev/shm", "sizeLimit": "64Gi", "volumeName": "dshm"}
    ]
    [pvc] = k8s["pvcMount"]
    assert pvc["pvcNameParameter"] == {"componentInputParameter": "workspace_pvc"}
    assert pvc["mountPath"] == WORKSPACE_MOUNT
    assert k8s["activeDeadlineSeconds"] == str(72 * 3600)
    assert k8s["podMetadata"]["labels"] == {KIND_LABEL: "gpu-train"}
    assert spec["retryPolicy"]["maxRetryCount"] == 2
    assert spec["cachingOptions"] == {"enableCache": True}


def test_sampling_task_gets_inference_gpus_and_the_teacher_secret(compiled):
    _, container, k8s = executor(*compiled, "sample")
    assert container["resources"]["accelerator"]["resourceCount"] == channel("infer_gpus")
    assert k8s["secretAsEnv"] == [
        {
            "keyToEnv": [{"envVar": TEACHER_ENV, "secretKey": "api_key"}],
            "optional": True,
            "secretNameParameter": {"componentInputParameter": "teacher_secret"},
        }
    ]


def test_cpu_task_asks_for_no_gpu_and_no_gpu_nodes_but_shares_the_workspace(compiled):
    spec, container, k8s = executor(*compiled, "ingest")
    assert "accelerator" not in container["resources"]
    assert not {"nodeSelector", "tolerations", "emptyDirMounts", "secretAsEnv"} & set(k8s)
    assert [m["mountPath"] for m in k8s["pvcMount"]] == [WORKSPACE_MOUNT]
    assert k8s["podMetadata"]["labels"] == {KIND_LABEL: "ingest"}
    assert spec["cachingOptions"] == {"enableCache": True}


def test_placement_problems_is_empty_for_a_placed_pipeline(compiled):
    assert placement_problems(*compiled) == []


def test_placement_problems_names_each_task_and_what_it_lacks(compiled):
    pipeline_spec, platform_spec = copy.deepcopy(compiled)
    executors = platform_spec["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    _, _, train = executor(pipeline_spec, platform_spec, "train")
    del train["tolerations"], train["emptyDirMounts"], train["pvcMount"]
    _, ingest_container, _ = executor(pipeline_spec, platform_spec, "ingest")
    ingest_container["resources"]["accelerator"] = {"resourceType": "nvidia.com/gpu", "resourceCount": "1"}
    _, _, sample = executor(pipeline_spec, platform_spec, "sample")
    sample["podMetadata"]["labels"] = {}
    assert len(executors) == 3
    assert placement_problems(pipeline_spec, platform_spec) == [
        "task ingest (ingest): a CPU task asks for an accelerator",
        "task sample: not placed (pod label gr2.kubeflow.org/kind is None)",
        "task train (gpu-train): no workspace PVC at /mnt/workspace",
        "task train (gpu-train): missing tolerations, /dev/shm",
    ]


def test_unknown_kind_and_missing_parameters_are_named():
    with pytest.raises(ValueError, match="task kind 'tpu': unknown; kinds: cpu, ingest, gpu, gpu-train, trainjob"):
        task_kind("tpu")
    with pytest.raises(TypeError, match="missing for placement: teacher_secret"):
        ClusterParams.pick({name: None for name in ClusterParams.__dataclass_fields__ if name != "teacher_secret"})


def test_only_training_and_ingest_rerun_on_retrain():
    assert {name for name, kind in KINDS.items() if kind.rerun_on_retrain} == {"ingest", "gpu-train", "trainjob"}


@pytest.mark.slow
def test_kfp_local_runs_a_placed_pipeline_and_ignores_the_cluster_settings(tmp_path):
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path), raise_on_error=True)
    config = load_preset("smoke")
    build_placed_pipeline(config)()
    [traces] = tmp_path.glob("*/sample/traces")
    assert traces.read_text() == f"{config.model_dump_json().upper()} key=unset"
    assert json.loads(config.model_dump_json())["name"] == "smoke"


def test_cluster_config_puts_the_workspace_on_the_pvc_without_changing_the_hash():
    config = load_preset("smoke")
    placed = cluster_config(config)
    assert placed.workspace == WORKSPACE_MOUNT and placed.config_hash() == config.config_hash()


def unplaced_pipeline(kind: str):
    @dsl.pipeline(name="local")
    def unplaced(config_json: str = "{}"):
        place_task(ingest(config_json=config_json), kind, None)

    return unplaced


def test_a_local_run_leaves_tasks_unplaced_but_still_checks_the_kind(tmp_path):
    path = tmp_path / "local.yaml"
    compiler.Compiler().compile(unplaced_pipeline("ingest"), str(path))
    [pipeline_spec] = yaml.safe_load_all(path.read_text())
    [executor_spec] = pipeline_spec["deploymentSpec"]["executors"].values()
    assert "resources" not in executor_spec["container"]
    assert "retryPolicy" not in pipeline_spec["root"]["dag"]["tasks"]["ingest"]
    with pytest.raises(ValueError, match="task kind 'gpu-trian': unknown"):
        unplaced_pipeline("gpu-trian")
