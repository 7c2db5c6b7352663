"""Training stages on every GPU a task has: torchrun on one node (`launch`), a Kubeflow Trainer TrainJob across
several (`trainjob`). The two config fields every training stage shares are defined here once."""

from __future__ import annotations

from typing import Any

from pydantic import Field

PER_PROCESS_BATCH = "per_device_train_batch_size is per process, so the global batch grows with processes x nodes."


def processes_field(batch_note: str = PER_PROCESS_BATCH) -> Any:
    """The `processes` field; `batch_note` says what a process count does to the stage's batch."""
    return Field(
        None,
        ge=1,
        description="Training processes per node, one per GPU. None: the GPUs the task has (1 on CPU). Above 1 "
        "the stage launches itself with torchrun and waits; rank 0 alone saves the model and the metrics. "
        + batch_note,
    )


def nodes_field() -> Any:
    return Field(
        1,
        ge=1,
        description="Nodes to train on. Above 1 the stage runs as a Kubeflow Trainer TrainJob (torch runtime) "
        "placed like the task (image, resources, node selector, tolerations, workspace volume), and waits.",
    )
