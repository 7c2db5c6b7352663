"""What `gr2 run` prints at the end of a run: the evaluation's rows with R@1, R@5 and NDCG@5 (95% intervals
where the evaluation computed them) and the deployment gate's verdict in one sentence, with its margin.

The rest of the numbers are in metrics.json and the report; this is what a person reads first.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rich.table import Table

SUMMARY_METRICS = {"recall@1": "R@1", "recall@5": "R@5", "ndcg@5": "NDCG@5"}
MISSING = "—"


def results_path(run_dir: Path) -> Path | None:
    """The evaluate task's results.json in a kfp.local run folder, if the run got that far."""
    path = run_dir / "evaluate" / "results" / "results.json"
    return path if path.is_file() else None


def metric_cell(row: Mapping, metric: str) -> str:
    value = row.get("metrics", {}).get(metric)
    if value is None:
        return MISSING
    interval = row.get("ci95", {}).get(metric)
    return f"{value:.4f} [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else f"{value:.4f}"


SLATE_NOTE = "; slates: R@k of all positives, graded NDCG"


def results_table(results: Mapping) -> Table:
    """One line per evaluated row, in the evaluation's order; the title says when the rows scored slates
    (only slate metrics have an AUC), whose R@k and NDCG@k mean something else."""
    slates = any("auc" in row.get("metrics", {}) for row in results["rows"].values())
    table = Table(
        title=f"{results.get('preset', '')}: {results['examples']} test examples, value [95% interval]"
        + (SLATE_NOTE if slates else ""),
        title_justify="left",
    )
    table.add_column("row")
    for header in SUMMARY_METRICS.values():
        table.add_column(header, justify="right", no_wrap=True)  # the row label wraps instead
    for key, row in results["rows"].items():
        table.add_row(row.get("label", key), *(metric_cell(row, metric) for metric in SUMMARY_METRICS))
    return table


def gate_verdict(results: Mapping) -> str:
    """The gate's decision, the candidate's distance to the bar it had to clear, and the invalid-rate limit."""
    gate, rows = results["gate"], results["rows"]
    candidate = gate.get("candidate")
    if candidate is None:
        return f"Gate failed: {gate['reason']}."
    rule = gate["rule"]
    metric, margin, limit = rule["metric"], rule["margin"], rule["max_invalid_rate"]
    value = rows[candidate]["metrics"][metric]
    baseline = rows["prerank"]["metrics"][metric]
    invalid = rows[candidate]["metrics"]["invalid_rate"]
    bar = baseline - margin
    side = "above" if value >= bar else "below"
    outcome = "may be deployed" if gate["passed"] else "do not deploy"
    return (
        f"Gate {'passed' if gate['passed'] else 'failed'}: {rows[candidate].get('label', candidate)} has "
        f"{metric} {value:.4f}, {abs(value - bar):.4f} {side} the bar of {bar:.4f} (pre-rank {baseline:.4f} "
        f"minus margin {margin:g}), and an invalid rate of {invalid:.4f} (limit {limit:g}): {outcome}."
    )
