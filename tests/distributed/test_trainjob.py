"""The TrainJob a multi-node stage creates, as the Kubeflow SDK sends it to the cluster (no cluster here: the
Kubernetes API calls are recorded), and how its end is read."""

from types import SimpleNamespace

import pytest
from kubeflow.common.types import KubernetesBackendConfig
from kubeflow.trainer import TrainerClient
from kubeflow.trainer.backends.kubernetes.backend import KubernetesBackend
from kubernetes.client import Configuration

from gr2.distributed.launch import World, worker_command
from gr2.distributed.placement import TrainJobPlacement
from gr2.distributed.trainjob import failure_reason, submit_trainjob

PLACEMENT = TrainJobPlacement(
    image="registry.example/gr2-gpu:0.1.0",
    resources_per_node={"cpu": "48", "memory": "480Gi", "nvidia.com/gpu": 8},
    node_selector={"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
    tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    workspace_pvc="gr2-workspace",
    workspace_mount="/mnt/workspace",
    shm_size="64Gi",
    labels={"gr2.kubeflow.org/kind": "gpu-train"},
)


class RecordingCustomObjects:
    def __init__(self, trainjob: dict | None = None):
        self.created: list[tuple] = []
        self.trainjob = trainjob

    def create_namespaced_custom_object(self, group, version, namespace, plural, body):
        self.created.append((group, version, namespace, plural, body))

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        return self.trainjob


@pytest.fixture
def client(monkeypatch) -> TrainerClient:
    """A TrainerClient on the Kubernetes backend whose custom-object API records instead of calling."""
    monkeypatch.setattr(KubernetesBackend, "verify_backend", lambda self: None)
    configuration = Configuration(host="http://127.0.0.1:9")
    trainer_client = TrainerClient(KubernetesBackendConfig(namespace="team", client_configuration=configuration))
    trainer_client.backend.custom_api = RecordingCustomObjects()
    return trainer_client


def created_trainjob(client: TrainerClient) -> tuple[str, dict]:
    (group, version, namespace, plural, body), *more = client.backend.custom_api.created
    assert not more and (group, version, plural) == ("trainer.kubeflow.org", "v1alpha1", "trainjobs")
    return namespace, body


def test_the_trainjob_runs_the_workers_on_every_node_placed_like_the_task(client, tmp_path):
    command = worker_command(tmp_path / "run", World(processes=8, nodes=2))
    name = submit_trainjob(client, PLACEMENT, command, nodes=2, stage="sft")
    namespace, body = created_trainjob(client)
    assert namespace == "team" and body["metadata"]["name"] == name
    assert body["metadata"]["labels"] == {"gr2.kubeflow.org/kind": "gpu-train", "gr2.kubeflow.org/stage": "sft"}
    spec = body["spec"]
    assert spec["runtimeRef"] == {"name": "torch-distributed", "kind": "ClusterTrainingRuntime"}
    trainer = spec["trainer"]
    assert trainer["image"] == PLACEMENT.image and trainer["numNodes"] == 2
    assert trainer["resourcesPerNode"]["limits"] == {"cpu": "48", "memory": "480Gi", "nvidia.com/gpu": 8}
    assert trainer["resourcesPerNode"]["requests"] == trainer["resourcesPerNode"]["limits"]
    assert trainer["command"] == command
    assert command[-4:] == ["--nproc-per-node=8", "-m", "gr2.distributed.launch", str(tmp_path / "run")]
    assert "--nnodes=2" in command and "--standalone" not in command  # rendezvous from the runtime's PET_*
    (patch,) = spec["runtimePatches"]
    (job,) = patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]
    assert job["name"] == "node"
    pod = job["template"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == PLACEMENT.node_selector and pod["tolerations"] == PLACEMENT.tolerations
    assert {"name": "workspace", "persistentVolumeClaim": {"claimName": "gr2-workspace"}} in pod["volumes"]
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Gi"}} in pod["volumes"]
    (container,) = pod["containers"]
    assert container["name"] == "node"
    assert {"name": "workspace", "mountPath": "/mnt/workspace"} in container["volumeMounts"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]


def test_the_failure_reason_is_the_failed_condition(client):
    client.backend.custom_api.trainjob = {
        "status": {
            "conditions": [
                {"type": "Created", "status": "True", "reason": "JobsCreationSucceeded", "message": "created"},
                {"type": "Failed", "status": "True", "reason": "JobsFailed", "message": "jobset node failed"},
            ]
        }
    }
    assert failure_reason(client, "abc") == "JobsFailed: jobset node failed"


def test_without_a_failed_condition_the_reason_is_the_last_events(client, monkeypatch):
    client.backend.custom_api.trainjob = {"status": {}}
    events = [SimpleNamespace(reason="BackOff", message="restarting failed container node")]
    monkeypatch.setattr(client, "get_job_events", lambda name: events)
    assert failure_reason(client, "abc") == "BackOff: restarting failed container node"


def test_processes_default_to_the_gpus_of_a_trainjob_node():
    from gr2.distributed.launch import processes_per_node

    assert processes_per_node(None, PLACEMENT) == 8
    assert processes_per_node(2, PLACEMENT) == 2


def test_a_trainjob_launch_stages_inputs_on_the_workspace_and_copies_outputs_back(tmp_path, monkeypatch):
    """The TrainJob is simulated by one worker run in this process: it sees only the workspace copies."""
    from gr2.distributed import launch

    source, target = tmp_path / "task" / "in.txt", tmp_path / "task" / "out" / "model.txt"
    source.parent.mkdir()
    source.write_text("weights")
    seen = {}

    def one_node_trainjob(placement, command, world, stage):
        run_dir = launch.Path(command[-1])
        seen.update(launch.StageCall.read(run_dir).arguments, stage=stage, run_dir=run_dir)
        monkeypatch.setenv("RANK", "0")
        monkeypatch.setenv("WORLD_SIZE", "1")
        launch.run_worker(run_dir)
        return None

    monkeypatch.setattr("gr2.distributed.trainjob.run_trainjob", one_node_trainjob)
    call = launch.StageCall("tests.distributed.workers:copy_upper", {"source": str(source), "target": str(target)})
    workspace = tmp_path / "workspace"
    metrics = launch.launch_on_trainjob(call, World(2, 2), PLACEMENT, workspace, ("source",), ("target",))
    assert metrics == {"characters": 7.0}
    assert target.read_text() == "WEIGHTS"
    assert seen["stage"] == "copy_upper"
    assert seen["source"].startswith(str(workspace)) and seen["target"].startswith(str(workspace))
    assert not seen["run_dir"].exists()  # the run folder is removed from the workspace afterwards


def local_nodes(node_count: int, monkeypatch):
    """A stand-in for the TrainJob: the worker command run as `node_count` processes of this machine, each
    given what Kubeflow Trainer's torch runtime gives a node (PET_NODE_RANK, PET_MASTER_ADDR/PORT), with the
    run folder on a disk they share as the nodes share the workspace volume."""
    import os
    import socket
    import subprocess
    import sys

    from tests.conftest import REPO

    def run(placement, command, world, stage):
        assert world.nodes == node_count
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        path = f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"  # `python` as in the image
        nodes = [
            subprocess.Popen(
                command,
                env=os.environ
                | {"PATH": path, "PYTHONPATH": str(REPO), "PET_NODE_RANK": str(rank)}
                | {"PET_MASTER_ADDR": "127.0.0.1", "PET_MASTER_PORT": str(port)},
            )
            for rank in range(node_count)
        ]
        codes = [node.wait(timeout=300) for node in nodes]
        failed = [f"node {rank} exited with {code}" for rank, code in enumerate(codes) if code]
        return "; ".join(failed) or None

    monkeypatch.setattr("gr2.distributed.trainjob.run_trainjob", run)


@pytest.mark.slow
def test_the_trainjob_worker_command_runs_a_two_node_world(tmp_path, monkeypatch):
    """The very command each TrainJob node runs (torchrun --nnodes=2, rendezvous from the PET_* variables):
    the two nodes form one world, rank 0 publishes, and the task gets its outputs and metrics back."""
    from gr2.distributed import launch

    local_nodes(2, monkeypatch)
    source, target = tmp_path / "task" / "in.txt", tmp_path / "task" / "out" / "model.txt"
    source.parent.mkdir()
    source.write_text("weights")
    call = launch.StageCall(
        "tests.distributed.workers:sum_ranks_and_copy", {"source": str(source), "target": str(target)}
    )
    metrics = launch.launch_on_trainjob(call, World(1, 2), PLACEMENT, tmp_path / "ws", ("source",), ("target",))
    assert metrics == {"characters": 7.0, "rank_sum": 3.0, "world_size": 2.0, "nodes": 2.0}
    assert target.read_text() == "WEIGHTS"
