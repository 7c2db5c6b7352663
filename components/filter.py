from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def filter(
    config_json: str,
    traces: Input[Dataset],
    base_model: Input[Model],
    sft_traces: Output[Dataset],
    metrics: Output[Metrics],
):
    """Keep accepted traces that fit the prompt and sequence budgets (measured with the student tokenizer)."""
    from gr2.steps import filter_step

    filter_step(config_json, traces.path, base_model.path, sft_traces.path, metrics.log_metric)
