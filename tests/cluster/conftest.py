"""Fixtures of the cluster tests: the GCS and S3 emulators, each on a free port of 127.0.0.1, and the
compiled `beauty-gpu` pipeline."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from pipelines.placement import load_compiled
from tests.conftest import REPO

BUCKET = "gr2-test"
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited with {process.returncode} before listening on {port}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{process.args[0]} did not listen on 127.0.0.1:{port} within {timeout_s:.0f} s")


def emulator_command(name: str, package: str) -> Path:
    executable = VENV_BIN / name
    if not executable.is_file():
        pytest.skip(f"{name} not installed: pip install '{package}' (the dev extra)")
    return executable


@contextmanager
def serving(command: list[str], port: int) -> Iterator[None]:
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """gcp-storage-emulator in memory, with bucket BUCKET; gcsfs finds it through STORAGE_EMULATOR_HOST."""
    executable = emulator_command("gcp-storage-emulator", "gcp-storage-emulator==2026.7.19")
    port = free_port()
    command = [
        str(executable),
        "start",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--in-memory",
        "--default-bucket",
        BUCKET,
    ]
    endpoint = f"http://127.0.0.1:{port}"
    with serving(command, port), pytest.MonkeyPatch.context() as env:
        env.setenv("STORAGE_EMULATOR_HOST", endpoint)
        env.setenv("NO_GCE_CHECK", "true")  # google-auth must never probe a metadata server from here
        yield endpoint


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 server with bucket BUCKET; s3fs finds it through AWS_ENDPOINT_URL."""
    executable = emulator_command("moto_server", "moto[server]==5.2.5")
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    with serving([str(executable), "-H", "127.0.0.1", "-p", str(port)], port), pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ENDPOINT_URL", endpoint)
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        from gr2.storage.fs import filesystem

        fs, _ = filesystem(f"s3://{BUCKET}")
        fs.mkdir(BUCKET)
        yield endpoint


@dataclass(frozen=True)
class CompiledPreset:
    text: str
    pipeline_spec: dict
    platform_spec: dict | None


def compile_preset(preset: str, output: Path) -> CompiledPreset:
    """`gr2 compile` in a fresh interpreter, with the images' default names (GR2_*_IMAGE unset)."""
    env = {k: v for k, v in os.environ.items() if not (k.startswith("GR2_") and k.endswith("_IMAGE"))}
    command = [sys.executable, "-m", "gr2.cli", "compile", "--preset", preset, "-o", str(output)]
    subprocess.run(command, check=True, env=env, cwd=REPO, capture_output=True)
    text = output.read_text()
    return CompiledPreset(text, *load_compiled(text))


@pytest.fixture(scope="session")
def beauty_gpu(tmp_path_factory) -> CompiledPreset:
    return compile_preset("beauty-gpu", tmp_path_factory.mktemp("compiled") / "beauty-gpu.yaml")
