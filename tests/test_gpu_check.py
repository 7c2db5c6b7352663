"""The GPU check runs on the CPU at tiny shapes, without the packages the GPU machine lacks, so it cannot rot."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

# the lent GPU machine has torch, transformers, accelerate and peft (pydantic and pyyaml carried), none of these
ABSENT_ON_THE_GPU_MACHINE = ("kfp", "trl", "vllm", "deepspeed", "datasets", "boto3", "s3fs", "gcsfs", "kserve", "faiss")


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_gpu_check_runs_on_cpu_and_says_its_numbers_are_not_gpu_numbers(tmp_path):
    blocked = "; ".join(f"sys.modules[{name!r}] = None" for name in ABSENT_ON_THE_GPU_MACHINE)
    code = f"import sys; {blocked}; from gr2.gpu_check import main; sys.exit(main(sys.argv[1:]))"
    run = subprocess.run(
        [sys.executable, "-c", code, "--out", str(tmp_path), "--repeats", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "not GPU numbers" in run.stdout
    report = json.loads((tmp_path / "gpu-check.json").read_text())
    steps = {(t["model"], t["step"]) for t in report["timings"]}
    for model in ("qwen3-1.7b", "qwen3-8b"):
        trained = ("midtrain step", "sft step (decoupled loss)", "dapo step (constrained rollouts)")
        for step in (*trained, "direct sft step (label logits)"):
            assert (model, step) in steps
        assert (model, "serving, batch 1") in steps and (model, "serving, batch 16") in steps
    assert all(t["seconds"] > 0 for t in report["timings"])
    assert set(report["gpu_hours"]) >= {"midtrain", "sft", "dapo"}
    table = (tmp_path / "gpu-check.md").read_text()
    assert table.startswith("**CPU run at tiny shapes: these are not GPU numbers.**")
    assert table.count("\n| qwen3-") == len(report["timings"])
