import io

from rich.console import Console

from gr2.eval.summary import gate_verdict, results_path, results_table


def row(label, r1, r5, ndcg5, invalid=0.0):
    return {
        "label": label,
        "kind": "model",
        "metrics": {"recall@1": r1, "recall@5": r5, "ndcg@5": ndcg5, "invalid_rate": invalid},
        "ci95": {"recall@5": [r5 - 0.04, r5 + 0.04], "ndcg@5": [ndcg5 - 0.03, ndcg5 + 0.03]},
    }


def results(candidate_ndcg=0.5234, invalid=0.004, passed=True, candidate="dapo"):
    return {
        "preset": "demo",
        "examples": 412,
        "rows": {
            "prerank": row("Incoming order", 0.2892, 0.7227, 0.5101),
            "dapo": row("SFT + DAPO", 0.2977, 0.7460, candidate_ndcg, invalid),
        },
        "gate": {
            "passed": passed,
            "candidate": candidate,
            "reason": "no trained model row to deploy" if candidate is None else "...",
            "rule": {"metric": "ndcg@5", "margin": 0.01, "max_invalid_rate": 0.05},
        },
    }


def rendered(table) -> str:
    output = io.StringIO()
    Console(file=output, width=160).print(table)
    return output.getvalue()


def test_table_has_each_row_in_order_with_intervals_where_computed():
    text = rendered(results_table(results()))
    assert "demo: 412 test examples" in text
    assert text.index("Incoming order") < text.index("SFT + DAPO")
    prerank_line = next(line for line in text.splitlines() if "Incoming order" in line)
    assert "0.2892 " in prerank_line and "0.2892 [" not in prerank_line  # R@1 has no interval in results.json
    assert "0.7227 [0.683, 0.763]" in prerank_line and "0.5101 [0.480, 0.540]" in prerank_line


def test_slate_rows_say_what_recall_and_ndcg_mean():
    assert "slates" not in rendered(results_table(results()))
    on_slates = results()
    for body in on_slates["rows"].values():
        body["metrics"]["auc"] = 0.6
    title = " ".join(rendered(results_table(on_slates)).split())  # the title wraps at the table's width
    assert "value [95% interval]; slates: R@k of all positives, graded NDCG" in title


def test_an_80_column_terminal_keeps_each_number_on_one_line():
    long_labels = results()
    long_labels["rows"]["dapo"]["label"] = "SFT + DAPO, conditional reward (GR2), the gate's candidate"
    output = io.StringIO()
    Console(file=output, width=80).print(results_table(long_labels))
    assert "0.7460 [0.706, 0.786]" in output.getvalue() and "0.5234 [0.493, 0.553]" in output.getvalue()


def test_missing_metric_is_a_dash():
    partial = results()
    del partial["rows"]["dapo"]["metrics"]["recall@5"]
    dapo_line = next(line for line in rendered(results_table(partial)).splitlines() if "SFT + DAPO" in line)
    assert "—" in dapo_line


def test_passed_gate_says_how_far_above_the_bar():
    assert gate_verdict(results()) == (
        "Gate passed: SFT + DAPO has ndcg@5 0.5234, 0.0233 above the bar of 0.5001 (pre-rank 0.5101 minus "
        "margin 0.01), and an invalid rate of 0.0040 (limit 0.05): may be deployed."
    )


def test_failed_gate_says_how_far_below_the_bar():
    verdict = gate_verdict(results(candidate_ndcg=0.4870, passed=False))
    assert verdict.startswith("Gate failed: SFT + DAPO has ndcg@5 0.4870, 0.0131 below the bar of 0.5001")
    assert verdict.endswith(": do not deploy.")


def test_gate_failed_on_invalid_rate_shows_the_limit():
    verdict = gate_verdict(results(invalid=0.2, passed=False))
    assert "above the bar" in verdict and "invalid rate of 0.2000 (limit 0.05): do not deploy." in verdict


def test_gate_without_candidate_says_nothing_is_deployed():
    assert gate_verdict(results(candidate=None, passed=False)) == "Gate failed: no trained model row to deploy."


def test_results_path_is_the_evaluate_tasks_results(tmp_path):
    assert results_path(tmp_path) is None
    path = tmp_path / "evaluate" / "results" / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text("{}")
    assert results_path(tmp_path) == path
