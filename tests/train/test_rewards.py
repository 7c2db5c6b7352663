import json

import pytest

from gr2.prerank.candidates import RerankExample
from gr2.sid.sidmap import SidMap
from gr2.train.config import RewardConfig
from gr2.train.rewards import (
    conditional_reward,
    naive_reward,
    rank_promotion_reward,
    score_completion,
    soft_overlong_penalty,
)

ITEMS = tuple(f"i{n}" for n in range(10))
SIDS = SidMap(4, 16, {item: (n, 0, 0, 0) for n, item in enumerate(ITEMS)})
EXAMPLE = RerankExample("test", "u", ("x",), ITEMS, target="i3")  # r_pre = 4


def answer(order) -> str:
    return json.dumps({"explanation": "", "recommendations": [SIDS.text(i) for i in order]})


def test_rank_promotion():
    assert rank_promotion_reward(4, 1, 10) == pytest.approx(0.3)
    assert rank_promotion_reward(1, 3, 10) == pytest.approx(-0.2)
    assert rank_promotion_reward(5, 5, 10) == 0.0


@pytest.mark.parametrize(
    ("r_pre", "r_new", "expected"),
    [
        (4, 1, 0.3 + 0.2),  # moved up: bonus
        (4, 4, 0.0),  # unchanged (e.g. a copy): no bonus
        (4, 6, -0.2),  # moved down: no bonus
        (1, 1, 0.2),  # already first and kept first: bonus
        (1, 2, -0.1 + 0.2),  # already first: the bonus still applies
    ],
)
def test_conditional_reward(r_pre, r_new, expected):
    assert conditional_reward(r_pre, r_new, 10, alpha=0.2) == pytest.approx(expected)


def test_naive_reward_pays_for_copying():
    assert naive_reward(4, 4, 10, alpha=0.2) == pytest.approx(0.2)
    assert conditional_reward(4, 4, 10, alpha=0.2) == 0.0


@pytest.mark.parametrize(
    ("length", "expected"),
    [(50, 0.0), (80, 0.0), (90, -0.5), (100, -1.0), (101, -1.0)],
)
def test_soft_overlong_penalty(length, expected):
    assert soft_overlong_penalty(length, max_length=100, cache_length=20) == pytest.approx(expected)


def test_score_completion_copy_invalid_and_promotion():
    conditional = RewardConfig(kind="conditional", alpha=0.2)
    naive = RewardConfig(kind="naive", alpha=0.2)
    copy = score_completion(answer(ITEMS), EXAMPLE, SIDS, conditional)
    assert copy.order_copy and copy.total == 0.0 and copy.format_bonus == 0.0
    naive_copy = score_completion(answer(ITEMS), EXAMPLE, SIDS, naive)
    assert naive_copy.total == pytest.approx(0.2) and naive_copy.format_bonus == pytest.approx(0.2)
    promoted = score_completion(answer(("i3", *[i for i in ITEMS if i != "i3"])), EXAMPLE, SIDS, conditional)
    assert promoted.total == pytest.approx(0.5) and promoted.rank == pytest.approx(0.3) and not promoted.order_copy
    assert promoted.format_bonus == pytest.approx(0.2)
    invalid = score_completion("not json", EXAMPLE, SIDS, conditional)
    assert not invalid.valid and invalid.total == -1.0 and invalid.rank == invalid.format_bonus == 0.0


def test_the_trl_reward_function_adds_the_overlong_penalty_and_logs_each_part():
    from gr2.train.dapo import RerankReward

    reward = RerankReward(
        SIDS, RewardConfig(kind="conditional", alpha=0.2, overlong_max_tokens=100, overlong_cache_tokens=20)
    )
    promoted = answer(("i3", *[i for i in ITEMS if i != "i3"]))
    logged: dict[str, float] = {}
    totals = reward(
        prompts=[""] * 3,
        completions=[answer(ITEMS), promoted, "not json"],
        completion_ids=[[0] * 10, [0] * 90, [0] * 10],  # the second is 10 tokens into the overlong zone
        candidates=[ITEMS] * 3,
        target=["i3"] * 3,
        grades=[None] * 3,  # single-target examples
        log_metric=logged.__setitem__,
    )
    assert totals == pytest.approx([0.0, 0.5 - 0.5, -1.0]) and reward.last_totals == totals  # 0.5 earned, 0.5 penalty
    assert logged["gr2/valid_share"] == pytest.approx(2 / 3)
    assert logged["gr2/order_copy_rate"] == pytest.approx(1 / 3)
    assert logged["gr2/rank_reward_mean"] == pytest.approx(0.1)
    assert logged["gr2/format_bonus_mean"] == pytest.approx(0.2 / 3)
    assert logged["gr2/invalid_penalty_mean"] == pytest.approx(-1 / 3)
    assert logged["gr2/overlong_penalty_mean"] == pytest.approx(-0.5 / 3)
    assert logged["gr2/rank_reward_std"] == pytest.approx(0.1414, abs=1e-4)
