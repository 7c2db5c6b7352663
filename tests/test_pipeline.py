"""The pipeline as a whole: compilation, the local run through kfp.local, and the library boundary."""

import contextlib
import gzip
import io
import json
import re
import subprocess
import sys

import pytest
import yaml

from gr2.cli import main
from gr2.config import load_preset
from pipelines.gr2_pipeline import STAGES, UnknownStageError, compile_pipeline, stages_until
from tests.conftest import REPO


def test_compile_contains_every_component(tmp_path):
    output = tmp_path / "pipeline.yaml"
    assert main(["compile", "--preset", "beauty-gpu", "-o", str(output)]) == 0
    spec, platform = yaml.safe_load_all(output.read_text())
    tasks = set(spec["root"]["dag"]["tasks"]) | set(spec["components"]["comp-condition-1"]["dag"]["tasks"])
    assert {name.replace("-", "_") for name in tasks} == set(STAGES) | {"dapo_2", "condition_1"}
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {"ghcr.io/gr2-kubeflow/gr2-cpu:0.1.0", "ghcr.io/gr2-kubeflow/gr2-gpu:0.1.0"}
    assert platform["platforms"]["kubernetes"]
    defaults = spec["root"]["inputDefinitions"]["parameters"]
    assert json.loads(defaults["config_json"]["defaultValue"])["name"] == "beauty-gpu"


def dapo_sources(preset: str, tmp_path, *overrides: str) -> tuple[set[str], dict[str, str]]:
    """The compiled pipeline's task names, and the task each DAPO task takes its model from."""
    output = tmp_path / "pipeline.yaml"
    compile_pipeline(load_preset(preset, overrides), str(output), until="dapo")
    tasks = next(yaml.safe_load_all(output.read_text()))["root"]["dag"]["tasks"]
    model_in = {name: tasks[name]["inputs"]["artifacts"]["model_in"] for name in ("dapo", "dapo-2")}
    return set(tasks), {name: model["taskOutputArtifact"]["producerTask"] for name, model in model_in.items()}


def test_the_opd_stage_sits_between_sft_and_both_dapo_runs_only_when_enabled(tmp_path):
    naive = "dapo.run_naive_ablation=true"
    tasks, sources = dapo_sources("smoke", tmp_path, naive, "opd.enabled=true", "opd.teacher=student")
    assert "opd" in tasks and sources == {"dapo": "opd", "dapo-2": "opd"}
    tasks, sources = dapo_sources("smoke", tmp_path, naive)
    assert "opd" not in tasks and sources == {"dapo": "sft", "dapo-2": "sft"}


def test_until_selects_a_prefix_and_rejects_unknown_stages():
    assert stages_until("data") == ("data",)
    assert stages_until(None) == STAGES
    with pytest.raises(UnknownStageError, match="stages: data, prerank, sid"):
        stages_until("nonsense")


def test_library_never_imports_kfp():
    code = (
        "import importlib, pkgutil, sys, gr2\n"
        "for m in pkgutil.walk_packages(gr2.__path__, 'gr2.'):\n"
        "    importlib.import_module(m.name)\n"
        "print('kfp' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_datasets_command_lists_bundled_data(capsys):
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "amazon-beauty-2014" in out and "22,363" in out and "12,101" in out


def test_bad_preset_is_a_clear_cli_error(capsys):
    assert main(["run", "--preset", "smoke", "--set", "prerank.sasrec.epoch=1"]) == 2
    assert "prerank.sasrec.epoch: Extra inputs are not permitted" in capsys.readouterr().err


@pytest.fixture
def broken_folder(make_dataset):
    """A dataset folder whose items.jsonl.gz has one line that is not JSON, the fourth."""
    folder = make_dataset({f"u{n}": [f"i{n}", f"i{n + 1}", f"i{n + 2}"] for n in range(20)})
    with gzip.open(folder / "items.jsonl.gz", "rt") as handle:
        lines = handle.readlines()
    lines[3] = '{"item_id": "i3", "title": \n'
    with gzip.open(folder / "items.jsonl.gz", "wt") as handle:
        handle.writelines(lines)
    return folder


def test_a_bad_data_folder_fails_before_the_pipeline_starts(broken_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "--preset", "smoke", "--until", "data", "--data", str(broken_folder), "--out", str(out)]) == 1
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert last_line.startswith(f"data failed: {broken_folder / 'items.jsonl.gz'}:4: not valid JSON (")
    assert not (out / "kfp").exists()


