"""The one GR2 pipeline: every stage a component, wired by typed artifacts.

`build_pipeline(config, until)` returns the pipeline function for a preset; its parameters default to
the preset's resolved configuration, so one compiled YAML per preset runs as it is, and an MLOps team
can still override `config_json` or `dataset_name` when it submits a run.
"""


from kfp import dsl

from components.data import data
from components.prerank import prerank
from gr2.config import RunConfig

STAGES = ("data", "prerank")
PIPELINE_NAME = "gr2"


class UnknownStageError(ValueError):
    pass


def stages_until(until: str | None) -> tuple[str, ...]:
    if until is None:
        return STAGES
    if until not in STAGES:
        raise UnknownStageError(f"--until {until!r}: not a stage of this pipeline; stages: {', '.join(STAGES)}")
    return STAGES[: STAGES.index(until) + 1]


def build_pipeline(config: RunConfig, until: str | None = None):
    stages = stages_until(until)

    @dsl.pipeline(
        name=PIPELINE_NAME,
        description=f"GR2 generative reasoning re-ranker, preset {config.name}: {', '.join(stages)}",
    )
    def gr2_pipeline(config_json: str = config.model_dump_json(), dataset_name: str = config.data.dataset):
        data_task = data(config_json=config_json, dataset_name=dataset_name).set_display_name("data")
        if "prerank" in stages:
            prerank(config_json=config_json, dataset=data_task.outputs["dataset"]).set_display_name("prerank")

    return gr2_pipeline


def compile_pipeline(config: RunConfig, package_path: str, until: str | None = None) -> None:
    from kfp import compiler

    compiler.Compiler().compile(build_pipeline(config, until), package_path=package_path)
