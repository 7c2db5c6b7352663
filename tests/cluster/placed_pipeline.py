"""A small pipeline placed the way the GR2 pipeline is: an ingest stage, a training stage, a sampling stage.

It is also the example of the wiring: cluster parameters in the signature, `ClusterParams.pick(locals())`,
one `place_task` per task.
"""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from gr2.config import RunConfig
from pipelines.gr2_pipeline import PIPELINE_NAME
from pipelines.placement import DEFAULT_CLUSTER, ClusterParams, place_task

TEACHER_ENV = "GR2_TEACHER_API_KEY"


@dsl.component(base_image="ghcr.io/gr2-kubeflow/gr2-cpu:0.1.0", install_kfp_package=False)
def ingest(config_json: str, dataset: Output[Dataset]):
    with open(dataset.path, "w") as handle:
        handle.write(config_json)


@dsl.component(base_image="ghcr.io/gr2-kubeflow/gr2-gpu:0.1.0", install_kfp_package=False)
def train(dataset: Input[Dataset], model: Output[Model]):
    with open(dataset.path) as source, open(model.path, "w") as handle:
        handle.write(source.read().upper())


@dsl.component(base_image="ghcr.io/gr2-kubeflow/gr2-gpu:0.1.0", install_kfp_package=False)
def sample(model: Input[Model], traces: Output[Dataset]):
    import os

    with open(model.path) as source, open(traces.path, "w") as handle:
        handle.write(f"{source.read()} key={'set' if os.environ.get('GR2_TEACHER_API_KEY') else 'unset'}")


def build_placed_pipeline(config: RunConfig):
    @dsl.pipeline(name=PIPELINE_NAME)
    def placed(
        config_json: str = config.model_dump_json(),
        accelerator_type: str = DEFAULT_CLUSTER.accelerator_type,
        train_gpus: int = DEFAULT_CLUSTER.train_gpus,
        infer_gpus: int = DEFAULT_CLUSTER.infer_gpus,
        gpu_node_selector: dict = DEFAULT_CLUSTER.gpu_node_selector,
        gpu_tolerations: list = DEFAULT_CLUSTER.gpu_tolerations,
        workspace_pvc: str = DEFAULT_CLUSTER.workspace_pvc,
        teacher_secret: str = DEFAULT_CLUSTER.teacher_secret,
    ):
        cluster = ClusterParams.pick(locals())
        data = place_task(ingest(config_json=config_json).set_display_name("ingest"), "ingest", cluster)
        model = place_task(train(dataset=data.outputs["dataset"]).set_display_name("train"), "gpu-train", cluster)
        place_task(sample(model=model.outputs["model"]).set_display_name("sample"), "gpu", cluster, TEACHER_ENV)

    return placed


def compile_placed_pipeline(config: RunConfig, package_path: str, until: str | None = None) -> None:
    from kfp import compiler

    compiler.Compiler().compile(build_placed_pipeline(config), package_path=package_path)
