from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Metrics, Output

from components.image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def sid(config_json: str, dataset: Input[Dataset], semantic_ids: Output[Artifact], metrics: Output[Metrics]):
    """Embed item text, train the RQ-VAE, and give every item a unique semantic ID (map, quantiser, trie)."""
    from gr2.steps import sid_step

    sid_step(config_json, dataset.path, semantic_ids.path, metrics.log_metric)
