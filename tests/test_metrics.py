import math

import pytest

from gr2.eval.baselines import baseline_rerankers, oracle_order, popularity_order
from gr2.eval.metrics import (
    example_metrics,
    kendall_tau,
    ndcg_at_k,
    recall_at_k,
    reciprocal_rank,
    rerank_metrics,
    target_rank,
)
from gr2.prerank.candidates import RerankExample

CANDIDATES = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]


def test_target_rank_is_one_based_and_none_when_absent():
    assert target_rank(CANDIDATES, "a") == 1
    assert target_rank(CANDIDATES, "j") == 10
    assert target_rank(CANDIDATES, "zz") is None


@pytest.mark.parametrize(
    ("rank", "k", "expected"),
    [(1, 1, 1.0), (2, 1, 0.0), (3, 3, 1.0), (4, 3, 0.0), (None, 5, 0.0)],
)
def test_recall_at_k(rank, k, expected):
    assert recall_at_k(rank, k) == expected


def test_ndcg_hand_computed():
    assert ndcg_at_k(1, 5) == 1.0
    assert ndcg_at_k(2, 5) == pytest.approx(1 / math.log2(3))  # 0.6309
    assert ndcg_at_k(3, 3) == pytest.approx(0.5)
    assert ndcg_at_k(4, 3) == 0.0
    assert ndcg_at_k(None, 5) == 0.0


def test_reciprocal_rank():
    assert reciprocal_rank(4) == 0.25
    assert reciprocal_rank(None) == 0.0


def test_example_metrics_target_third():
    metrics = example_metrics(CANDIDATES, "c")
    assert metrics == pytest.approx(
        {"recall@1": 0, "recall@3": 1, "recall@5": 1, "ndcg@3": 0.5, "ndcg@5": 0.5, "mrr": 1 / 3}
    )


def test_kendall_tau_identity_reverse_and_one_swap():
    assert kendall_tau(CANDIDATES, CANDIDATES) == 1.0
    assert kendall_tau(CANDIDATES[::-1], CANDIDATES) == -1.0
    swapped = ["b", "a", *CANDIDATES[2:]]
    assert kendall_tau(swapped, CANDIDATES) == pytest.approx((44 - 1) / 45)


def test_kendall_tau_rejects_different_items():
    with pytest.raises(ValueError, match="same items"):
        kendall_tau(["a", "b"], ["a", "c"])


def test_rerank_metrics_counts_invalid_as_fallback_and_copies():
    incoming = [CANDIDATES, CANDIDATES]
    targets = ["b", "b"]
    rankings = [None, ["b", "a", *CANDIDATES[2:]]]
    metrics = rerank_metrics(incoming, rankings, targets)
    # example 1 falls back to incoming (target at 2), example 2 has the target first
    assert metrics["recall@1"] == 0.5
    assert metrics["ndcg@3"] == pytest.approx((1 / math.log2(3) + 1.0) / 2)
    assert metrics["invalid_rate"] == 0.5
    assert metrics["order_copy_rate"] == 0.0


def test_rerank_metrics_order_copy_rate():
    metrics = rerank_metrics([CANDIDATES], [list(CANDIDATES)], ["c"])
    assert metrics["order_copy_rate"] == 1.0
    assert metrics["kendall_tau"] == 1.0


def test_rerank_metrics_length_mismatch():
    with pytest.raises(ValueError, match="one entry per example"):
        rerank_metrics([CANDIDATES], [], ["a"])


def example(target: str, grades=None) -> RerankExample:
    return RerankExample("test", "u", (), tuple(CANDIDATES), target, grades)


def test_baselines():
    assert oracle_order(example("e")) == ["e", *(item for item in CANDIDATES if item != "e")]
    assert popularity_order({"j": 5, "c": 3})(example("a"))[:2] == ["j", "c"]
    rows = baseline_rerankers({}, seed=1)
    assert rows["prerank"](example("a")) == CANDIDATES
    shuffled = rows["random"](example("a"))
    assert sorted(shuffled) == sorted(CANDIDATES) and shuffled != CANDIDATES


def test_the_oracle_of_a_slate_orders_by_grade_ties_in_incoming_order():
    graded = example("c", (0, 1, 2, 0, 1, 0, 0, 0, 0, 0))
    assert oracle_order(graded)[:3] == ["c", "b", "e"]
