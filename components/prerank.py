from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def prerank(
    config_json: str,
    dataset: Input[Dataset],
    examples: Output[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
):
    """Fit the pre-ranker on the train split and build the K-candidate re-ranking examples."""
    from gr2.steps import prerank_step

    prerank_step(config_json, dataset.path, examples.path, model.path, metrics.log_metric)
