"""Launching a training stage on the processes and nodes its config asks for.

A stage step (`gr2.steps.midtrain_step`, `sft_step`, `dapo_step`) is wrapped by `distributed_step`. With
`processes` and `nodes` both 1 the step runs in the calling process, as before. Otherwise the call is written
to a run folder and started as a world of workers:
- one node: `torchrun --standalone --nproc-per-node=PROCESSES -m gr2.distributed.launch RUN_DIR` in this pod;
- several nodes: the same worker command in a Kubeflow Trainer TrainJob (`gr2.distributed.trainjob`), whose
  torch runtime gives torchrun its rendezvous (the PET_* variables); the run folder is on the workspace
  volume every node mounts, and input artifacts are copied there, output artifacts back.

Every worker calls the step; the Hugging Face Trainer finds the world in torchrun's environment. Rank 0 alone
publishes: the stages save the model and evaluate only on the world's process zero, and only rank 0's
metrics are written to the run folder, which the launching process then logs. A worker that raises records
its rank and traceback in the run folder; the launching process raises `RankFailed` with the first one.

torchrun rather than `accelerate launch`: the Trainer sets up DDP or DeepSpeed itself from torchrun's
environment, torchrun ships with torch (the GPU image has no other launcher to install), it ends every worker
when one fails, and Kubeflow Trainer's torch runtime runs the very same command on each node.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gr2.distributed.placement import TrainJobPlacement
from gr2.storage.atomic import write_json_atomic

WORKER_ENV = "LOCAL_RANK"  # torchrun sets it in every worker it starts, here and in a TrainJob's nodes
CALL_FILE = "call.json"
METRICS_FILE = "metrics.json"
ERRORS_DIR = "errors"


class RankFailed(RuntimeError):
    """A worker of a launched stage failed; the message is that rank's error and traceback."""


@dataclass(frozen=True)
class StageCall:
    """A step function (`module:name`) and its keyword arguments (JSON values), less `log_metric`."""

    function: str
    arguments: dict[str, Any]

    def write(self, run_dir: Path) -> None:
        write_json_atomic(run_dir / CALL_FILE, {"function": self.function, "arguments": self.arguments})

    @classmethod
    def read(cls, run_dir: Path) -> StageCall:
        payload = json.loads((run_dir / CALL_FILE).read_text())
        return cls(payload["function"], payload["arguments"])

    def resolve(self) -> Callable[..., Any]:
        module, _, name = self.function.partition(":")
        return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class World:
    """Processes per node and nodes of one launched stage."""

    processes: int
    nodes: int

    @property
    def size(self) -> int:
        return self.processes * self.nodes


def in_launched_world() -> bool:
    return WORKER_ENV in os.environ


def processes_per_node(configured: int | None, placement: TrainJobPlacement | None = None) -> int:
    """The configured count, else one process per GPU of a TrainJob node (`placement`) or of this machine;
    1 without GPUs."""
    if configured is not None:
        return configured
    if placement is not None:
        return placement.gpus_per_node or 1
    import torch

    return torch.cuda.device_count() or 1


def worker_command(run_dir: Path, world: World) -> list[str]:
    """torchrun starting `world.processes` workers of the call in `run_dir`; on one node it is its own
    rendezvous, on several the TrainJob's torch runtime supplies node rank and master (PET_* variables)."""
    rendezvous = ["--standalone", "--nnodes=1"] if world.nodes == 1 else [f"--nnodes={world.nodes}"]
    return [
        "python" if world.nodes > 1 else sys.executable,
        "-m",
        "torch.distributed.run",
        *rendezvous,
        f"--nproc-per-node={world.processes}",
        "-m",
        __name__,
        str(run_dir),
    ]


def launch_here(call: StageCall, processes: int) -> dict[str, float]:
    """Run `call` on `processes` workers of this machine and wait; rank 0's metrics."""
    with tempfile.TemporaryDirectory(prefix="gr2-launch-") as folder:
        run_dir = Path(folder)
        call.write(run_dir)
        completed = subprocess.run(worker_command(run_dir, World(processes, 1)), check=False)
        return launched_metrics(run_dir, completed.returncode)


def launched_metrics(run_dir: Path, returncode: int) -> dict[str, float]:
    if returncode != 0:
        raise RankFailed(first_failure(run_dir, f"torchrun exited with status {returncode}"))
    return json.loads((run_dir / METRICS_FILE).read_text())


