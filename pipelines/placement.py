"""Where and how every pipeline task runs on a cluster: one helper, `place_task`, places them all.

What differs between clusters (accelerator resource, GPU counts, node selector, tolerations, workspace
PVC, teacher secret) is a pipeline parameter, so one compiled YAML serves several clusters and a run
overrides them (`gr2 submit --param gpu_node_selector='{...}'`). What a stage needs (CPU, memory,
/dev/shm, timeout, retries, caching) follows from its kind. Local runs place nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import yaml

from gr2.config import RunConfig
from gr2.distributed.placement import TrainJobPlacement

if TYPE_CHECKING:  # the training components import this module inside a task, where kfp.dsl is minimal
    from kfp.dsl import PipelineTask

KIND_LABEL = "gr2.kubeflow.org/kind"
SHM_VOLUME = "dshm"
WORKSPACE_MOUNT = "/mnt/workspace"
TEACHER_SECRET_KEY = "api_key"


@dataclass(frozen=True)
class TaskKind:
    """What one kind of stage asks of the cluster."""

    name: str
    cpu: str
    memory: str  # request and limit: GPU pods get Guaranteed QoS, and /dev/shm counts against it
    timeout_s: int
    gpus_param: str | None = None  # the ClusterParams field holding this kind's GPU count; None: no GPU
    shm: str | None = None  # size of the memory-backed /dev/shm (NCCL, DataLoader workers, vLLM)
    rerun_on_retrain: bool = False  # caching off in the retrain variant (`gr2 submit --retrain`, `gr2 schedule`)
    retries: int = 2


HOUR = 3600
KINDS = {
    kind.name: kind
    for kind in (
        # deterministic CPU stages: cached whenever the component, config and input artifacts match
        TaskKind("cpu", cpu="4", memory="16Gi", timeout_s=4 * HOUR),
        # CPU stages that read data from outside the pipeline: a retrain re-reads it
        TaskKind("ingest", cpu="4", memory="16Gi", timeout_s=4 * HOUR, rerun_on_retrain=True),
        # GPU inference and model handling: sampling, evaluation, loading a large checkpoint (vLLM, faiss-gpu)
        TaskKind("gpu", cpu="16", memory="128Gi", timeout_s=24 * HOUR, gpus_param="infer_gpus", shm="32Gi"),
        # GPU training, in-pod on one node: DeepSpeed over the node's GPUs
        TaskKind(
            "gpu-train",
            cpu="48",
            memory="480Gi",
            timeout_s=72 * HOUR,
            gpus_param="train_gpus",
            shm="64Gi",
            rerun_on_retrain=True,
        ),
        # a training stage on several nodes: its task only stages the artifacts, creates the Kubeflow Trainer
        # TrainJob (whose nodes are placed as gpu-train tasks: `trainjob_placement`) and waits for it
        TaskKind("trainjob", cpu="2", memory="8Gi", timeout_s=72 * HOUR, rerun_on_retrain=True),
    )
}


@dataclass(frozen=True)
class ClusterParams:
    """The cluster-specific pipeline parameters: values here are the defaults, channels inside a pipeline."""

    accelerator_type: Any = "nvidia.com/gpu"  # the extended resource the device plugin advertises
    train_gpus: Any = 8
    infer_gpus: Any = 1
    # NVIDIA GPU feature discovery's label; on GKE: {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    gpu_node_selector: Any = field(default_factory=lambda: {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"})
    gpu_tolerations: Any = field(
        default_factory=lambda: [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    )
    workspace_pvc: Any = "gr2-workspace"
    teacher_secret: Any = "gr2-teacher"

    @classmethod
    def pick(cls, values: Mapping[str, Any]) -> ClusterParams:
        """The fields from a mapping such as a pipeline function's `locals()`."""
        names = [param.name for param in fields(cls)]
        missing = [name for name in names if name not in values]
        if missing:
            raise TypeError(f"pipeline parameters missing for placement: {', '.join(missing)}")
        return cls(**{name: values[name] for name in names})


DEFAULT_CLUSTER = ClusterParams()


def cluster_config(config: RunConfig) -> RunConfig:
    """The configuration as compiled for a cluster: the workspace (checkpoints, resumable outputs) on the PVC
    that every task mounts. The workspace is not part of the configuration hash."""
    return config.model_copy(update={"workspace": WORKSPACE_MOUNT})


def trainjob_placement(
    image: str, accelerator_type: str, gpus: int, node_selector: dict, tolerations: list, workspace_pvc: str
) -> TrainJobPlacement:
    """Each node of a multi-node training stage's TrainJob gets what one `gpu-train` task gets."""
    spec = KINDS["gpu-train"]
    return TrainJobPlacement(
        image=image,
        resources_per_node={"cpu": spec.cpu, "memory": spec.memory, accelerator_type: gpus},
        node_selector=node_selector,
        tolerations=tolerations,
        workspace_pvc=workspace_pvc,
        workspace_mount=WORKSPACE_MOUNT,
        shm_size=spec.shm,
        labels={KIND_LABEL: spec.name},
    )


def task_kind(kind: str) -> TaskKind:
    if kind not in KINDS:
        raise ValueError(f"task kind {kind!r}: unknown; kinds: {', '.join(KINDS)}")
    return KINDS[kind]


