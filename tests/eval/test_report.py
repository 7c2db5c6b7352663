import base64
import copy
import re
import shutil
import subprocess
import tempfile

import pytest

from gr2.eval import plots
from gr2.eval.report import render_html, render_markdown, write_figures, write_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MALICIOUS = '<script>alert("x")</script><img src=x onerror=alert(1)>'
TITLES = [f"Office item {n}" for n in range(10)]


def row(label, kind, r1, r5, ndcg5, *, invalid=0.0, order_copy=0.0, p=None, hits=None, **extra):
    metrics = {
        "recall@1": r1,
        "recall@3": (r1 + r5) / 2,
        "recall@5": r5,
        "ndcg@3": ndcg5 - 0.03,
        "ndcg@5": ndcg5,
        "mrr": ndcg5 - 0.05,
        "invalid_rate": invalid,
        "fallback_rate": invalid,
        "order_copy_rate": order_copy,
        "kendall_tau": 1.0 - 2 * (1 - order_copy) * 0.4,
    }
    result = {
        "label": label,
        "kind": kind,
        "metrics": metrics,
        "ci95": {"recall@5": [r5 - 0.04, min(1.0, r5 + 0.04)], "ndcg@5": [ndcg5 - 0.035, min(1.0, ndcg5 + 0.035)]},
        "hit_positions": hits or [int(412 * r1)] + [int(412 * (1 - r1) / 9)] * 9,
        "examples": [],
    }
    if p is not None:
        result["vs_prerank"] = {
            "recall@5": {"diff": r5 - 0.7227, "p_value": p},
            "ndcg@5": {"diff": ndcg5 - 0.5101, "p_value": p},
        }
    result.update(extra)
    if kind != "baseline":
        metrics.update(mean_completion_tokens=212.4, tokens_per_second=1830.2, examples_per_second=8.61)
    return result


def example(explanation):
    return {
        "user_id": "A2X9",
        "history": ["Stapler", "Desk lamp", "Gel pens"],
        "candidates": TITLES,
        "target": TITLES[3],
        "ranking": [TITLES[3]] + TITLES[:3] + TITLES[4:],
        "explanation": explanation,
    }


def make_results(passed=True):
    rows = {
        "prerank": row("Incoming order", "baseline", 0.2892, 0.7227, 0.5101, order_copy=1.0),
        "popularity": row("Popularity", "baseline", 0.1811, 0.6402, 0.4213, p=0.0001),
        "random": row("Random", "baseline", 0.1003, 0.5011, 0.3012, p=0.00001),
        "oracle": row("Oracle", "baseline", 1.0, 1.0, 1.0, p=0.00001, hits=[412] + [0] * 9),
        "teacher": row("Teacher (evidence)", "teacher", 0.3101, 0.7502, 0.5311, invalid=0.02, p=0.04),
        "sft": row(
            "SFT (rejection traces)",
            "model",
            0.2784,
            0.7091,
            0.4970,
            invalid=0.031,
            p=0.21,
            examples=[example("History shows desk supplies.")],
        ),
        "dapo": row(
            "SFT + DAPO (conditional)",
            "model",
            0.2977,
            0.7460,
            0.5234,
            invalid=0.004,
            order_copy=0.05,
            p=0.012,
            position_bias={
                "ndcg@5_shuffled": 0.5012,
                "recall@1_shuffled": 0.2713,
                "ndcg@5_delta": -0.0222,
                "recall@1_delta": -0.0264,
            },
            examples=[example("Step 1: pens, then refills.\nStep 2: paper."), example(MALICIOUS)],
        ),
        "dapo_naive": row(
            "SFT + DAPO (naive reward)", "model", 0.2890, 0.7221, 0.5101, invalid=0.011, order_copy=0.91, p=0.97
        ),
    }
    dapo_curve = [
        {
            "step": s,
            "reward": 0.05 + 0.02 * s - 0.0004 * s * s,
            "gr2/valid_share": min(1.0, 0.8 + 0.02 * s),
            "gr2/order_copy_rate": 0.1,
            "loss": 0.3,
            "dynamic_sampling/dropped_group_share": 0.2,
        }
        for s in range(1, 21)
    ]
    naive_curve = [
        dict(point, **{"reward": 0.2 + 0.0005 * point["step"], "gr2/order_copy_rate": 0.05 * point["step"]})
        for point in dapo_curve
    ]
    reason = (
        "dapo ndcg@5 0.5234 >= prerank 0.5101 - 0.01; invalid 0.0040 <= 0.05"
        if passed
        else "dapo ndcg@5 0.4870 < prerank 0.5101 - 0.01"
    )
    return {
        "preset": "demo",
        "dataset": "amazon-office-2014",
        "examples": 412,
        "seed": 0,
        "rows": rows,
        "gate": {
            "passed": passed,
            "reason": reason,
            "candidate": "dapo",
            "rule": {"metric": "ndcg@5", "margin": 0.01, "max_invalid_rate": 0.05},
        },
        "curves": {
            "sft": [{"step": s, "loss": 2.0 / s} for s in range(1, 31)],
            "dapo": dapo_curve,
            "dapo_naive": naive_curve,
        },
        "sid": {
            "utilisation_level_0": 0.98,
            "utilisation_level_1": 0.91,
            "utilisation_level_2": 0.74,
            "utilisation_level_3": 0.55,
            "perplexity_level_0": 231.0,
            "perplexity_level_1": 190.5,
            "perplexity_level_2": 120.2,
            "perplexity_level_3": 88.1,
            "uniqueness": 0.9931,
        },
        "stages": {"data": {"users": 4905, "items": 2420}, "prerank": {"coverage_test": 0.41}},
    }


