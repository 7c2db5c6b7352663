"""The one GR2 pipeline: every stage a component, wired by typed artifacts.

`build_pipeline(config, until)` returns the pipeline function for a preset; its parameters default to
the preset's resolved configuration, so one compiled YAML per preset runs as it is, and an MLOps team
can still override `config_json` or `dataset_name` when it submits a run.
"""

from kfp import dsl

from components.base_model import base_model
from components.dapo import dapo
from components.data import data
from components.deploy import deploy
from components.direct_dapo import direct_dapo
from components.direct_sft import direct_sft
from components.evaluate import evaluate
from components.filter import filter as filter_traces
from components.image import GPU_IMAGE
from components.midtrain import midtrain
from components.opd import opd
from components.prerank import prerank
from components.sft import sft
from components.sid import sid
from components.traces import traces
from gr2.config import RunConfig
from gr2.eval.gate import gate_candidate, model_stage
from pipelines.placement import DEFAULT_CLUSTER, ClusterParams, place_task

# what each stage asks of a cluster (pipelines/placement.py)
KIND = {
    "data": "ingest",
    "prerank": "cpu",
    "sid": "cpu",
    "filter": "cpu",
    "base_model": "gpu",
    "traces": "gpu",
    "evaluate": "gpu",
    "deploy": "cpu",
    "midtrain": "gpu-train",
    "sft": "gpu-train",
    "opd": "gpu-train",  # one process; the teacher on the pod's other GPUs (gr2.train.opd.load_teacher)
    "dapo": "gpu-train",
    "dapo_naive": "gpu-train",
    "direct_sft": "gpu-train",
    "direct_dapo": "gpu-train",
    "direct_dapo_naive": "gpu-train",
}
STAGES = (
    "data",
    "prerank",
    "sid",
    "base_model",
    "midtrain",
    "traces",
    "filter",
    "sft",
    "opd",
    "dapo",
    "direct_sft",
    "direct_dapo",
    "evaluate",
    "deploy",
)
PIPELINE_NAME = "gr2"
TRAINING_SECTION = {
    "midtrain": "midtrain",
    "sft": "sft",
    "dapo": "dapo",
    "dapo_naive": "dapo",
    "direct_sft": "direct_sft",
    "direct_dapo": "direct_dapo",
    "direct_dapo_naive": "direct_dapo",
}


class UnknownStageError(ValueError):
    pass


def stages_until(until: str | None) -> tuple[str, ...]:
    if until is None:
        return STAGES
    if until not in STAGES:
        raise UnknownStageError(f"--until {until!r}: not a stage of this pipeline; stages: {', '.join(STAGES)}")
    return STAGES[: STAGES.index(until) + 1]


def run_stages(config: RunConfig, until: str | None) -> tuple[str, ...]:
    """The stages a run of `config` has up to `until`: the optional `opd` only when `opd.enabled`."""
    return tuple(stage for stage in stages_until(until) if stage != "opd" or config.opd.enabled)


def stage_kind(config: RunConfig, stage: str) -> str:
    """A training stage on several nodes runs as a Kubeflow Trainer TrainJob; its own task only launches it."""
    section = TRAINING_SECTION.get(stage)
    return "trainjob" if section and getattr(config, section).nodes > 1 else KIND[stage]


def shared_inputs(config_json, run: dict) -> dict:
    """What most stages after `sid` take: the config, the dataset, the examples and the semantic IDs."""
    if "sid" not in run:
        return {}
    return {
        "config_json": config_json,
        "dataset": run["data"].outputs["dataset"],
        "examples": run["prerank"].outputs["examples"],
        "semantic_ids": run["sid"].outputs["semantic_ids"],
    }


MODEL_STAGES = ("midtrain", "sft", "opd", "dapo", "dapo_naive", "direct_sft", "direct_dapo", "direct_dapo_naive")


def evaluation_inputs(run: dict) -> dict:
    """The optional models and metrics of the stages that ran, by the evaluate component's input names."""
    inputs = {"sid_metrics": run["sid"].outputs["metrics"]}
    for stage in MODEL_STAGES:
        if stage in run:
            inputs[f"{stage}_model"] = run[stage].outputs["model"]
            inputs[f"{stage}_metrics"] = run[stage].outputs["metrics"]
    return inputs


