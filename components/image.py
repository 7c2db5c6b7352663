"""The one place that names the container images components run in on a cluster.

Set GR2_BASE_IMAGE / GR2_GPU_IMAGE when compiling to use another registry or tag; kfp.local ignores both.
CPU stages run in the CPU image; stages that load or train the LLM run in the GPU image (images/).
"""

import os

BASE_IMAGE = os.environ.get("GR2_BASE_IMAGE", "ghcr.io/gr2-kubeflow/gr2-cpu:0.1.0")
GPU_IMAGE = os.environ.get("GR2_GPU_IMAGE", "ghcr.io/gr2-kubeflow/gr2-gpu:0.1.0")
