"""Where the nodes of a multi-node training stage run; plain data, so the pipeline can build it without the
Kubeflow SDK installed."""

from __future__ import annotations

from dataclasses import dataclass, field

TORCH_RUNTIME = "torch-distributed"


@dataclass(frozen=True)
class TrainJobPlacement:
    """Where a TrainJob's nodes run: what one `gpu-train` task gets (pipelines/placement.py), per node."""

    image: str
    resources_per_node: dict[str, str | int]  # e.g. {"cpu": "48", "memory": "480Gi", "nvidia.com/gpu": 8}
    node_selector: dict[str, str]
    tolerations: list[dict]
    workspace_pvc: str
    workspace_mount: str
    shm_size: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    runtime: str = TORCH_RUNTIME
    namespace: str | None = None  # None: the namespace the launching pod runs in

    @property
    def gpus_per_node(self) -> int:
        return sum(int(count) for name, count in self.resources_per_node.items() if name.endswith("gpu"))
