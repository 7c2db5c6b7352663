"""The one place that names the container images components run in on a cluster.

CPU stages run in the CPU image; stages that load or train the LLM run in the GPU image (images/). Set
GR2_BASE_IMAGE / GR2_GPU_IMAGE when compiling to use another registry or tag, and when running locally with
`gr2 run --runner docker`, whose kfp.local DockerRunner starts each task in its component's image (on a
machine without the CUDA image, GR2_GPU_IMAGE=<the CPU image> runs the GPU stages there too). The default
runner (subprocesses) ignores both.
"""

import os

BASE_IMAGE = os.environ.get("GR2_BASE_IMAGE", "ghcr.io/gr2-kubeflow/gr2-cpu:0.1.0")
GPU_IMAGE = os.environ.get("GR2_GPU_IMAGE", "ghcr.io/gr2-kubeflow/gr2-gpu:0.1.0")
