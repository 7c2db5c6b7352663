"""Several nodes: a training stage as a Kubeflow Trainer TrainJob (trainer.kubeflow.org/v1alpha1).

The TrainJob is created through the Kubeflow SDK (`kubeflow.trainer.TrainerClient`, Kubernetes backend) on
Trainer's torch runtime (`torch-distributed`), which starts the trainer container on every node with
torchrun's rendezvous in PET_* variables. Its nodes are placed as the KFP task would have been
(`TrainJobPlacement`: image, resources, node selector, tolerations, the workspace volume and a memory-backed
/dev/shm) through a runtime patch of the runtime's `node` job. The launching task streams node 0's log, waits,
and returns the TrainJob's failure reason (None when it completed).
"""

from __future__ import annotations

from kubeflow.common.types import KubernetesBackendConfig
from kubeflow.trainer import CustomTrainerContainer, Runtime, RuntimeKind, RuntimeTrainer, TrainerClient, TrainerType
from kubeflow.trainer.constants import constants
from kubeflow.trainer.options.kubernetes import (
    ContainerPatch,
    JobSetSpecPatch,
    JobSetTemplatePatch,
    JobSpecPatch,
    JobTemplatePatch,
    Labels,
    PodSpecPatch,
    PodTemplatePatch,
    ReplicatedJobPatch,
    RuntimePatch,
    TrainerCommand,
    TrainingRuntimeSpecPatch,
)

from gr2.distributed.placement import TrainJobPlacement

NODE = constants.NODE  # the runtime's replicated job and trainer container
WORKSPACE_VOLUME = "workspace"
SHM_VOLUME = "dshm"
STAGE_LABEL = "gr2.kubeflow.org/stage"
WAIT_SECONDS = 72 * 3600  # the gpu-train kind's task timeout
POLL_SECONDS = 30


def torch_runtime(name: str) -> Runtime:
    """The ClusterTrainingRuntime by name, not looked up: the Trainer's webhook refuses a missing one."""
    trainer = RuntimeTrainer(trainer_type=TrainerType.CUSTOM_TRAINER, framework="torch", image="")
    return Runtime(name=name, trainer=trainer, kind=RuntimeKind.CLUSTER_TRAINING_RUNTIME)


def node_patch(placement: TrainJobPlacement) -> RuntimePatch:
    """Node selector, tolerations, the workspace PVC and /dev/shm for every pod of the runtime's node job."""
    volumes = [{"name": WORKSPACE_VOLUME, "persistentVolumeClaim": {"claimName": placement.workspace_pvc}}]
    mounts = [{"name": WORKSPACE_VOLUME, "mountPath": placement.workspace_mount}]
    if placement.shm_size:
        volumes.append({"name": SHM_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": placement.shm_size}})
        mounts.append({"name": SHM_VOLUME, "mountPath": "/dev/shm"})
    pod = PodSpecPatch(
        node_selector=placement.node_selector,
        tolerations=placement.tolerations,
        volumes=volumes,
        containers=[ContainerPatch(name=NODE, volume_mounts=mounts)],
    )
    job = ReplicatedJobPatch(
        name=NODE, template=JobTemplatePatch(spec=JobSpecPatch(template=PodTemplatePatch(spec=pod)))
    )
    jobset = JobSetTemplatePatch(spec=JobSetSpecPatch(replicated_jobs=[job]))
    return RuntimePatch(training_runtime_spec=TrainingRuntimeSpecPatch(template=jobset))


def trainjob_request(
    placement: TrainJobPlacement, command: list[str], nodes: int, stage: str
) -> tuple[CustomTrainerContainer, list]:
    """The trainer (image, nodes, resources per node) and the options (command, labels, node placement)."""
    trainer = CustomTrainerContainer(
        image=placement.image, num_nodes=nodes, resources_per_node=placement.resources_per_node
    )
    options = [TrainerCommand(command=command), Labels({**placement.labels, STAGE_LABEL: stage}), node_patch(placement)]
    return trainer, options


def submit_trainjob(client: TrainerClient, placement: TrainJobPlacement, command: list[str], nodes: int, stage: str):
    trainer, options = trainjob_request(placement, command, nodes, stage)
    return client.train(runtime=torch_runtime(placement.runtime), trainer=trainer, options=options)


def failure_reason(client: TrainerClient, name: str) -> str:
    """The reason and message of the TrainJob's Failed condition (the events when it has none)."""
    trainjob = client.backend.custom_api.get_namespaced_custom_object(
        constants.GROUP, constants.VERSION, client.backend.namespace, constants.TRAINJOB_PLURAL, name
    )
    for condition in trainjob.get("status", {}).get("conditions", []):
        if condition.get("type") == constants.TRAINJOB_FAILED and condition.get("status") == "True":
            return f"{condition.get('reason', 'Failed')}: {condition.get('message', '')}"
    events = [f"{event.reason}: {event.message}" for event in client.get_job_events(name)]
    return "; ".join(events[-3:]) or "failed without a condition or event"


def follow_trainjob(client: TrainerClient, name: str) -> str | None:
    """Stream node 0's log until it ends, wait for the end; None when the TrainJob completed, else its reason."""
    ended = {constants.TRAINJOB_COMPLETE, constants.TRAINJOB_FAILED}
    client.wait_for_job_status(name, {constants.TRAINJOB_RUNNING, *ended}, WAIT_SECONDS, POLL_SECONDS)
    for line in client.get_job_logs(name, step=f"{NODE}-0", follow=True):
        print(line, flush=True)
    job = client.wait_for_job_status(name, ended, WAIT_SECONDS, POLL_SECONDS)
    return None if job.status == constants.TRAINJOB_COMPLETE else failure_reason(client, name)


def run_trainjob(placement: TrainJobPlacement, command: list[str], world, stage: str) -> str | None:
    """Create the TrainJob for `world.nodes` nodes, follow it to its end; None on success, else the reason."""
    client = TrainerClient(KubernetesBackendConfig(namespace=placement.namespace))
    name = submit_trainjob(client, placement, command, world.nodes, stage)
    print(f"TrainJob {name}: {world.nodes} nodes x {world.processes} processes, {stage}", flush=True)
    return follow_trainjob(client, name)
