from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from components.image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def deploy(
    config_json: str,
    namespace: str,
    apply_to_cluster: bool,
    candidate_row: str,
    dataset: Input[Dataset],
    semantic_ids: Input[Artifact],
    model: Input[Model],
    bundle: Output[Model],
    inference_service: Output[Artifact],
):
    """Bundle the model that passed the gate and render its KServe InferenceService; on a cluster, apply it
    and wait until it is Ready."""
    from gr2.steps import deploy_step

    deploy_step(
        config_json,
        dataset.path,
        semantic_ids.path,
        model.path,
        bundle.path,
        bundle.uri,
        inference_service.path,
        namespace,
        apply_to_cluster,
        candidate_row,
    )
