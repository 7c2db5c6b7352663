"""The real server (`python -m gr2.serve.server`, what `gr2 serve` runs) on 127.0.0.1, spoken to over HTTP:
valid, invalid and fuzzed requests on the v1, v2 and OpenAI routes, and the metrics."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

STARTUP_SECONDS = 180


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_ready(client: httpx.Client, process: subprocess.Popen, log_path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if client.get("/v2/health/ready").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    pytest.fail(f"server not ready after {STARTUP_SECONDS} s:\n{log_path.read_text()[-3000:]}")


@contextmanager
def running_server(model: Path, log_dir: Path, *settings: str):
    """`python -m gr2.serve.server --model MODEL` on a free loopback port; yields a client once ready."""
    port = free_port()
    log_path = log_dir / "server.log"
    command = [sys.executable, "-m", "gr2.serve.server", "--model", str(model), "--port", str(port)]
    for setting in ("threads=1", "max_body_bytes=65536", "timeout_seconds=60", *settings):
        command += ["--set", setting]
    with log_path.open("w") as log:
        environment = os.environ | {"HF_HUB_OFFLINE": "1"}
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120)
    try:
        wait_until_ready(client, process, log_path)
        yield client
    finally:
        client.close()
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def server(bundle_dir, tmp_path_factory):
    """`--model` is the run directory above the bundle (it also holds the base checkpoint, without gr2.json)."""
    with running_server(bundle_dir.parent, tmp_path_factory.mktemp("server")) as client:
        yield client


def v2_body(history, candidates, explain=None) -> dict:
    inputs = [
        {"name": "history", "datatype": "BYTES", "shape": [len(history)], "data": list(history)},
        {"name": "candidates", "datatype": "BYTES", "shape": [len(candidates)], "data": list(candidates)},
    ]
    if explain is not None:
        inputs.append({"name": "explain", "datatype": "BOOL", "shape": [1], "data": [explain]})
    return {"inputs": inputs}


def outputs_by_name(body: dict) -> dict:
    return {output["name"]: output["data"] for output in body["outputs"]}


def test_v1_predict(server, example):
    history, candidates = example
    instances = [
        {"history": history, "candidates": candidates, "explain": True},
        {"history": [], "candidates": candidates[:3]},
    ]
    response = server.post("/v1/models/gr2:predict", json={"instances": instances})
    assert response.status_code == 200, response.text
    first, second = response.json()["predictions"]
    assert sorted(first["ranking"]) == sorted(candidates) and isinstance(first["explanation"], str)
    assert sorted(second["ranking"]) == sorted(candidates[:3]) and "explanation" not in second
    assert first["fallback"] is False and first["fallback_reason"] is None


def test_v2_infer(server, example):
    history, candidates = example
    response = server.post("/v2/models/gr2/infer", json=v2_body(history, candidates, explain=True))
    assert response.status_code == 200, response.text
    outputs = outputs_by_name(response.json())
    assert sorted(outputs["ranking"]) == sorted(candidates)
    assert outputs["fallback"] == [False] and outputs["fallback_reason"] == [""]
    assert isinstance(outputs["explanation"][0], str)
    assert server.get("/v2/models/gr2").json()["inputs"][1]["name"] == "candidates"


@pytest.mark.parametrize(
    ("instance", "message"),
    [
        ({"history": [], "candidates": ["no-such-item", "other"]}, "unknown item ids"),
        ({"history": [], "candidates": []}, "candidates: empty"),
        ({"history": [], "candidates": ["a"] * 11}, "11 item ids; send 2 to 10"),
        ({"history": ["h"] * 51, "candidates": ["a", "b"]}, "history: 51 item ids, at most 50"),
        ({"history": [], "candidates": [1, 2]}, "candidates[0]: expected an item id string, got int"),
        ({"history": None, "candidates": ["a", "b"]}, "history: expected a list of item ids"),
    ],
)
def test_v1_invalid_requests_are_400_with_a_message(server, example, instance, message):
    response = server.post("/v1/models/gr2:predict", json={"instances": [instance]})
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_duplicates_and_bad_bodies(server, example):
    candidates = example[1]
    duplicate = {"history": [], "candidates": [candidates[0], candidates[1], candidates[0]]}
    response = server.post("/v1/models/gr2:predict", json={"instances": [duplicate]})
    assert response.status_code == 400 and "duplicate item ids" in response.json()["error"]
    assert server.post("/v1/models/gr2:predict", content=b"{not json").status_code == 400
    assert server.post("/v1/models/gr2:predict", json=[1, 2]).status_code == 400
    assert server.post("/v1/models/other:predict", json={"instances": [duplicate]}).status_code == 404
    response = server.post("/v2/models/gr2/infer", json=v2_body([], [1, 2]))
    assert response.status_code == 400


def test_v2_schema_errors_are_4xx(server):
    assert server.post("/v2/models/gr2/infer", json={"inputs": "x"}).status_code == 422
    bad_type = {"inputs": [{"name": "candidates", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0]}]}
    response = server.post("/v2/models/gr2/infer", json=bad_type)
    assert response.status_code == 400 and "datatype FP32, expected BYTES" in response.json()["error"]


def test_oversized_bodies_are_413(server):
    response = server.post("/v1/models/gr2:predict", content=b"x" * 70000)
    assert response.status_code == 413 and "max_body_bytes" in response.json()["error"]

    def chunks():
        for _ in range(20):
            yield b"x" * 4096

    assert server.post("/v1/models/gr2:predict", content=chunks()).status_code == 413


def test_openai_chat_completions(server):
    body = {"model": "gr2", "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 4, "seed": 1}
    response = server.post("/openai/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    reply = response.json()
    assert reply["object"] == "chat.completion" and reply["model"] == "gr2"
    assert isinstance(reply["choices"][0]["message"]["content"], str)
    assert reply["usage"]["completion_tokens"] <= 4
    assert server.post("/openai/v1/chat/completions", json=body | {"model": "gpt-4"}).status_code == 404
    assert server.post("/openai/v1/chat/completions", json=body | {"stream": True}).status_code == 422
    assert server.get("/openai/v1/models").json()["data"][0]["id"] == "gr2"


def test_metrics(server, example):
    server.post("/v1/models/gr2:predict", json={"instances": [{"history": [], "candidates": example[1][:2]}]})
    text = server.get("/metrics").text
    for name in ("gr2_request_latency_seconds_bucket", "gr2_generated_tokens_total", "gr2_ranked_instances_total"):
        assert name in text


ITEM_IDS = st.text(min_size=0, max_size=6) | st.integers() | st.none()


@st.composite
def fuzzed_bodies(draw, known: list[str]):
    """Mostly well-formed requests with some parts broken, so the fuzzer reaches deep into validation."""
    item = st.sampled_from(known) | ITEM_IDS
    instance = st.fixed_dictionaries(
        {"history": st.lists(item, max_size=4), "candidates": st.lists(item, min_size=0, max_size=11)},
        optional={"explain": st.booleans() | ITEM_IDS, "other": ITEM_IDS},
    )
    return draw(st.fixed_dictionaries({"instances": st.lists(instance, min_size=0, max_size=3)}) | instance | ITEM_IDS)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_requests_get_200_or_a_4xx(server, bundle, data):
    known = sorted(bundle.sid_map.codes)[:12]
    body = data.draw(fuzzed_bodies(known))
    response = server.post("/v1/models/gr2:predict", json=body)
    assert response.status_code in (200, 400), response.text
    if response.status_code == 200:
        for instance, prediction in zip(body["instances"], response.json()["predictions"], strict=True):
            assert sorted(prediction["ranking"]) == sorted(instance["candidates"])
            assert prediction["fallback"] is False
    else:
        assert response.json()["error"]


def test_openai_teacher_generates_resumable_traces_from_the_real_server(server, bundle, example, tmp_path):
    """The traces stage's `openai` backend against this project's own OpenAI-compatible route."""
    from gr2.prerank.candidates import RerankExample
    from gr2.traces.config import PromptConfig, TeacherConfig
    from gr2.traces.sampling import generate_traces, read_traces
    from gr2.traces.teachers import OpenAIChatBackend

    history, candidates = example
    examples = [RerankExample("train", f"u{n}", tuple(history), tuple(candidates), candidates[n]) for n in range(2)]
    config = TeacherConfig(
        backend="openai",
        base_url=f"{server.base_url}/openai/v1",
        model="gr2",
        max_tries=2,
        max_new_tokens=16,
        concurrency=2,
        max_retries=1,
        timeout_seconds=60,
    )
    teacher = OpenAIChatBackend(config)
    out = tmp_path / "traces.jsonl"
    generate_traces(examples, teacher, bundle.catalog, bundle.sid_map, PromptConfig(), config, seed=0, out_path=out)
    records = read_traces(out)
    assert [r["user_id"] for r in records] == ["u0", "u1"]
    assert all(r["tries"] >= 1 and r["teacher"] == "openai:gr2" for r in records)
    assert all(r["accepted"] or r["rejections"] for r in records)  # a random model rarely writes valid JSON
    generate_traces(examples, teacher, bundle.catalog, bundle.sid_map, PromptConfig(), config, seed=0, out_path=out)
    assert len(read_traces(out)) == 2  # resumed: nothing generated twice


def test_openai_teacher_names_the_endpoint_when_it_gives_up():
    from gr2.traces.config import TeacherConfig
    from gr2.traces.teachers import OpenAIChatBackend, TeacherRequest

    config = TeacherConfig(
        backend="openai", base_url=f"http://127.0.0.1:{free_port()}/v1", model="m", max_retries=1, timeout_seconds=2
    )
    request = TeacherRequest([{"role": "user", "content": "hi"}], (), ("a", "b"), seed=0)
    with pytest.raises(RuntimeError, match=r"gave up after 2 tries"):
        OpenAIChatBackend(config).generate([request])
