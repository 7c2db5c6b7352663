"""`gr2 run --runner docker`: the smoke preset with every task in its component's image, through kfp.local's
DockerRunner, gives the metrics the subprocess runner gives. The GPU stages run in the CPU image here
(GR2_GPU_IMAGE): `make images` builds no CUDA image. Before it starts, the runner refuses an image that is
missing or was built from other sources than the checkout (those tests need no engine)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest

from pipelines.runners import DOCKER_SDK, IMAGE_SOURCES, SOURCE_LABEL, image_problems, source_digest
from tests.conftest import REPO, after_the_suite

docker = pytest.importorskip("docker", reason=f"the docker package is not installed ({DOCKER_SDK})")

# measured, not computed: how long a run took, and how much of the sentence-embedding cache it found warm
NOT_COMPARED = {"run.wall_seconds", "sid.cached_texts", "sid.embedded_texts"}
SMOKE_MINUTES = 30


class FakeImages:
    def __init__(self, labels_by_image: dict[str, dict]):
        self.labels_by_image = labels_by_image

    def get(self, image: str):
        if image not in self.labels_by_image:
            raise docker.errors.ImageNotFound(image)
        return SimpleNamespace(labels=self.labels_by_image[image])


def test_missing_and_stale_images_are_named():
    client = SimpleNamespace(
        images=FakeImages(
            {"fresh:1": {SOURCE_LABEL: source_digest()}, "stale:1": {SOURCE_LABEL: "0" * 64}, "pushed:1": {}}
        )
    )
    problems = image_problems(client, {"fresh:1", "stale:1", "pushed:1", "absent:1"})
    assert problems == ["absent:1 is not on this machine", "stale:1 was built from other sources than this checkout's"]


def test_the_source_digest_follows_every_copied_file(tmp_path):
    for name in IMAGE_SOURCES:
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copyfile)(source, tmp_path / name)
    assert source_digest(tmp_path) == source_digest(REPO)
    (tmp_path / "configs" / "smoke.yaml").write_text((tmp_path / "configs" / "smoke.yaml").read_text() + "\n")
    assert source_digest(tmp_path) != source_digest(REPO)


def smoke_metrics(out, runner: str, environment: dict[str, str]) -> dict[str, float]:
    command = [sys.executable, "-m", "gr2.cli", "run", "--preset", "smoke", "--runner", runner, "--out", str(out)]
    result = subprocess.run(
        command, cwd=REPO, env=os.environ | environment, capture_output=True, text=True, timeout=SMOKE_MINUTES * 60
    )
    assert result.returncode == 0, f"gr2 run --runner {runner}: exit {result.returncode}\n{result.stderr[-4000:]}"
    return json.loads((out / "metrics.json").read_text())


def compared(metrics: dict[str, float]) -> dict[str, float]:
    """Every metric but the measured ones: timings (`*_seconds`) and throughputs (`*_per_second`)."""
    return {name: value for name, value in metrics.items() if name not in NOT_COMPARED and "second" not in name}


@pytest.mark.containers
@pytest.mark.slow
@pytest.mark.timeout(2 * SMOKE_MINUTES * 60)
@after_the_suite("GR2_CONTAINER_SMOKE", "two whole smoke runs (8 to 9 minutes here), whenever CI built the images")
def test_smoke_in_containers_gives_the_subprocess_runners_metrics(cpu_image, tmp_path):
    in_containers = smoke_metrics(tmp_path / "docker", "docker", {"GR2_GPU_IMAGE": cpu_image})
    in_this_environment = smoke_metrics(tmp_path / "subprocess", "subprocess", {})
    assert in_containers["evaluate.gate_passed"] in (0.0, 1.0) and in_containers["data.users"] == 1000
    assert compared(in_containers) == compared(in_this_environment)
