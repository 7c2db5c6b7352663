from kfp import dsl
from kfp.dsl import Artifact, Input, Metrics, Model, Output

from components.image import GPU_IMAGE


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def base_model(config_json: str, semantic_ids: Input[Artifact], model: Output[Model], metrics: Output[Metrics]):
    """Load the student LLM and extend its vocabulary with the SID tokens (round trip checked)."""
    from gr2.steps import base_model_step

    base_model_step(config_json, semantic_ids.path, model.path, metrics.log_metric)