MANIFEST = {
    "config_hash": "sha256:ab12",
    "dataset_hash": "sha256:cd34",
    "git_commit": "5a65e9a",
    "packages": {"torch": "2.13.0", "kfp": "2.17.3"},
    "timings_s": {"data": 3.2, "dapo": 812.91},
    "artifacts": {"sft": "minio://mlpipeline/v2/artifacts/gr2/sft/model", "note": MALICIOUS},
}


@pytest.fixture(scope="module")
def page():
    return render_html(make_results(), MANIFEST)


def test_table_lists_every_row_with_intervals_and_p_values(page):
    for label in (
        "Incoming order",
        "Oracle",
        "Teacher (evidence)",
        "SFT + DAPO (conditional)",
        "SFT + DAPO (naive reward)",
    ):
        assert label in page
    assert "[0.7060, 0.7860]" in page  # dapo's R@5 interval
    assert "+0.0233*" in page and "p=0.0120" in page  # significant at 0.05
    assert "-0.0136" in page and "p=0.2100" in page and "-0.0136*" not in page  # sft: not significant
    assert "p&lt;0.0001" in page  # random's p-value 1e-5


def test_best_value_per_column_is_bold_and_oracle_is_not(page):
    assert "<b>0.3101</b>" in page  # the teacher's R@1, the oracle's 1.0 excluded
    assert "<b>1.0000</b>" not in page
    assert "<b>0.0040</b>" in page  # lowest invalid rate among generated rankings: baselines' 0.0 do not compete
    assert result_column(page, 8) == ["0.0000"] * 4 + ["0.0200", "0.0310", "<b>0.0040</b>", "0.0110"]  # invalid


def result_column(page, index):
    """The cells of one column of the results table (the page's first table), in row order."""
    table = page[page.index("<table>") : page.index("</table>")]
    return [re.findall(r"<td[^>]*>(.*?)</td>", line)[index] for line in table.split("<tr") if "<td" in line]


def test_baselines_are_grouped_apart_from_models(page):
    assert '<tbody class="baseline">' in page and '<tbody class="model">' in page
    assert page.index("Popularity") < page.index('<tbody class="teacher">') < page.index("SFT (rejection traces)")


@pytest.mark.parametrize("passed", [True, False])
def test_gate_banner_shows_decision_and_reason(passed):
    page = render_html(make_results(passed), MANIFEST)
    if passed:
        assert '<section class="gate pass">' in page
        assert "Gate passed: SFT + DAPO (conditional) may be deployed" in page
        assert "dapo ndcg@5 0.5234 &gt;= prerank 0.5101 - 0.01" in page
    else:
        assert '<section class="gate fail">' in page
        assert "Gate failed: do not deploy SFT + DAPO (conditional)" in page
        assert "dapo ndcg@5 0.4870 &lt; prerank 0.5101 - 0.01" in page
    assert "max_invalid_rate 0.0500" in page


def test_figures_are_inline_base64_pngs(page):
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == 4
    assert all(base64.b64decode(image).startswith(PNG_SIGNATURE) for image in images)


def test_page_references_no_remote_resource(page):
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.IGNORECASE)
    assert not re.search(r"url\(|@import|<link|<script", page, re.IGNORECASE)
    assert "http://" not in page and "https://" not in page


def test_untrusted_text_is_escaped(page):
    assert "<script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page


def test_generation_cost_shows_only_the_reported_columns(page):
    cost = page[page.index("<h2>Generation cost</h2>") :]
    cost = cost[: cost.index("</table>")]
    assert "mean completion tokens" in cost and "212.4" in cost and "mean trace tokens" not in cost
    assert "Incoming order" not in cost and "SFT + DAPO (naive reward)" in cost


def test_gate_without_candidate_says_there_is_nothing_to_deploy():
    results = make_results(passed=False)
    results["gate"] |= {"candidate": None, "reason": "no trained model row to deploy"}
    assert "Gate failed: no model to deploy" in render_html(results, MANIFEST)
    assert "**Deployment gate FAILED** (candidate: none): no trained model row to deploy" in render_markdown(results)


def test_example_traces_show_the_candidates_target_and_explanation(page):
    assert "<details open><summary>SFT + DAPO (conditional): 2 example traces</summary>" in page
    assert "target position 4 incoming, 1 re-ranked" in page
    assert '<li class="target">Office item 3</li>' in page
    assert "Step 1: pens, then refills.\nStep 2: paper." in page


