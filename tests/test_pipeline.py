"""The pipeline as a whole: compilation, the local run through kfp.local, and the library boundary."""

import gzip
import json
import subprocess
import sys

import pytest
import yaml

from gr2.cli import main
from pipelines.gr2_pipeline import STAGES, UnknownStageError, stages_until
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


def run_smoke(out) -> dict[str, float]:
    assert main(["run", "--preset", "smoke", "--out", str(out)]) == 0
    return json.loads((out / "metrics.json").read_text())


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    """The whole smoke pipeline, run once for the tests below."""
    out = tmp_path_factory.mktemp("smoke") / "out"
    return out, run_smoke(out)


@pytest.mark.slow
def test_smoke_pipeline_runs_every_stage(smoke_run):
    out, metrics = smoke_run
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
    assert metrics["evaluate.prerank.ndcg@5"] == pytest.approx(metrics["prerank.ndcg@5"])
    assert metrics["evaluate.oracle.recall@1"] == 1.0
    assert metrics["evaluate.gate_passed"] in (0.0, 1.0)
    assert json.loads((out / "config.json").read_text())["name"] == "smoke"


@pytest.mark.slow
def test_smoke_run_publishes_report_manifest_and_request(smoke_run):
    out, metrics = smoke_run
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


TIMING_METRICS = ("seconds", "per_second", "load_seconds", "seconds_per_1k_sequences")


@pytest.mark.slow
def test_same_config_and_seed_give_the_same_metrics(smoke_run, tmp_path):
    """Determinism on CPU: a second smoke run in a fresh folder (no checkpoint to resume) matches the first
    in every metric but timings."""
    _, first = smoke_run
    second = run_smoke(tmp_path / "again")
    comparable = [n for n in first if not n.endswith(TIMING_METRICS)]
    assert {n: second[n] for n in comparable} == pytest.approx({n: first[n] for n in comparable}, rel=1e-9, abs=1e-12)


@pytest.mark.slow
def test_report_is_rebuilt_from_a_finished_run(smoke_run):
    out, _ = smoke_run
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
