import json
import math

import pytest

from gr2.prerank.candidates import RerankExample
from gr2.train.config import RewardConfig
from gr2.train.rewards import auc_reward, graded_ndcg_reward, score_ranking, slate_conditional_reward

# Shown a..e; b is a click (1), d a conversion (2), a, c and e are negatives: 2 x 3 = 6 pairs.
GRADES = {"a": 0, "b": 1, "c": 0, "d": 2, "e": 0}
SHOWN = ("a", "b", "c", "d", "e")  # R_AUC 3/6: not optimal
BEST = ("d", "b", "a", "c", "e")
TIED = ("b", "d", "a", "c", "e")  # optimal for R_AUC (grade 1 vs 2 is no pair), not for R_NDCG
IDEAL = 3 + 1 / math.log2(3)  # ideal DCG: gains 3 and 1 at ranks 1 and 2
ALPHA = 0.2


@pytest.mark.parametrize(
    ("ranking", "expected"),
    [(SHOWN, 0.5), (BEST, 1.0), (TIED, 1.0), (("b", "a", "d", "c", "e"), 5 / 6), (("a", "c", "e", "b", "d"), 0.0)],
)
def test_auc_reward_hand_computed(ranking, expected):
    assert auc_reward(ranking, GRADES) == pytest.approx(expected)


def test_auc_reward_is_one_without_a_pair():
    assert auc_reward(("a", "b"), {"a": 1, "b": 2}) == 1.0
    assert auc_reward(("b", "a"), {"a": 1, "b": 2}) == 1.0
    assert auc_reward(("a", "b"), {"a": 0, "b": 0}) == 1.0


def test_graded_ndcg_reward_whole_list_and_cut():
    assert graded_ndcg_reward(SHOWN, GRADES) == pytest.approx((1 / math.log2(3) + 3 / math.log2(5)) / IDEAL)
    assert graded_ndcg_reward(SHOWN, GRADES, k=3) == pytest.approx((1 / math.log2(3)) / IDEAL)
    assert graded_ndcg_reward(TIED, GRADES) == pytest.approx((1 + 3 / math.log2(3)) / IDEAL)
    assert graded_ndcg_reward(BEST, GRADES) == 1.0
    assert graded_ndcg_reward(("a", "b"), {"a": 0, "b": 0}) == 0.0


@pytest.mark.parametrize(
    ("ranking", "expected"),
    [
        (SHOWN, ALPHA),  # echoing a non-optimal shown order: the format term alone
        (("b", "a", "d", "c", "e"), 5 / 6 + ALPHA),
        (BEST, 1.0 + ALPHA),
        (("a", "c", "e", "b", "d"), 0.0 + ALPHA),  # valid but worst: R_AUC 0 plus the format term
        (("c", "b", "a", "d", "e"), 0.5 + ALPHA),  # a near copy (two negatives swapped) is not a copy
    ],
)
def test_conditional_reward_when_the_shown_order_is_not_optimal(ranking, expected):
    assert slate_conditional_reward(ranking, SHOWN, GRADES, ALPHA, valid=True) == pytest.approx(expected)


def test_conditional_reward_gives_no_ranking_credit_to_an_invalid_output():
    assert slate_conditional_reward(("a", "b"), SHOWN, GRADES, ALPHA, valid=False) == 0.0
    assert slate_conditional_reward(("d", "d", "b"), SHOWN, GRADES, ALPHA, valid=False) == 0.0
    assert slate_conditional_reward(BEST, SHOWN, GRADES, ALPHA, valid=False) == 0.0


def test_conditional_reward_pays_the_copy_of_an_optimal_shown_order():
    assert slate_conditional_reward(BEST, BEST, GRADES, ALPHA, valid=True) == pytest.approx(1.0 + ALPHA)
    assert slate_conditional_reward(TIED, TIED, GRADES, ALPHA, valid=True) == pytest.approx(1.0 + ALPHA)
    all_positive, all_negative = {"a": 1, "b": 2}, {"a": 0, "b": 0}
    assert slate_conditional_reward(("a", "b"), ("a", "b"), all_positive, ALPHA, True) == pytest.approx(1 + ALPHA)
    assert slate_conditional_reward(("b", "a"), ("a", "b"), all_negative, ALPHA, True) == pytest.approx(1 + ALPHA)


def test_conditional_reward_with_graded_ndcg_as_the_rank_term():
    def reward(ranking, shown):
        return slate_conditional_reward(ranking, shown, GRADES, ALPHA, valid=True, rank_reward=graded_ndcg_reward)

    assert reward(SHOWN, SHOWN) == pytest.approx(ALPHA)  # copy of a non-optimal order
    assert reward(BEST, SHOWN) == pytest.approx(1.0 + ALPHA)
    # TIED is optimal by R_AUC, so copying it is paid its R_NDCG, which is below 1
    assert reward(TIED, TIED) == pytest.approx((1 + 3 / math.log2(3)) / IDEAL + ALPHA)
    assert reward(TIED, TIED) == pytest.approx(0.99671, abs=1e-5)


# the pipeline's side: a slate example's reward as `reward.rank` selects it
SLATE_EXAMPLE = RerankExample("train", "u", (), SHOWN, "d", tuple(GRADES[i] for i in SHOWN))


@pytest.mark.parametrize(
    ("rank", "kind", "ranking", "total", "rank_paid"),
    [
        ("auc", "conditional", SHOWN, ALPHA, 0.0),  # Eq. 7: echoing a non-optimal shown order
        ("auc", "conditional", ("b", "a", "d", "c", "e"), 5 / 6 + ALPHA, 5 / 6),
        ("auc", "naive", SHOWN, 0.5 + ALPHA, 0.5),
        ("ndcg", "conditional", SHOWN, ALPHA, 0.0),
        ("ndcg", "conditional", TIED, (1 + 3 / math.log2(3)) / IDEAL + ALPHA, (1 + 3 / math.log2(3)) / IDEAL),
        ("ndcg", "naive", BEST, 1.0 + ALPHA, 1.0),
    ],
)
def test_score_ranking_with_a_slate_reward(rank, kind, ranking, total, rank_paid):
    scored = score_ranking(ranking, SLATE_EXAMPLE, RewardConfig(kind=kind, rank=rank, alpha=ALPHA))
    assert (scored.total, scored.rank) == pytest.approx((total, rank_paid))
    assert scored.format_bonus == pytest.approx(ALPHA) and scored.order_copy == (ranking == SHOWN)


def test_slate_rewards_on_single_target_data_see_the_target_as_the_one_positive():
    example = RerankExample("train", "u", (), ("a", "b", "c"), "c")
    config = RewardConfig(kind="naive", rank="auc", alpha=0.0)
    assert score_ranking(("c", "a", "b"), example, config).total == 1.0
    assert score_ranking(("a", "c", "b"), example, config).total == 0.5


def test_the_trl_reward_function_reads_the_grades_column():
    from gr2.sid.sidmap import SidMap
    from gr2.train.dapo import RerankReward

    sids = SidMap(4, 16, {item: (n, 0, 0, 0) for n, item in enumerate(SHOWN)})
    reward = RerankReward(sids, RewardConfig(rank="auc", alpha=ALPHA))
    best = json.dumps({"explanation": "", "recommendations": [sids.text(i) for i in BEST]})
    totals = reward(
        prompts=[""],
        completions=[best],
        completion_ids=[[0]],
        candidates=[list(SHOWN)],
        target=["d"],
        grades=[list(SLATE_EXAMPLE.grades)],
    )
    assert totals == pytest.approx([1.0 + ALPHA])
