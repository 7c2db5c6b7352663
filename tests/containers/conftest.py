"""What the container tests need: a Docker engine that answers and the images `make images` builds. Without
them the tests skip and say why (`pytest -ra` prints it); `.ci/run` starts the engine and builds the images.
Select these tests with `pytest -m containers`."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from components.image import BASE_IMAGE
from gr2.serve.deploy import SERVE_IMAGE
from tests.serve.conftest import bundle_dir, example  # noqa: F401 (fixtures: the tiny-random bundle, a request)

HOW_TO_RUN = "as root: make images, then pytest -m containers (README, Containers)"


def pytest_configure(config):
    config.addinivalue_line("markers", "containers: needs a Docker engine and the images `make images` builds")


def docker(
    *arguments: str, check: bool = True, timeout: float = 120, input: str | None = None
) -> subprocess.CompletedProcess:
    """The docker command line; a failure names the command and what docker said."""
    result = subprocess.run(["docker", *arguments], capture_output=True, text=True, timeout=timeout, input=input)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(arguments)}: exit {result.returncode}: {result.stderr[-2000:]}")
    return result


@pytest.fixture(scope="session")
def docker_engine() -> str:
    if shutil.which("docker") is None:
        pytest.skip(f"no docker command ({HOW_TO_RUN})")
    answer = docker("version", "--format", "{{.Server.Version}}", check=False, timeout=30)
    if answer.returncode != 0:
        pytest.skip(f"no Docker engine answers: {answer.stderr.strip()[:300]} ({HOW_TO_RUN})")
    return answer.stdout.strip()


def built_image(tag: str) -> str:
    if docker("image", "inspect", tag, check=False).returncode != 0:
        pytest.skip(f"image {tag} is not built ({HOW_TO_RUN})")
    return tag


@pytest.fixture(scope="session")
def cpu_image(docker_engine) -> str:
    return built_image(BASE_IMAGE)


@pytest.fixture(scope="session")
def serve_image(docker_engine) -> str:
    return built_image(SERVE_IMAGE)
