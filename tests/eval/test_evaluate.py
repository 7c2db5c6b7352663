import numpy as np
import pytest

from gr2.data.split import LeaveOneOutSplit
from gr2.eval.config import EvaluateConfig, GateConfig
from gr2.eval.evaluate import evaluate_rows, shuffled_candidates
from gr2.eval.gate import decide_gate, gate_candidate, model_stage
from gr2.eval.stage import flat_metrics, model_row_label
from gr2.eval.stats import bootstrap_interval, paired_sign_flip_p_value
from gr2.inputs import StageInputs
from gr2.prerank.candidates import RerankExample
from gr2.sid.sidmap import SidMap


def rows_with(dapo_ndcg: float, dapo_invalid: float) -> dict:
    return {
        "prerank": {"kind": "baseline", "metrics": {"ndcg@5": 0.50, "invalid_rate": 0.0}},
        "dapo": {"kind": "model", "metrics": {"ndcg@5": dapo_ndcg, "invalid_rate": dapo_invalid}},
    }


def test_gate_passes_and_fails_with_a_reason():
    gate = GateConfig(margin=0.01, max_invalid_rate=0.05)
    passed = decide_gate(rows_with(0.495, 0.0), gate)
    assert passed["passed"] and passed["candidate"] == "dapo" and "0.4950 >= pre-rank 0.5000" in passed["reason"]
    worse = decide_gate(rows_with(0.48, 0.0), gate)
    assert not worse["passed"] and "0.4800 < pre-rank" in worse["reason"]
    invalid = decide_gate(rows_with(0.60, 0.10), gate)
    assert not invalid["passed"] and "invalid rate 0.1000 > 0.05" in invalid["reason"]


def test_gate_falls_back_to_the_last_trained_row_or_refuses():
    rows = rows_with(0.6, 0.0)
    rows["sft"] = rows.pop("dapo")
    assert decide_gate(rows, GateConfig())["candidate"] == "sft"
    assert not decide_gate({"prerank": rows["prerank"]}, GateConfig())["passed"]


def test_gate_prefers_the_configured_direct_row_and_maps_rows_to_their_stages():
    rows = rows_with(0.4, 0.0)
    rows["direct_sft"] = {"kind": "model", "metrics": {"ndcg@5": 0.52, "invalid_rate": 0.0}}
    rows["direct_sft_fused"] = {"kind": "model", "metrics": {"ndcg@5": 0.55, "invalid_rate": 0.0}}
    assert decide_gate(rows, GateConfig())["candidate"] == "direct_sft_fused"
    assert decide_gate(rows, GateConfig(candidate="dapo"))["candidate"] == "dapo"
    assert gate_candidate("direct_dapo_fused", {"sft", "direct_sft"}) == "direct_sft_fused"
    assert gate_candidate("direct_dapo_fused", set()) is None
    assert model_stage("direct_dapo_fused") == "direct_dapo" and model_stage("sft") == "sft"


def test_dapo_rows_name_opd_when_it_ran_before_them():
    assert model_row_label("dapo", {"sft": "s", "dapo": "d"}) == "SFT + DAPO, conditional reward (GR2)"
    with_opd = {"sft": "s", "opd": "o", "dapo_naive": "d"}
    assert model_row_label("dapo_naive", with_opd) == "SFT + OPD + DAPO, naive reward (ablation)"
    assert model_row_label("sft", with_opd) == "SFT on rejection-sampled traces"


def test_bootstrap_interval_covers_the_mean_and_narrows_with_data():
    rng = np.random.default_rng(0)
    small, large = rng.binomial(1, 0.3, 100).astype(float), rng.binomial(1, 0.3, 10000).astype(float)
    low, high = bootstrap_interval(small, 500, seed=0)
    assert low < small.mean() < high
    low_l, high_l = bootstrap_interval(large, 500, seed=0)
    assert high_l - low_l < (high - low) / 3


def test_paired_test_detects_a_real_difference_and_not_noise():
    rng = np.random.default_rng(1)
    base = rng.binomial(1, 0.3, 400).astype(float)
    better = np.maximum(base, rng.binomial(1, 0.3, 400))
    assert paired_sign_flip_p_value(better, base, 500, seed=0) < 0.01
    assert paired_sign_flip_p_value(base, base, 500, seed=0) == 1.0


ITEMS = [f"i{n}" for n in range(12)]


def tiny_inputs() -> StageInputs:
    from gr2.data.schema import Item

    examples = [RerankExample("test", f"u{n}", ("i0",), tuple(ITEMS[1:11]), ITEMS[1 + n % 10]) for n in range(20)]
    return StageInputs(
        catalog={i: Item(i, title=f"T{i}") for i in ITEMS},
        split=LeaveOneOutSplit({"u": ["i0", "i1", "i2", "i3"]}, 50),
        examples=examples,
        sids=SidMap(4, 16, {i: (n, 0, 0, 0) for n, i in enumerate(ITEMS)}),
    )


def test_evaluate_rows_baselines_intervals_probe_and_flat_names():
    config = EvaluateConfig(bootstrap_samples=200, permutations=200)
    results = evaluate_rows(tiny_inputs(), {}, config, seed=0)
    rows = results["rows"]
    assert list(rows) == ["prerank", "popularity", "random", "oracle"]
    assert rows["oracle"]["metrics"]["recall@1"] == 1.0 and rows["oracle"]["hit_positions"][0] == 20
    assert rows["prerank"]["hit_positions"] == [2] * 10
    low, high = rows["prerank"]["ci95"]["ndcg@5"]
    assert low <= rows["prerank"]["metrics"]["ndcg@5"] <= high
    assert rows["oracle"]["vs_prerank"]["ndcg@5"]["p_value"] < 0.05
    assert "position_bias" in rows["prerank"] and "position_bias" not in rows["oracle"]
    flat = flat_metrics(results)
    assert flat["prerank.recall@5"] == pytest.approx(0.5) and flat["gate_passed"] == 0.0
    assert "oracle.ndcg@5_p_value_vs_prerank" in flat and "prerank.ndcg@5_ci_low" in flat


def test_shuffled_candidates_keep_items_and_change_order():
    examples = tiny_inputs().examples
    shuffled = shuffled_candidates(examples, seed=3)
    assert all(sorted(a.candidates) == sorted(b.candidates) for a, b in zip(examples, shuffled, strict=True))
    assert any(a.candidates != b.candidates for a, b in zip(examples, shuffled, strict=True))


def test_generated_rows_are_scored_on_a_sample_and_judged_against_the_incoming_order_on_it():
    from gr2.eval.evaluate import RowOutput

    config = EvaluateConfig(
        bootstrap_samples=200, permutations=200, generated_max_examples=5, position_bias_probe=False
    )
    oracle = lambda examples: RowOutput([(e.target, *(c for c in e.candidates if c != e.target)) for e in examples])  # noqa: E731
    rankers = {"sft": ("SFT", "model", oracle), "direct_sft": ("Direct", "model", oracle)}
    results = evaluate_rows(tiny_inputs(), rankers, config, seed=0, generated=frozenset({"sft"}))
    rows = results["rows"]
    assert rows["sft"]["metrics"]["scored_examples"] == 5 and rows["direct_sft"]["metrics"]["scored_examples"] == 20
    sampled_incoming = rows["sft"]["metrics"]["ndcg@5"] - rows["sft"]["vs_prerank"]["ndcg@5"]["diff"]
    gate = decide_gate(rows, GateConfig(candidate="sft"))
    assert f"pre-rank {sampled_incoming:.4f}" in gate["reason"]
