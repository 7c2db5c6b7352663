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
    node_image: str,
    node_accelerator: str,
    node_gpus: int,
    node_selector: dict,
    node_tolerations: list,
    workspace_pvc: str,
):
    """DAPO without reasoning: Plackett-Luce rankings from the label scores (`conditional` or `naive` reward)."""
    from gr2.steps import direct_dapo_step
    from pipelines.placement import trainjob_placement

    # used only with several nodes: where the TrainJob's nodes run (this task then only launches and waits)
    trainjob = trainjob_placement(
        node_image, node_accelerator, node_gpus, node_selector, node_tolerations, workspace_pvc
    )

    direct_dapo_step(
        config_json,
        reward_kind,
        dataset.path,
        examples.path,
        semantic_ids.path,
        model_in.path,
        model.path,
        metrics.log_metric,
        trainjob=trainjob,
    )