def test_manifest_and_stage_metrics_are_collapsible(page):
    assert "<details><summary>Manifest" in page and "<details><summary>Stage metrics" in page
    assert "minio://mlpipeline/v2/artifacts/gr2/sft/model" in page and "812.9100" in page


def test_markdown_summary_has_gate_and_table():
    markdown = render_markdown(make_results(passed=False))
    assert "**0.3101**" in markdown
    gate = "**Deployment gate FAILED** (candidate: SFT + DAPO (conditional)): dapo ndcg@5 0.4870 &lt; prerank"
    assert gate in markdown
    lines = markdown.splitlines()
    header = next(line for line in lines if line.startswith("| row |"))
    assert "R@5 [95% CI]" in header and "ΔNDCG@5 (p)" in header
    dapo = next(line for line in lines if line.startswith("| SFT + DAPO (conditional) |"))
    assert "0.7460 [0.7060, 0.7860]" in dapo and "+0.0233* p=0.0120" in dapo
    assert sum(line.startswith("| ") for line in lines) == 2 + len(make_results()["rows"])


def test_markdown_escapes_table_breaking_labels():
    results = make_results()
    results["rows"]["sft"]["label"] = "SFT | <b>x</b>"
    assert "| SFT \\| &lt;b>x&lt;/b> |" in render_markdown(results)


def test_optional_sections_may_be_missing(tmp_path):
    results = make_results()
    results["curves"] = {"sft": [], "dapo": [], "dapo_naive": []}  # what the evaluator gives for untrained rows
    for key in ("sid", "stages"):
        del results[key]
    for result_row in results["rows"].values():
        for key in ("ci95", "vs_prerank", "hit_positions", "position_bias", "examples"):
            result_row.pop(key, None)
        for key in ("mean_completion_tokens", "tokens_per_second", "examples_per_second"):
            result_row["metrics"].pop(key, None)
    page = render_html(results, {})
    assert page.count("data:image/png;base64,") == 1  # the interval plot, now points without intervals
    assert "Example traces" not in page and "Position bias" not in page and "Generation cost" not in page
    paths = write_report(results, {}, tmp_path / "out")
    assert paths == {"html": tmp_path / "out" / "report.html", "markdown": tmp_path / "out" / "report.md"}
    assert paths["html"].read_text() == page and paths["markdown"].read_text() == render_markdown(results)


def test_plots_return_none_without_data():
    assert plots.hit_positions_png({}) is None
    assert plots.metric_intervals_png({}) is None
    assert plots.training_curves_png({}, {}) is None
    assert plots.training_curves_png({"dapo": [{"step": 1, "loss": 0.2}]}, {}) is None  # no plotted metric
    assert plots.sid_levels_png({"uniqueness": 0.99}) is None


def test_plots_are_deterministic_pngs_and_leave_pyplot_alone():
    import matplotlib.pyplot as pyplot

    results = make_results()
    first = plots.training_curves_png(results["curves"], {"dapo": "conditional"})
    assert first.startswith(PNG_SIGNATURE)
    assert first == plots.training_curves_png(copy.deepcopy(results["curves"]), {"dapo": "conditional"})
    assert plots.sid_levels_png({"utilisation_level_0": 0.9}).startswith(PNG_SIGNATURE)
    assert pyplot.get_fignums() == []


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(tmp_path):
    """Renders the page offline; keep the screenshot with GR2_REPORT_SCREENSHOT=path to look at it."""
    html_path = write_report(make_results(), MANIFEST, tmp_path)["html"]
    screenshot = tmp_path / "report.png"
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                f"--user-data-dir={profile}",
                f"--screenshot={screenshot}",
                "--window-size=1400,3000",
                html_path.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
    assert screenshot.read_bytes().startswith(PNG_SIGNATURE)
    assert screenshot.stat().st_size > 50_000  # a blank page compresses to a few kB


def test_figures_are_written_as_png_files_named_after_their_titles(tmp_path):
    paths = write_figures(make_results(), tmp_path / "figures")
    assert paths and all(path.read_bytes().startswith(b"\x89PNG") for path in paths)
    assert tmp_path / "figures" / "recall-5-and-ndcg-5.png" in paths


def test_slate_results_get_an_auc_column_and_say_what_recall_and_ndcg_mean():
    results = make_results()
    assert "AUC" not in render_markdown(results) and "Slates" not in render_markdown(results)
    for number, body in enumerate(results["rows"].values()):
        body["metrics"]["auc"] = 0.6 + number / 100
    markdown = render_markdown(results)
    header = next(line for line in markdown.splitlines() if line.startswith("| row |"))
    assert header.index("MRR") < header.index("AUC") < header.index("ΔR@5")
    assert "R@k is the share of all positives in the top k" in markdown
    page = render_html(results, {})
    assert "<th>AUC</th>" in page and "NDCG@k is graded" in page
