"""Run the pipeline on this machine through kfp.local (pipelines.runners), and gather its outputs.

kfp.local writes each task's outputs under `OUT/kfp/<run>/<task>/`; this module collects every
task's metrics into one flat `OUT/metrics.json` named `stage.metric`.
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from pathlib import Path

from kfp import local

from gr2.config import RunConfig
from gr2.data.artifact import read_interactions
from gr2.eval.gate import model_stage
from gr2.inputs import read_sid_map
from gr2.prerank.candidates import read_examples
from gr2.serve.bundle import write_bundle
from gr2.storage.atomic import write_json_atomic, write_text_atomic
from gr2.train.direct_stage import serving_decoding
from pipelines.gr2_pipeline import PIPELINE_NAME, build_pipeline
from pipelines.progress import watch_run
from pipelines.runners import local_runner


def latest_run_dir(pipeline_root: Path) -> Path:
    runs = sorted(pipeline_root.glob(f"{PIPELINE_NAME}-*"), key=lambda path: path.stat().st_mtime)
    if not runs:
        raise RuntimeError(f"{pipeline_root}: kfp.local wrote no run folder")
    return runs[-1]


def task_metrics(executor_output: Path) -> dict[str, float]:
    outputs = json.loads(executor_output.read_text()).get("artifacts", {})
    artifacts = outputs.get("metrics", {}).get("artifacts", [])
    return artifacts[0].get("metadata", {}) if artifacts else {}


def collect_metrics(run_dir: Path, task_stages: dict[str, str]) -> dict[str, float]:
    """Every task's metrics as `stage.metric`, lower case, sorted."""
    metrics: dict[str, float] = {}
    for executor_output in sorted(run_dir.glob("*/executor_output.json")):
        task = executor_output.parent.name
        stage = task_stages.get(task, task.replace("-", "_"))
        for name, value in task_metrics(executor_output).items():
            metrics[f"{stage}.{name}".lower()] = value
    return dict(sorted(metrics.items()))


PUBLISHED = {
    ("evaluate", "report"): "report.html",
    ("evaluate", "summary"): "report.md",
    ("evaluate", "manifest"): "manifest.json",
}


def task_dir(run_dir: Path, task_stages: dict[str, str], stage: str) -> Path | None:
    tasks = [task for task, name in task_stages.items() if name == stage]
    return run_dir / tasks[0] if tasks and (run_dir / tasks[0]).is_dir() else None


def example_request(examples_dir: Path) -> dict:
    """A valid KServe v1 request built from the first test example."""
    example = read_examples(examples_dir, split="test")[0]
    return {"instances": [{"history": list(example.history), "candidates": list(example.candidates), "explain": True}]}


def publish_outputs(run_dir: Path, task_stages: dict[str, str], out_dir: Path) -> None:
    """Copy what people open first (report, manifest, an example request) to the top of OUT."""
    for (stage, artifact), name in PUBLISHED.items():
        folder = task_dir(run_dir, task_stages, stage)
        if folder and (folder / artifact).is_file():
            shutil.copyfile(folder / artifact, out_dir / name)
    prerank_dir = task_dir(run_dir, task_stages, "prerank")
    if prerank_dir:
        write_json_atomic(out_dir / "example_request.json", example_request(prerank_dir / "examples"))
    write_local_bundle(run_dir, task_stages, out_dir)


def write_local_bundle(run_dir: Path, task_stages: dict[str, str], out_dir: Path) -> None:
    """OUT/bundle: the gate's candidate model packaged for `gr2 serve`, whether or not the gate let the
    pipeline deploy it (a local run is for inspection; the gate decides what reaches a cluster)."""
    evaluate_dir = task_dir(run_dir, task_stages, "evaluate")
    if evaluate_dir is None:
        return
    config = RunConfig.model_validate_json((out_dir / "config.json").read_text())
    candidate = json.loads((evaluate_dir / "results" / "results.json").read_text())["gate"]["candidate"]
    if candidate is None:
        return
    stage = model_stage(candidate)
    folders = {name: task_dir(run_dir, task_stages, name) for name in ("data", "sid", stage)}
    model_dir = folders[stage] / "model"
    write_bundle(
        out_dir / "bundle",
        model_dir,
        read_sid_map(folders["sid"] / "semantic_ids"),
        read_interactions(folders["data"] / "dataset").items,
        config.prompt,
        serving_decoding(candidate, model_dir),
        source={"model": str(model_dir), "preset": config.name, "row": candidate},
    )


def run_watched(pipeline, task_stages: dict[str, str], log_path: Path, verbose: bool) -> None:
    """Run `pipeline` with its output watched (pipelines.progress); a failed task raises StageFailed."""
    with log_path.open("w") as log, watch_run(task_stages, log, verbose) as watcher, warnings.catch_warnings():
        # task names shown in the Kubeflow UI: the local runner says so for each task, which only adds noise
        warnings.filterwarnings("ignore", message=".*have no effect in the current local runner", category=UserWarning)
        try:
            pipeline()
        except RuntimeError:  # kfp.local's "Pipeline finished with status FAILURE"
            if watcher.failure is None:
                raise
            raise watcher.failure from None


def run_locally(
    config: RunConfig, out_dir: Path, until: str | None = None, verbose: bool = False, runner: str = "subprocess"
) -> tuple[Path, dict[str, float]]:
    """Run the pipeline for `config` with kfp.local's `runner` (pipelines.runners); returns the kfp run folder
    and the collected metrics. The whole kfp output goes to OUT/run.log; the terminal gets stage progress, or
    everything with `verbose`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    pipeline_root = out_dir / "kfp"
    write_text_atomic(out_dir / "config.json", config.model_dump_json(indent=2))
    task_stages: dict[str, str] = {}
    pipeline = build_pipeline(config, until, task_stages, placed=False)
    chosen = local_runner(runner, pipeline, pipeline_root, Path(config.workspace).expanduser())
    local.init(runner=chosen, pipeline_root=str(pipeline_root), raise_on_error=True)
    started = time.monotonic()
    run_watched(pipeline, task_stages, out_dir / "run.log", verbose)
    run_dir = latest_run_dir(pipeline_root)
    metrics = collect_metrics(run_dir, task_stages)
    metrics["run.wall_seconds"] = time.monotonic() - started
    write_json_atomic(out_dir / "metrics.json", metrics)
    publish_outputs(run_dir, task_stages, out_dir)
    return run_dir, metrics
