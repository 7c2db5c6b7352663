"""The committed `beauty-gpu` YAML: current, and every task placed (GPU tasks on GPU nodes, CPU tasks not)."""

from __future__ import annotations

import difflib

import yaml

from pipelines.placement import KIND_LABEL, compiled_tasks, load_compiled, placement_problems, task_kind
from tests.conftest import REPO

COMMITTED = REPO / "pipelines" / "compiled" / "beauty-gpu.yaml"
REGENERATE = f"gr2 compile --preset beauty-gpu -o {COMMITTED.relative_to(REPO)}"


def normalised(pipeline_spec: dict, platform_spec: dict | None) -> list[str]:
    return yaml.safe_dump_all([pipeline_spec, platform_spec], sort_keys=True).splitlines()


def test_committed_beauty_gpu_yaml_is_current(beauty_gpu):
    """Compared as YAML documents: the compiler's header comment prints dict defaults in an order that
    changes from one process to the next."""
    assert COMMITTED.is_file(), f"{COMMITTED.relative_to(REPO)} is missing: {REGENERATE}"
    committed = normalised(*load_compiled(COMMITTED.read_text()))
    compiled = normalised(beauty_gpu.pipeline_spec, beauty_gpu.platform_spec)
    if committed != compiled:
        diff = difflib.unified_diff(committed, compiled, "committed", "compiled", lineterm="", n=1)
        shown = "\n".join(list(diff)[:40])
        raise AssertionError(f"{COMMITTED.relative_to(REPO)} is stale; regenerate with: {REGENERATE}\n{shown}")


def test_every_gpu_task_is_on_gpu_nodes_and_no_cpu_task_asks_for_a_gpu(beauty_gpu):
    assert placement_problems(beauty_gpu.pipeline_spec, beauty_gpu.platform_spec) == []
    tasks = compiled_tasks(beauty_gpu.pipeline_spec, beauty_gpu.platform_spec)
    gpu = [t for t in tasks if task_kind(t.kind).gpus_param]
    assert gpu, "beauty-gpu places no task on a GPU"
    for task in gpu:
        assert task.asks_for_gpu and task.has_shm, task.name
        assert task.kubernetes["nodeSelector"] and task.kubernetes["tolerations"], task.name
        assert "gr2-gpu" in task.container["image"], f"{task.name} ({task.kind}) runs in {task.container['image']}"
    for task in tasks:
        if task not in gpu:
            assert not task.asks_for_gpu, f"CPU task {task.name} asks for a GPU"
            assert {"nodeSelector", "tolerations"}.isdisjoint(task.kubernetes), task.name
    assert {t.kubernetes["podMetadata"]["labels"][KIND_LABEL] for t in tasks} <= {"cpu", "ingest", "gpu", "gpu-train"}
