"""The process world of a training loop of our own (direct SFT and DAPO), and the few collectives it needs.

The Hugging Face Trainer joins torchrun's process group by itself; the direct stages run their own loop, so
they join it here. Each rank works on its share of every batch; gradients are summed across ranks, so every
rank takes the same optimiser step and the result does not depend on how many processes shared the batch.
In a world of one process (no torchrun) every operation here is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from gr2.distributed.launch import in_launched_world


def compute_device() -> torch.device:
    """This process's GPU under torchrun (LOCAL_RANK), the first GPU otherwise, the CPU without one."""
    if not torch.cuda.is_available():
        return torch.device("cpu")
    return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))


@dataclass(frozen=True)
class ProcessWorld:
    """This process's rank among `size` processes; item i of a sharded list belongs to rank i mod size."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, index: int) -> bool:
        return index % self.size == self.rank

    def share(self, indices: Iterable[int]) -> list[int]:
        return [index for index in indices if self.owns(index)]

    def sum_gradients(self, parameters: Sequence[torch.nn.Parameter]) -> None:
        """Replace each parameter's gradient by its sum over the world (a missing gradient counts as zero)."""
        if self.size == 1:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
        flat = torch.cat([g.reshape(-1) for g in grads])
        torch.distributed.all_reduce(flat)
        offset = 0
        for parameter in parameters:
            count = parameter.numel()
            parameter.grad = flat[offset : offset + count].view_as(parameter).clone()
            offset += count

    def sum_values(self, values: Sequence[float]) -> list[float]:
        """Element-wise sums over the world."""
        if self.size == 1:
            return list(values)
        tensor = torch.tensor(values, dtype=torch.float64, device=compute_device())
        torch.distributed.all_reduce(tensor)
        return tensor.tolist()

    def gather(self, value: Any) -> list[Any]:
        """Every rank's `value` (picklable), in rank order."""
        if self.size == 1:
            return [value]
        gathered: list[Any] = [None] * self.size
        torch.distributed.all_gather_object(gathered, value)
        return gathered


SINGLE_PROCESS = ProcessWorld()


def join_process_group() -> ProcessWorld:
    """The world torchrun started this process in (joining its process group: NCCL on GPUs, gloo on CPUs),
    or a world of one outside torchrun."""
    if not in_launched_world():
        return SINGLE_PROCESS
    import torch.distributed as dist

    if not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(compute_device())
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return ProcessWorld(dist.get_rank(), dist.get_world_size())
