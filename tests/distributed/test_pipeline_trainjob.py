"""A training stage configured for several nodes compiles to a light launcher task that hands the GPU placement
to the TrainJob it creates; on one node it stays a gpu-train task."""

import pytest

from components.image import GPU_IMAGE
from gr2.config import load_preset
from pipelines.gr2_pipeline import compile_pipeline
from pipelines.placement import KINDS, cluster_config, compiled_tasks, load_compiled, placement_problems


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    path = tmp_path_factory.mktemp("trainjob") / "pipeline.yaml"
    config = cluster_config(load_preset("beauty-gpu", ["sft.nodes=2", "direct_sft.nodes=2"]))
    compile_pipeline(config, str(path), until="direct_dapo")
    return load_compiled(path.read_text())


def test_a_multi_node_stage_is_a_light_task_and_one_node_stages_keep_their_gpus(compiled):
    tasks = {task.name: task for task in compiled_tasks(*compiled)}
    assert placement_problems(*compiled) == []
    for multi_node in ("sft", "direct-sft"):
        assert tasks[multi_node].kind == "trainjob" and not tasks[multi_node].asks_for_gpu
        assert tasks[multi_node].container["resources"]["cpuRequest"] == float(KINDS["trainjob"].cpu)
    for one_node in ("midtrain", "direct-dapo"):
        assert tasks[one_node].kind == "gpu-train" and tasks[one_node].asks_for_gpu


def test_the_training_tasks_receive_the_gpu_placement_parameters(compiled):
    pipeline_spec, _ = compiled
    for name in ("midtrain", "sft", "dapo", "direct-sft", "direct-dapo"):
        parameters = pipeline_spec["root"]["dag"]["tasks"][name]["inputs"]["parameters"]
        by_pipeline_parameter = {
            key: value["componentInputParameter"]
            for key, value in parameters.items()
            if "componentInputParameter" in value
        }
        assert (
            by_pipeline_parameter.items()
            >= {
                "config_json": "config_json",
                "node_accelerator": "accelerator_type",
                "node_gpus": "train_gpus",
                "node_selector": "gpu_node_selector",
                "node_tolerations": "gpu_tolerations",
                "workspace_pvc": "workspace_pvc",
            }.items()
        )
        assert parameters["node_image"]["runtimeValue"]["constant"] == GPU_IMAGE
