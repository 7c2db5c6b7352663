"""The predictor from its image, as KServe runs it: the CPU InferenceService's command, arguments and
environment (gr2.serve.deploy, equal to manifests/overlays/cpu), a bundle mounted read-only at /mnt/models
where KServe's storage initializer puts it, a read-only root filesystem with /tmp as the only writable place,
the image's non-root user. Probes, the v1, v2 and OpenAI routes answer; a malformed request gets a 4xx."""

from __future__ import annotations

import os
import shutil
import socket
import time
import uuid

import httpx
import pytest

from gr2.serve.deploy import MODEL_MOUNT, render_inference_service
from tests.containers.conftest import docker

pytestmark = pytest.mark.containers
STARTUP_SECONDS = 180
LIVENESS_PATH = "/"  # KServe's model server answers it as soon as it listens


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def on_loopback(args: list[str], port: int) -> list[str]:
    """The manifest's arguments with this test's address: loopback and a free port (the container shares the
    host's network)."""
    changed = list(args)
    changed[changed.index("--host") + 1] = "127.0.0.1"
    changed[changed.index("--port") + 1] = str(port)
    return changed


@pytest.fixture(scope="module")
def readable_bundle(bundle_dir, tmp_path_factory):
    """A copy of the test bundle the image's user can read (pytest's temporary folders are private to root)."""
    models = tmp_path_factory.mktemp("models") / "bundle"
    shutil.copytree(bundle_dir, models)
    for folder, _, files in os.walk(models):
        os.chmod(folder, 0o755)
        for name in files:
            os.chmod(os.path.join(folder, name), 0o644)
    return models


@pytest.fixture(scope="module")
def predictor_container(serve_image, readable_bundle):
    """(readiness path, client) of the running predictor container; removed afterwards."""
    isvc = render_inference_service("pvc://gr2-model-cache/bundles/latest", overlay="cpu")
    [container] = isvc["spec"]["predictor"]["containers"]
    assert container["image"] == serve_image
    port, name = free_port(), f"gr2-predictor-test-{uuid.uuid4().hex[:8]}"
    environment = [f"--env={variable['name']}={variable['value']}" for variable in container["env"]]
    docker(
        "run", "--detach", f"--name={name}", "--network=host", "--read-only", "--tmpfs=/tmp",
        f"--volume={readable_bundle}:{MODEL_MOUNT}:ro", *environment,
        serve_image, *container["command"], *on_loopback(container["args"], port), "--set", "threads=1",
    )  # fmt: skip
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
    readiness = container["readinessProbe"]["httpGet"]["path"]
    try:
        wait_until_ready(client, readiness, name)
        yield name, readiness, client
    finally:
        client.close()
        docker("rm", "--force", name, check=False)


def wait_until_ready(client: httpx.Client, readiness: str, name: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        state = docker("inspect", "--format", "{{.State.Status}}", name, check=False).stdout.strip()
        if state != "running":
            pytest.fail(f"predictor container {state}:\n{docker('logs', name, check=False).stderr[-3000:]}")
        try:
            if client.get(readiness).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(1)
    pytest.fail(f"predictor not ready after {STARTUP_SECONDS} s:\n{docker('logs', name, check=False).stderr[-3000:]}")


def test_runs_as_the_images_non_root_user(predictor_container):
    name, _, _ = predictor_container
    assert docker("exec", name, "id", "-u").stdout.strip() != "0"


def test_readiness_and_liveness_probes_answer(predictor_container):
    _, readiness, client = predictor_container
    assert client.get(readiness).json()["ready"] is True
    assert client.get(LIVENESS_PATH).status_code == 200
    assert client.get("/v2/health/live").status_code == 200 and client.get("/v2/health/ready").status_code == 200


def test_v1_v2_and_openai_routes_answer(predictor_container, example):
    _, _, client = predictor_container
    history, candidates = example
    v1 = client.post("/v1/models/gr2:predict", json={"instances": [{"history": history, "candidates": candidates}]})
    assert v1.status_code == 200, v1.text
    assert sorted(v1.json()["predictions"][0]["ranking"]) == sorted(candidates)
    v2_inputs = [
        {"name": "history", "datatype": "BYTES", "shape": [len(history)], "data": history},
        {"name": "candidates", "datatype": "BYTES", "shape": [len(candidates)], "data": candidates},
    ]
    v2 = client.post("/v2/models/gr2/infer", json={"inputs": v2_inputs})
    assert v2.status_code == 200, v2.text
    outputs = {output["name"]: output["data"] for output in v2.json()["outputs"]}
    assert sorted(outputs["ranking"]) == sorted(candidates)
    chat = {"model": "gr2", "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 4, "seed": 1}
    openai = client.post("/openai/v1/chat/completions", json=chat)
    assert openai.status_code == 200 and openai.json()["object"] == "chat.completion", openai.text


def test_a_malformed_request_gets_a_4xx(predictor_container):
    _, _, client = predictor_container
    assert client.post("/v1/models/gr2:predict", content=b"{not json").status_code == 400
    assert client.post("/v2/models/gr2/infer", json={"inputs": "x"}).status_code == 422
