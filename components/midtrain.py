from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components.image import GPU_IMAGE


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def midtrain(
    config_json: str,
    dataset: Input[Dataset],
    examples: Input[Dataset],
    semantic_ids: Input[Artifact],
    base_model: Input[Model],
    model: Output[Model],
    metrics: Output[Metrics],
):
    """Mid-train on SID tasks; evaluate generative retrieval and captioning."""
    from gr2.steps import midtrain_step

    midtrain_step(
        config_json, dataset.path, examples.path, semantic_ids.path, base_model.path, model.path, metrics.log_metric
    )
