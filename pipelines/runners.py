"""The kfp.local runners `gr2 run --runner` names.

- `subprocess` (the default): every task runs in this Python environment.
- `docker`: every task runs in the image its component names (components/image.py), as on a cluster, through
  kfp.local's DockerRunner. The images must be on this machine (`make images`): kfp.local would try to pull a
  missing one. Containers use the host's network and run as the image's own non-root user; the pipeline root
  and the workspace are mounted at their own paths (so the configuration's paths hold inside) and made
  writable for that user: what the tasks write there belongs to the image's uid. An image `make images` built
  from other sources than this checkout's is refused: its tasks would run other code than the pipeline here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from google.protobuf import json_format
from kfp import local

RUNNERS = ("subprocess", "docker")
REPO = Path(__file__).resolve().parents[1]
# what the Dockerfiles copy into an image, and the label `make images` records their digest in
IMAGE_SOURCES = ("pyproject.toml", "README.md", "src", "components", "pipelines", "data", "configs", "images")
SOURCE_LABEL = "org.gr2-kubeflow.source-digest"
DOCKER_SDK = "pip install docker==7.2.0"


class RunnerUnavailable(ValueError):
    """The runner cannot start on this machine (no Docker engine, an image missing or stale)."""


def pipeline_images(pipeline) -> set[str]:
    """The images a compiled pipeline's tasks run in."""
    executors = json_format.MessageToDict(pipeline.pipeline_spec)["deploymentSpec"]["executors"]
    return {executor["container"]["image"] for executor in executors.values()}


def local_runner(name: str, pipeline, pipeline_root: Path, workspace: Path):
    """kfp.local's runner `name` for `pipeline`, whose tasks write under `pipeline_root` and `workspace`."""
    if name == "subprocess":
        return local.SubprocessRunner(use_venv=False)
    if name == "docker":
        return docker_runner(pipeline_images(pipeline), pipeline_root, workspace)
    raise ValueError(f"runner {name!r}: choose one of {', '.join(RUNNERS)}")


def docker_client():
    try:
        import docker
    except ImportError:
        raise RunnerUnavailable(f"--runner docker needs the docker package: {DOCKER_SDK}") from None
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as error:
        raise RunnerUnavailable(
            f"--runner docker: no Docker engine answers ({error}); images/engine.sh starts one"
        ) from None
    return client


def source_files(root: Path) -> list[Path]:
    files = []
    for name in IMAGE_SOURCES:
        path = root / name
        candidates = sorted(path.rglob("*")) if path.is_dir() else [path]
        files += [f for f in candidates if f.is_file() and "__pycache__" not in f.parts and ".egg-info" not in str(f)]
    return files


def source_digest(root: Path = REPO) -> str:
    """The sha256 of the files an image is built from, their names and contents, as `make images` labels it."""
    digest = hashlib.sha256()
    for path in source_files(root):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def image_problems(client, images: set[str]) -> list[str]:
    """What keeps each image from running this checkout's tasks: absent, or labelled with other sources."""
    import docker

    problems = []
    for image in sorted(images):
        try:
            built_from = client.images.get(image).labels.get(SOURCE_LABEL)
        except docker.errors.ImageNotFound:
            problems.append(f"{image} is not on this machine")
            continue
        if built_from is not None and built_from != source_digest():
            problems.append(f"{image} was built from other sources than this checkout's")
    return problems


def shared_folder(path: Path) -> Path:
    """A folder of this machine the containers write into as the image's user, whatever its uid."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    return path


def docker_runner(images: set[str], pipeline_root: Path, workspace: Path):
    from docker.types import Mount

    client = docker_client()
    problems = image_problems(client, images)
    client.close()
    if problems:
        raise RunnerUnavailable(
            f"--runner docker: {'; '.join(problems)}. `make images` builds gr2-cpu and gr2-serve; GPU stages run in "
            "GR2_GPU_IMAGE, which may name the CPU image on a machine without gr2-gpu"
        )
    shared_folder(pipeline_root)  # kfp.local mounts it at its own path
    workspace = str(shared_folder(workspace))
    return local.DockerRunner(network_mode="host", mounts=[Mount(target=workspace, source=workspace, type="bind")])
