from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from components.image import GPU_IMAGE


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def traces(
    config_json: str,
    dataset: Input[Dataset],
    examples: Input[Dataset],
    semantic_ids: Input[Artifact],
    traces: Output[Dataset],
    metrics: Output[Metrics],
):
    """Teacher reasoning traces for the train examples, by rejection (default) or targeted sampling."""
    from gr2.steps import traces_step

    traces_step(config_json, dataset.path, examples.path, semantic_ids.path, traces.path, metrics.log_metric)
