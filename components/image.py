"""The one place that names the container image every component runs in on a cluster.

Set GR2_BASE_IMAGE when compiling to use another registry or tag; kfp.local ignores the image.
"""

import os

BASE_IMAGE = os.environ.get("GR2_BASE_IMAGE", "ghcr.io/gr2-kubeflow/gr2-cpu:0.1.0")
