import math

import pytest

from gr2.data.slates import Slate
from gr2.eval.metrics import (
    example_metrics,
    graded_ndcg_at_k,
    recall_at_k_of_positives,
    slate_auc,
    slate_metrics,
)

# Shown a..e; b is a click (1), d a conversion (2), a, c and e are negatives: 2 x 3 = 6 pairs.
GRADES = {"a": 0, "b": 1, "c": 0, "d": 2, "e": 0}
SHOWN = ("a", "b", "c", "d", "e")
SLATE = Slate("r1", "u1", 100, ("x",), SHOWN, tuple(GRADES[i] for i in SHOWN))
IDEAL = 3 / math.log2(2) + 1 / math.log2(3)  # grades 2, 1 at ranks 1, 2: 3.6309


@pytest.mark.parametrize(
    ("ranking", "expected"),
    [
        (SHOWN, 3 / 6),  # a above no positive, c below b, e below b and d
        (("d", "b", "a", "c", "e"), 1.0),
        (("b", "d", "a", "c", "e"), 1.0),  # grade 1 above grade 2: not a counted pair
        (("b", "a", "d", "c", "e"), 5 / 6),  # only (d, a) is misordered
        (("a", "c", "e", "b", "d"), 0.0),
    ],
)
def test_slate_auc_hand_computed(ranking, expected):
    assert slate_auc(ranking, GRADES) == pytest.approx(expected)


def test_slate_auc_is_none_without_a_pair():
    assert slate_auc(("a", "b"), {"a": 1, "b": 2}) is None  # all positive
    assert slate_auc(("a", "b"), {"a": 0, "b": 0}) is None  # all negative


@pytest.mark.parametrize(
    ("ranking", "k", "expected"),
    [
        (("d", "b", "a", "c", "e"), 3, 1.0),
        (("b", "d", "a", "c", "e"), 3, (1 + 3 / math.log2(3)) / IDEAL),  # 0.7967: the tie in AUC is not one here
        (SHOWN, 3, (1 / math.log2(3)) / IDEAL),  # d at rank 4 is cut off: 0.1738
        (SHOWN, 5, (1 / math.log2(3) + 3 / math.log2(5)) / IDEAL),  # 0.5296
        (("a", "c", "e", "b", "d"), 3, 0.0),
        (("d", "b", "a", "c", "e"), 1, 1.0),  # ideal@1 is the grade-2 item alone
        (("b", "d", "a", "c", "e"), 1, 1 / 3),
    ],
)
def test_graded_ndcg_hand_computed(ranking, k, expected):
    assert graded_ndcg_at_k(ranking, GRADES, k) == pytest.approx(expected)


def test_graded_ndcg_numbers():
    assert graded_ndcg_at_k(("b", "d", "a", "c", "e"), GRADES, 3) == pytest.approx(0.79671, abs=1e-5)
    assert graded_ndcg_at_k(SHOWN, GRADES, 5) == pytest.approx(0.52960, abs=1e-5)


def test_graded_ndcg_all_positive_and_all_negative():
    assert graded_ndcg_at_k(("a", "b"), {"a": 1, "b": 2}, 2) == pytest.approx((1 + 3 / math.log2(3)) / IDEAL)
    assert graded_ndcg_at_k(("b", "a"), {"a": 1, "b": 2}, 2) == 1.0
    assert graded_ndcg_at_k(("a", "b"), {"a": 0, "b": 0}, 2) == 0.0


@pytest.mark.parametrize("ranking", [("a", "b", "c", "d"), ("a", "b", "c", "d", "d"), ("a", "b", "c", "d", "z")])
def test_slate_metrics_need_a_permutation_of_the_graded_items(ranking):
    with pytest.raises(ValueError, match="exactly the graded items"):
        slate_auc(ranking, GRADES)
    with pytest.raises(ValueError, match="exactly the graded items"):
        graded_ndcg_at_k(ranking, GRADES, 3)


@pytest.mark.parametrize(("k", "expected"), [(1, 0.0), (2, 0.5), (3, 0.5), (4, 1.0), (5, 1.0)])
def test_recall_of_positives_identity(k, expected):
    assert recall_at_k_of_positives(SHOWN, ("b", "d"), k) == expected


def test_recall_of_positives_more_positives_than_k_and_none():
    assert recall_at_k_of_positives(("a", "b", "c", "d"), ("a", "b", "c"), 1) == pytest.approx(1 / 3)
    assert recall_at_k_of_positives(("a", "b"), (), 1) == 0.0


def test_slate_metrics_of_the_shown_order():
    assert slate_metrics(SHOWN, SLATE) == pytest.approx(
        {
            "auc": 0.5,
            "recall@1": 0.0,
            "recall@3": 0.5,
            "recall@5": 1.0,
            "ndcg@3": 0.17377,
            "ndcg@5": 0.52960,
        },
        abs=1e-5,
    )


def test_one_positive_of_grade_one_matches_the_single_target_metrics():
    slate = Slate("r1", "u1", 100, (), SHOWN, (0, 0, 1, 0, 0))
    ranking = ("b", "a", "c", "e", "d")
    single = example_metrics(list(ranking), "c")
    del single["mrr"]
    assert slate_metrics(ranking, slate) == pytest.approx({"auc": 0.5, **single})


def test_slate_metrics_refuse_a_slate_without_a_pair():
    slate = Slate("r9", "u1", 100, (), ("a", "b"), (1, 2))
    with pytest.raises(ValueError, match="slate r9 has no positive or no negative"):
        slate_metrics(("a", "b"), slate)


def test_example_metrics_with_grades_are_the_slate_metrics_and_the_first_positive_rank():
    ranking = ("a", "b", "c", "d", "e")  # the first positive, b, at rank 2
    assert example_metrics(ranking, "d", GRADES) == pytest.approx({**slate_metrics(ranking, SLATE), "mrr": 0.5})
    one = {"a": 0, "b": 0, "c": 1}
    assert example_metrics(("a", "c", "b"), "c", one) == pytest.approx(
        {**example_metrics(("a", "c", "b"), "c"), "auc": 0.5}
    )


def test_rerank_metrics_with_grades_fall_back_to_the_shown_order_for_an_invalid_answer():
    from gr2.eval.metrics import rerank_metrics

    metrics = rerank_metrics([SHOWN, SHOWN], [None, ("d", "b", "a", "c", "e")], ["d", "d"], [GRADES, GRADES])
    assert metrics["auc"] == pytest.approx((0.5 + 1.0) / 2) and metrics["ndcg@5"] < 1.0
    assert metrics["mrr"] == pytest.approx((0.5 + 1.0) / 2) and metrics["invalid_rate"] == 0.5
    with pytest.raises(ValueError, match="one entry per example"):
        rerank_metrics([SHOWN], [None], ["d"], [GRADES, GRADES])
