from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Model, Output

from components.image import GPU_IMAGE


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def direct_dapo(
    config_json: str,
    reward_kind: str,
    dataset: Input[Dataset],
    examples: Input[Dataset],
    semantic_ids: Input[Artifact],
    model_in: Input[Model],
    model: Output[Model],
    metrics: Output[Metrics],
):
    """DAPO without reasoning: Plackett-Luce rankings from the label scores (`conditional` or `naive` reward)."""
    from gr2.steps import direct_dapo_step

    direct_dapo_step(
        config_json,
        reward_kind,
        dataset.path,
        examples.path,
        semantic_ids.path,
        model_in.path,
        model.path,
        metrics.log_metric,
    )
