from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components.image import GPU_IMAGE


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def sft(
    config_json: str,
    dataset: Input[Dataset],
    examples: Input[Dataset],
    semantic_ids: Input[Artifact],
    model_in: Input[Model],
    sft_traces: Input[Dataset],
    model: Output[Model],
    metrics: Output[Metrics],
):
    """SFT on the filtered traces with the decoupled loss; validate on held-out examples."""
    from gr2.steps import sft_step

    sft_step(
        config_json,
        dataset.path,
        examples.path,
        semantic_ids.path,
        model_in.path,
        sft_traces.path,
        model.path,
        metrics.log_metric,
    )