def place_task(
    task: PipelineTask, kind: str, cluster: ClusterParams | None, teacher_env: str | None = None
) -> PipelineTask:
    """Resources, node placement, volumes, retries, timeout and caching for `task` as a stage of `kind`.

    Every task mounts the workspace PVC at WORKSPACE_MOUNT (see `cluster_config`); stages run in parallel
    on different nodes, so the PVC must be ReadWriteMany.

    `cluster` None (a kfp.local run) leaves the task as it is: kfp.local ignores everything here but the
    retries, which would make a failing local task wait out the cluster's backoff.
    `teacher_env`: the environment variable the stage reads the teacher's API key from; it is filled
    from the `api_key` entry of the secret named by `cluster.teacher_secret` (optional, so clusters
    without a remote teacher run too).
    """
    from kfp import kubernetes

    spec = task_kind(kind)
    if cluster is None:
        return task
    task.set_cpu_request(spec.cpu).set_memory_request(spec.memory).set_memory_limit(spec.memory)
    task.set_retry(spec.retries, backoff_duration="120s", backoff_factor=2.0, backoff_max_duration="3600s")
    task.set_caching_options(enable_caching=True)
    kubernetes.set_timeout(task, spec.timeout_s)
    kubernetes.add_pod_label(task, KIND_LABEL, spec.name)
    kubernetes.mount_pvc(task, cluster.workspace_pvc, WORKSPACE_MOUNT)
    if spec.gpus_param:
        task.set_accelerator_type(cluster.accelerator_type)
        task.set_accelerator_limit(getattr(cluster, spec.gpus_param))
        kubernetes.add_node_selector_json(task, cluster.gpu_node_selector)
        kubernetes.add_toleration_json(task, cluster.gpu_tolerations)
    if spec.shm:
        kubernetes.empty_dir_mount(task, SHM_VOLUME, "/dev/shm", medium="Memory", size_limit=spec.shm)
    if teacher_env:
        kubernetes.use_secret_as_env(task, cluster.teacher_secret, {TEACHER_SECRET_KEY: teacher_env}, optional=True)
    return task


@dataclass(frozen=True)
class CompiledTask:
    """One task of a compiled pipeline with its container and Kubernetes settings."""

    name: str
    task: dict
    container: dict
    kubernetes: dict

    @property
    def kind(self) -> str | None:
        return self.kubernetes.get("podMetadata", {}).get("labels", {}).get(KIND_LABEL)

    @property
    def asks_for_gpu(self) -> bool:
        return "accelerator" in self.container.get("resources", {})

    @property
    def mounts_workspace(self) -> bool:
        return any(m.get("mountPath") == WORKSPACE_MOUNT for m in self.kubernetes.get("pvcMount", []))

    @property
    def has_shm(self) -> bool:
        mounts = self.kubernetes.get("emptyDirMounts", [])
        return any(m.get("mountPath") == "/dev/shm" and m.get("medium") == "Memory" for m in mounts)


def load_compiled(text: str) -> tuple[dict, dict | None]:
    """The pipeline spec and, when the pipeline has Kubernetes settings, the platform spec of a compiled YAML."""
    documents = list(yaml.safe_load_all(text))
    return documents[0], documents[1] if len(documents) > 1 else None


def dag_tasks(pipeline_spec: dict, dag: dict) -> list[tuple[str, dict]]:
    """The container tasks of a DAG, including those inside condition (`dsl.If`) sub-DAGs."""
    found = []
    for name, task in dag["tasks"].items():
        component = pipeline_spec["components"][task["componentRef"]["name"]]
        found += dag_tasks(pipeline_spec, component["dag"]) if "dag" in component else [(name, task)]
    return found


def compiled_tasks(pipeline_spec: dict, platform_spec: dict | None) -> list[CompiledTask]:
    """Every container task of a compiled pipeline (the two YAML documents `gr2 compile` writes)."""
    components = pipeline_spec["components"]
    executors = pipeline_spec["deploymentSpec"]["executors"]
    platform = (platform_spec or {}).get("platforms", {}).get("kubernetes", {}).get("deploymentSpec", {})
    tasks = []
    for name, task in dag_tasks(pipeline_spec, pipeline_spec["root"]["dag"]):
        executor = components[task["componentRef"]["name"]]["executorLabel"]
        tasks.append(
            CompiledTask(name, task, executors[executor]["container"], platform.get("executors", {}).get(executor, {}))
        )
    return tasks


def placement_problems(pipeline_spec: dict, platform_spec: dict | None) -> list[str]:
    """What is wrong with the placement of a compiled pipeline, one line per problem; empty when all is well."""
    problems = []
    for task in compiled_tasks(pipeline_spec, platform_spec):
        if task.kind not in KINDS:
            problems.append(f"task {task.name}: not placed (pod label {KIND_LABEL} is {task.kind!r})")
            continue
        if not task.mounts_workspace:
            problems.append(f"task {task.name} ({task.kind}): no workspace PVC at {WORKSPACE_MOUNT}")
        if task_kind(task.kind).gpus_param:
            missing = [
                what
                for what, present in (
                    ("accelerator", task.asks_for_gpu),
                    ("node selector", "nodeSelector" in task.kubernetes),
                    ("tolerations", bool(task.kubernetes.get("tolerations"))),
                    ("/dev/shm", task.has_shm),
                )
                if not present
            ]
            if missing:
                problems.append(f"task {task.name} ({task.kind}): missing {', '.join(missing)}")
        elif task.asks_for_gpu:
            problems.append(f"task {task.name} ({task.kind}): a CPU task asks for an accelerator")
    return problems