def test_a_failed_stage_ends_with_its_cause_and_no_traceback_of_ours(broken_folder, tmp_path):
    """`--set data.dataset` is not checked before the run, so the data task itself fails."""
    out = tmp_path / "out"
    run = ["run", "--preset", "smoke", "--until", "data", "--set", f"data.dataset={broken_folder}", "--out", str(out)]
    result = subprocess.run([sys.executable, "-m", "gr2.cli", *run], capture_output=True, text=True, timeout=600)
    assert result.returncode == 1, result.stderr
    shown = result.stdout + result.stderr
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"data failed: DatasetError: {broken_folder / 'items.jsonl.gz'}:4: not valid JSON (")
    assert "data: FAILED after" in shown and "in load_items" in shown  # the end of the task's own log
    assert "RuntimeError" not in shown and "executor_input" not in shown
    assert "Got executor_input" in (out / "run.log").read_text()


def run_smoke(out) -> tuple[dict[str, float], str]:
    """The smoke preset's metrics, and what `gr2 run` showed on the terminal."""
    shown = io.StringIO()
    with contextlib.redirect_stderr(shown):
        exit_code = main(["run", "--preset", "smoke", "--out", str(out)])
    assert exit_code == 0, shown.getvalue()[-4000:]
    return json.loads((out / "metrics.json").read_text()), shown.getvalue()


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The whole smoke pipeline, run once for the tests below: its folder, metrics and terminal output."""
    out = tmp_path_factory.mktemp("smoke") / "out"
    return out, *run_smoke(out)


@pytest.mark.slow
def test_smoke_pipeline_runs_every_stage(smoke_run):
    out, metrics, _ = smoke_run
    assert metrics["data.users"] == 1000
    assert metrics["prerank.test_examples"] > 20
    for name in ("prerank.recall@1", "prerank.ndcg@5", "prerank.oracle.ndcg@5", "prerank.random.ndcg@5"):
        assert 0.0 <= metrics[name] <= 1.0
    assert metrics["prerank.oracle.recall@1"] == 1.0 and metrics["prerank.order_copy_rate"] == 1.0
    assert metrics["sid.uniqueness_after_resolution"] == 1.0
    assert metrics["base_model.roundtrip_ok_rate"] == 1.0
    assert {"midtrain.recall@10", "midtrain.ndcg@10", "midtrain.sid_valid_rate"} <= set(metrics)
    assert 0.0 < metrics["traces.acceptance_rate"] <= 1.0
    assert metrics["sft.train_steps"] == 3 and "sft.invalid_rate" in metrics
    assert metrics["dapo.train_steps"] == 2
    assert metrics["dapo.last_step_gr2_valid_share"] == 1.0  # constrained rollouts
    dapo_metrics = {"recall@1", "recall@5", "ndcg@5", "order_copy_rate", "invalid_rate"}
    assert {f"dapo.{name}" for name in dapo_metrics} <= set(metrics)
    assert metrics["direct_sft.train_steps"] == 4 and metrics["direct_dapo.train_steps"] == 2
    assert metrics["direct_dapo.last_step_valid_share"] == 1.0  # every Plackett-Luce sample is a permutation
    for row in ("direct_sft", "direct_sft_fused", "direct_dapo", "direct_dapo_fused"):
        assert metrics[f"evaluate.{row}.invalid_rate"] == 0.0
    assert metrics["evaluate.prerank.ndcg@5"] == pytest.approx(metrics["prerank.ndcg@5"])
    assert metrics["evaluate.oracle.recall@1"] == 1.0
    assert metrics["evaluate.gate_passed"] in (0.0, 1.0)
    assert json.loads((out / "config.json").read_text())["name"] == "smoke"


@pytest.mark.slow
def test_smoke_run_shows_stage_progress_and_ends_with_results_gate_and_paths(smoke_run):
    out, metrics, shown = smoke_run
    assert "executor_input" not in shown and "schemaTitle" not in shown
    ran = [stage for stage in STAGES if stage != "opd"]  # smoke leaves the optional opd stage off
    for stage in ran if metrics["evaluate.gate_passed"] else ran[:-1]:  # deploy runs when the gate passes
        assert re.search(rf"^{stage}: done in \d+\.\d s$", shown, re.MULTILINE), stage
    assert not re.search(r"^opd: ", shown, re.MULTILINE)
    table = shown[shown.index("test examples, value [95% interval]") :]
    assert all(header in table for header in ("R@1", "R@5", "NDCG@5", "Incoming order", "SFT + DAPO"))
    assert re.search(r"^Gate (passed|failed): .* \d\.\d{4} (above|below) the bar of -?\d\.\d{4}", shown, re.MULTILINE)
    assert f"metrics:   {out / 'metrics.json'}" in shown and f"log:       {out / 'run.log'}" in shown
    assert len(shown.splitlines()) < 80


@pytest.mark.slow
def test_smoke_run_publishes_report_manifest_and_request(smoke_run):
    out, metrics, _ = smoke_run
    report = (out / "report.html").read_text()
    assert "data:image/png;base64," in report and "Incoming order" in report
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config_hash"] and manifest["dataset"]["content_sha256"] and manifest["packages"]["torch"]
    assert set(manifest["upstream_artifacts"]) >= {"dataset", "examples", "semantic_ids", "dapo"}
    request = json.loads((out / "example_request.json").read_text())
    (instance,) = request["instances"]
    assert len(instance["candidates"]) == 10 and instance["history"]
    deployed = list((out / "kfp").glob("*/deploy/inference_service"))
    assert bool(deployed) == bool(metrics["evaluate.gate_passed"])
    assert (out / "bundle" / "gr2.json").is_file() and (out / "bundle" / "sid_map.json").is_file()
    bundled = json.loads((out / "bundle" / "gr2.json").read_text())
    assert bundled["decoding"]["mode"] == "direct" and bundled["source"]["row"] == "direct_dapo_fused"


@pytest.mark.slow
def test_smoke_runs_on_an_unseen_dataset_folder(tmp_path):
    """A folder in the normalised format that is not bundled: the first 3,000 Beauty users, renamed."""
    source = REPO / "data" / "amazon-beauty-2014"
    folder = tmp_path / "my-shop"
    folder.mkdir()
    with gzip.open(source / "sequences.tsv.gz", "rt") as handle:
        rows = handle.readlines()[:3001]
    with gzip.open(folder / "sequences.tsv.gz", "wt") as handle:
        handle.writelines(rows)
    (folder / "items.jsonl.gz").write_bytes((source / "items.jsonl.gz").read_bytes())
    out = tmp_path / "out"
    assert main(["run", "--preset", "smoke", "--data", str(folder), "--out", str(out), "--until", "prerank"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["data.users"] == 1000
    assert metrics["prerank.test_examples"] >= 1
    assert str(folder) in json.loads((out / "config.json").read_text())["data"]["dataset"]


# what the machine decides, not the config and seed: how long things took, and what the embedding cache held
NOT_SEEDED_METRICS = ("seconds", "per_second", "seconds_per_1k_sequences", "cached_texts", "embedded_texts")


def seeded_metrics(metrics: dict[str, float]) -> dict[str, float]:
    return {name: value for name, value in metrics.items() if not name.endswith(NOT_SEEDED_METRICS)}


@pytest.mark.slow
def test_same_config_and_seed_give_the_same_metrics(smoke_run, tmp_path):
    """Determinism on CPU: a second smoke run in a fresh folder (no checkpoint to resume; the first run left
    the embedding cache warm) matches the first exactly in every data, model and quality metric."""
    _, first, _ = smoke_run
    second, _ = run_smoke(tmp_path / "again")
    assert {"evaluate.dapo.ndcg@5", "sft.final_loss", "sid.uniqueness_after_resolution"} <= set(seeded_metrics(first))
    assert seeded_metrics(second) == seeded_metrics(first)


@pytest.mark.slow
def test_report_is_rebuilt_from_a_finished_run(smoke_run):
    out, _, _ = smoke_run
    (out / "report.html").unlink()
    assert main(["report", str(out), "--figures", str(out / "figures")]) == 0
    assert "data:image/png;base64," in (out / "report.html").read_text()
    assert (out / "figures" / "training-curves.png").read_bytes().startswith(b"\x89PNG")
    report = (out / "report.md").read_text()
    table = report[report.index("| row") :]
    assert table.index("Incoming order") < table.index("Popularity") < table.index("SFT on") < table.index("SFT + DAPO")


def test_report_without_a_run_is_a_clear_error(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "no finished evaluate stage" in " ".join(capsys.readouterr().err.split())
