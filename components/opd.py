from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components.image import GPU_IMAGE


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def opd(
    config_json: str,
    dataset: Input[Dataset],
    examples: Input[Dataset],
    semantic_ids: Input[Artifact],
    model_in: Input[Model],
    model: Output[Model],
    metrics: Output[Metrics],
):
    """On-policy distillation from a frozen teacher (the report's RL-OPD, between SFT and DAPO), one process."""
    from gr2.steps import opd_step

    opd_step(
        config_json,
        dataset.path,
        examples.path,
        semantic_ids.path,
        model_in.path,
        model.path,
        metrics.log_metric,
    )
