"""The deployment gate: which row would be deployed, and whether it may be."""

from __future__ import annotations

from collections.abc import Collection

from gr2.eval.config import GateConfig

FUSED = "_fused"
# when the configured candidate did not run: the served (direct) model first, fused before alone
CANDIDATE_ORDER = ("direct_dapo_fused", "direct_dapo", "direct_sft_fused", "direct_sft", "dapo", "sft", "midtrain")


def model_stage(row: str) -> str:
    """The training stage whose model a row evaluates (`direct_sft_fused` -> `direct_sft`)."""
    return row.removesuffix(FUSED)


def gate_candidate(preferred: str, trained_stages: Collection[str]) -> str | None:
    """The configured candidate row if its stage ran, else the first of CANDIDATE_ORDER whose stage ran."""
    return next((row for row in (preferred, *CANDIDATE_ORDER) if model_stage(row) in trained_stages), None)


def incoming_value(rows: dict[str, dict], candidate: str, metric: str) -> float:
    """The incoming order's `metric` on the examples the candidate was scored on (a row scored on a sample
    carries its difference to the incoming order on that sample)."""
    compared = rows[candidate].get("vs_prerank", {}).get(metric)
    if compared is not None:
        return rows[candidate]["metrics"][metric] - compared["diff"]
    return rows["prerank"]["metrics"][metric]


def decide_gate(rows: dict[str, dict], config: GateConfig) -> dict:
    trained = {model_stage(name) for name, row in rows.items() if row["kind"] == "model"}
    candidate = gate_candidate(config.candidate, trained)
    rule = config.model_dump()
    if candidate is None or candidate not in rows:
        return {"passed": False, "candidate": None, "rule": rule, "reason": "no trained model row to deploy"}
    value, baseline = rows[candidate]["metrics"][config.metric], incoming_value(rows, candidate, config.metric)
    invalid = rows[candidate]["metrics"]["invalid_rate"]
    quality_ok = value >= baseline - config.margin
    invalid_ok = invalid <= config.max_invalid_rate
    reason = (
        f"{candidate} {config.metric} {value:.4f} {'>=' if quality_ok else '<'} pre-rank {baseline:.4f} - "
        f"{config.margin}; invalid rate {invalid:.4f} {'<=' if invalid_ok else '>'} {config.max_invalid_rate}"
    )
    return {"passed": quality_ok and invalid_ok, "candidate": candidate, "rule": rule, "reason": reason}