def build_pipeline(
    config: RunConfig, until: str | None = None, task_stages: dict[str, str] | None = None, placed: bool = True
):
    """The pipeline function. `task_stages`, when given, is filled with task name -> stage name as the
    pipeline is built (a component used twice gets a task name like `dapo-2`). `placed` False (kfp.local)
    leaves the Kubernetes placement out."""
    stages = run_stages(config, until)
    names = task_stages if task_stages is not None else {}

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description=f"GR2 generative reasoning re-ranker, preset {config.name}: {', '.join(stages)}",
    )
    def gr2_pipeline(
        config_json: str = config.model_dump_json(),
        dataset_name: str = config.data.dataset,
        accelerator_type: str = DEFAULT_CLUSTER.accelerator_type,
        train_gpus: int = DEFAULT_CLUSTER.train_gpus,
        infer_gpus: int = DEFAULT_CLUSTER.infer_gpus,
        gpu_node_selector: dict = DEFAULT_CLUSTER.gpu_node_selector,
        gpu_tolerations: list = DEFAULT_CLUSTER.gpu_tolerations,
        workspace_pvc: str = DEFAULT_CLUSTER.workspace_pvc,
        teacher_secret: str = DEFAULT_CLUSTER.teacher_secret,
        deploy_namespace: str = "kubeflow-user",
        deploy_to_cluster: bool = placed,
    ):
        cluster = ClusterParams.pick(locals()) if placed else None
        # where the nodes of a training stage's TrainJob run, when it asks for several (pipelines/placement.py)
        training = {
            "node_image": GPU_IMAGE,
            "node_accelerator": accelerator_type,
            "node_gpus": train_gpus,
            "node_selector": gpu_node_selector,
            "node_tolerations": gpu_tolerations,
            "workspace_pvc": workspace_pvc,
        }

        def named(task, stage: str):
            names[task.name] = stage
            teacher_env = config.teacher.api_key_env if stage == "traces" else None
            place_task(task, stage_kind(config, stage), cluster, teacher_env)
            return task.set_display_name(stage)

        run = {"data": named(data(config_json=config_json, dataset_name=dataset_name), "data")}
        if "prerank" in stages:
            run["prerank"] = named(prerank(config_json=config_json, dataset=run["data"].outputs["dataset"]), "prerank")
        if "sid" in stages:
            run["sid"] = named(sid(config_json=config_json, dataset=run["data"].outputs["dataset"]), "sid")
        inputs = shared_inputs(config_json, run)
        if "base_model" in stages:
            semantic_ids = run["sid"].outputs["semantic_ids"]
            run["base_model"] = named(base_model(config_json=config_json, semantic_ids=semantic_ids), "base_model")
        base = run.get("base_model") and run["base_model"].outputs["model"]
        if "midtrain" in stages:
            run["midtrain"] = named(midtrain(base_model=base, **inputs, **training), "midtrain")
        if "traces" in stages:
            run["traces"] = named(traces(**inputs), "traces")
        if "filter" in stages:
            traced = run["traces"].outputs["traces"]
            run["filter"] = named(filter_traces(config_json=config_json, traces=traced, base_model=base), "filter")
        if "sft" in stages:
            kept = run["filter"].outputs["sft_traces"]
            trained = run["midtrain"].outputs["model"]
            run["sft"] = named(sft(model_in=trained, sft_traces=kept, **inputs, **training), "sft")
        if "opd" in stages:
            run["opd"] = named(opd(model_in=run["sft"].outputs["model"], **inputs), "opd")
        if "dapo" in stages:
            policy = run.get("opd", run["sft"]).outputs["model"]  # the report's RL-OPD order: SFT -> OPD -> DAPO
            run["dapo"] = named(dapo(reward_kind="conditional", model_in=policy, **inputs, **training), "dapo")
            if config.dapo.run_naive_ablation:
                naive = dapo(reward_kind="naive", model_in=policy, **inputs, **training)
                run["dapo_naive"] = named(naive, "dapo_naive")
        if "direct_sft" in stages:
            start = run[config.direct_sft.start_from].outputs["model"]
            run["direct_sft"] = named(direct_sft(model_in=start, **inputs, **training), "direct_sft")
        if "direct_dapo" in stages:
            policy = run["direct_sft"].outputs["model"]
            conditional = direct_dapo(reward_kind="conditional", model_in=policy, **inputs, **training)
            run["direct_dapo"] = named(conditional, "direct_dapo")
            if config.direct_dapo.run_naive_ablation:
                naive = direct_dapo(reward_kind="naive", model_in=policy, **inputs, **training)
                run["direct_dapo_naive"] = named(naive, "direct_dapo_naive")
        if "evaluate" in stages:
            judged = named(evaluate(image=GPU_IMAGE, **inputs, **evaluation_inputs(run)), "evaluate")
        if "deploy" in stages:
            with dsl.If(judged.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 (a KFP condition)
                row = gate_candidate(config.evaluate.gate.candidate, set(run))
                candidate = run[model_stage(row)]
                named(
                    deploy(
                        config_json=config_json,
                        namespace=deploy_namespace,
                        apply_to_cluster=deploy_to_cluster,
                        candidate_row=row,
                        dataset=inputs["dataset"],
                        semantic_ids=inputs["semantic_ids"],
                        model=candidate.outputs["model"],
                    ),
                    "deploy",
                )

    return gr2_pipeline


def compile_pipeline(config: RunConfig, package_path: str, until: str | None = None) -> None:
    from kfp import compiler

    compiler.Compiler().compile(build_pipeline(config, until), package_path=package_path)
