"""The pipeline on slates: the smoke-slates preset (slates made from the bundled Office data) and `--data` with a
slate folder. The first and last test run the preset; the others stop after `prerank`."""

import contextlib
import gzip
import io
import json

import pytest

from gr2.cli import main
from gr2.prerank.candidates import read_examples
from pipelines.gr2_pipeline import STAGES
from tests.conftest import after_the_suite


def run_slates(out, *arguments) -> tuple[int, str]:
    shown = io.StringIO()
    with contextlib.redirect_stderr(shown):
        exit_code = main(["run", "--out", str(out), *arguments])
    return exit_code, shown.getvalue()


def metrics_of(out) -> dict[str, float]:
    return json.loads((out / "metrics.json").read_text())


def test_smoke_slates_until_prerank_passes_the_shown_order_with_grades(tmp_path):
    out = tmp_path / "out"
    exit_code, shown = run_slates(out, "--preset", "smoke-slates", "--until", "prerank")
    assert exit_code == 0, shown[-4000:]
    metrics = metrics_of(out)
    assert metrics["data.users"] == 300 and metrics["data.multi_positive_slates"] > 0
    assert metrics["data.train_slates"] + metrics["data.test_slates"] == metrics["data.slates"]
    assert metrics["prerank.test_examples"] == metrics["data.test_slates"]
    assert metrics["prerank.order_copy_rate"] == 1.0 and metrics["prerank.kendall_tau"] == 1.0
    assert metrics["prerank.oracle.auc"] == metrics["prerank.oracle.ndcg@5"] == 1.0
    assert 0.0 < metrics["prerank.auc"] < 1.0
    (examples_dir,) = out.glob("kfp/*/prerank/examples")
    examples = read_examples(examples_dir)
    assert all(e.grades is not None and e.grades_by_item[e.target] == max(e.grades) for e in examples)
    assert any(sum(grade > 0 for grade in e.grades) > 1 for e in examples)


def slate_line(request_id: str, timestamp: int, labels) -> str:
    shown = [f"i{n}" for n in range(4)]
    record = {"request_id": request_id, "user_id": f"u{timestamp}", "timestamp": timestamp}
    return json.dumps(record | {"history": ["i5", "i6"], "shown": shown, "labels": labels}) + "\n"


@pytest.fixture
def slate_folder(tmp_path):
    """A slate folder of 20 requests over 7 items, in the documented format."""
    folder = tmp_path / "logged"
    folder.mkdir()
    with gzip.open(folder / "slates.jsonl.gz", "wt") as handle:
        handle.writelines(slate_line(f"r{n}", 1000 + n, [0, n % 3, 0, 1]) for n in range(20))
    with gzip.open(folder / "items.jsonl.gz", "wt") as handle:
        handle.writelines(json.dumps({"item_id": f"i{n}", "title": f"Item {n}"}) + "\n" for n in range(7))
    return folder


def test_data_takes_a_slate_folder(slate_folder, tmp_path):
    out = tmp_path / "out"
    exit_code, shown = run_slates(out, "--preset", "smoke", "--data", str(slate_folder), "--until", "prerank")
    assert exit_code == 0, shown[-4000:]
    metrics = metrics_of(out)
    assert metrics["data.slates"] == 20 and metrics["data.test_slates"] == 4  # test_fraction 0.2 of 20
    assert metrics["prerank.test_examples"] == 4 and metrics["prerank.oracle.auc"] == 1.0


def test_a_bad_slate_file_fails_before_the_pipeline_starts(slate_folder, tmp_path, capsys):
    with gzip.open(slate_folder / "slates.jsonl.gz", "at") as handle:
        handle.write(slate_line("r99", 2000, [0, 1, "2", 0]))
    out = tmp_path / "out"
    assert main(["run", "--preset", "smoke", "--data", str(slate_folder), "--out", str(out)]) == 1
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    expected = f"{slate_folder / 'slates.jsonl.gz'}:21: field 'labels' entry 2 must be a non-negative integer"
    assert last_line.startswith(f"data failed: {expected}")
    assert not (out / "kfp").exists()


@pytest.mark.slow
@after_the_suite("GR2_SLATES_SMOKE", "a third whole pipeline run (about 3 minutes)")
def test_smoke_slates_runs_every_stage(tmp_path):
    """The whole preset: every stage on slates, the slate metrics in every evaluated row, the gate decided."""
    out = tmp_path / "out"
    exit_code, shown = run_slates(out, "--preset", "smoke-slates")
    assert exit_code == 0, shown[-4000:]
    metrics = metrics_of(out)
    for stage in STAGES if metrics["evaluate.gate_passed"] else STAGES[:-1]:
        assert f"{stage}: done in" in shown, stage
    assert metrics["opd.train_steps"] == metrics["dapo.train_steps"] == metrics["direct_dapo.train_steps"] == 2
    assert {"opd.auc", "dapo.auc", "direct_sft.auc", "direct_dapo.fused_auc"} <= set(metrics)
    for row in ("prerank", "oracle", "sft", "dapo", "direct_sft", "direct_dapo", "direct_dapo_fused"):
        assert 0.0 <= metrics[f"evaluate.{row}.auc"] <= 1.0
    assert metrics["evaluate.oracle.ndcg@5"] == 1.0 and metrics["evaluate.prerank.order_copy_rate"] == 1.0
    assert metrics["evaluate.prerank.scored_examples"] == 32  # evaluate.max_examples of the 70 test slates
    assert "AUC" in (out / "report.md").read_text()