def first_failure(run_dir: Path, fallback: str) -> str:
    """The error of the rank that failed first (the others may fail after it, losing their peer)."""
    reports = [json.loads(path.read_text()) for path in (run_dir / ERRORS_DIR).glob("rank-*.json")]
    if not reports:
        return f"{fallback}; no rank recorded an error (killed, or failed before the step ran: see the log)"
    first = min(reports, key=lambda report: report["time"])
    return f"rank {first['rank']} of {first['world_size']} failed: {first['error']}\n{first['traceback']}"


def run_worker(run_dir: Path) -> None:
    """One torchrun worker: call the step; rank 0 writes the metrics, a failing rank its error."""
    call = StageCall.read(run_dir)
    rank = int(os.environ["RANK"])
    metrics: dict[str, float] = {}
    try:
        call.resolve()(**call.arguments, log_metric=metrics.__setitem__)
    except BaseException as error:
        report = {
            "rank": rank,
            "world_size": int(os.environ["WORLD_SIZE"]),
            "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(),
            "time": time.time(),
        }
        write_json_atomic(run_dir / ERRORS_DIR / f"rank-{rank}.json", report)
        raise
    if rank == 0:
        write_json_atomic(run_dir / METRICS_FILE, metrics)


def staged_call(call: StageCall, run_dir: Path, inputs: tuple[str, ...], outputs: tuple[str, ...]) -> StageCall:
    """`call` with its input artifacts copied into `run_dir` and its outputs pointed there: a TrainJob's nodes
    see the workspace volume, not the KFP task's local artifact paths."""
    arguments = dict(call.arguments)
    for name in inputs:
        arguments[name] = str(copy_path(Path(arguments[name]), run_dir / "inputs" / name))
    for name in outputs:
        arguments[name] = str(run_dir / "outputs" / name)
    return StageCall(call.function, arguments)


def copy_path(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    else:
        shutil.copyfile(source, target)
    return target


def launch_on_trainjob(
    call: StageCall,
    world: World,
    placement: TrainJobPlacement,
    workspace: Path,
    inputs: tuple[str, ...],
    outputs: tuple[str, ...],
) -> dict[str, float]:
    """Run `call` as a TrainJob of `world.nodes` nodes placed as `placement`, wait, copy its outputs to the
    call's output paths; rank 0's metrics."""
    from gr2.distributed.trainjob import run_trainjob

    stage = call.function.rpartition(":")[2].removesuffix("_step")
    run_dir = workspace / "launch" / f"{stage}-{uuid.uuid4().hex[:8]}"
    staged = staged_call(call, run_dir, inputs, outputs)
    staged.write(run_dir)
    try:
        failure = run_trainjob(placement, worker_command(run_dir, world), world, stage)
        if failure:
            raise RankFailed(first_failure(run_dir, f"TrainJob failed: {failure}"))
        for name in outputs:
            copy_path(Path(staged.arguments[name]), Path(call.arguments[name]))
        return launched_metrics(run_dir, 0)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def distributed_step(section: str, inputs: tuple[str, ...] = (), outputs: tuple[str, ...] = ()):
    """Decorate a step `f(config_json, ..., log_metric)` so that it runs on the `processes` and `nodes` of the
    config section `section`. `inputs` and `outputs` name its artifact-path arguments (copied to and from the
    workspace for a TrainJob). Several nodes need `trainjob=`: where the TrainJob's nodes run, as the KFP task
    would have."""

    def decorate(step: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(step)

        @functools.wraps(step)
        def run(*args, trainjob: TrainJobPlacement | None = None, **kwargs) -> None:
            from gr2.config import config_from_json

            arguments = dict(signature.bind(*args, **kwargs).arguments)
            log_metric = arguments.pop("log_metric")
            config = config_from_json(arguments["config_json"])
            stage = getattr(config, section)
            world = World(processes_per_node(stage.processes, trainjob if stage.nodes > 1 else None), stage.nodes)
            if world.size == 1 or in_launched_world():
                return step(*args, **kwargs)
            call = StageCall(f"{step.__module__}:{step.__name__}", arguments)
            if world.nodes == 1:
                metrics = launch_here(call, world.processes)
            elif trainjob is None:
                raise ValueError(
                    f"{section}.nodes={world.nodes}: several nodes run as a Kubeflow Trainer TrainJob, which needs "
                    "the task's placement (the pipeline's training components pass it); set nodes: 1 to run here"
                )
            else:
                workspace = Path(config.workspace).expanduser()
                metrics = launch_on_trainjob(call, world, trainjob, workspace, inputs, outputs)
            for name, value in sorted(metrics.items()):
                log_metric(name, float(value))

        return run

    return decorate


if __name__ == "__main__":
    run_worker(Path(sys.argv[1]))
