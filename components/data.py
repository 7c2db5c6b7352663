from kfp import dsl
from kfp.dsl import Dataset, Metrics, Output

from components.image import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def data(config_json: str, dataset_name: str, dataset: Output[Dataset], metrics: Output[Metrics]):
    """Validate the dataset, sample users, and write the leave-one-out split in the normalised format."""
    from gr2.steps import data_step

    data_step(config_json, dataset_name, dataset.path, metrics.log_metric)
