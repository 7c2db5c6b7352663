"""GR2's verifiable rewards, as plain functions of the held-out item's rank before and after.

r_pre and r_new are 1-based ranks of the held-out item in the incoming and the re-ranked list of K.
The conditional reward pays the format bonus only when the target moved up (or was already first), so
copying the incoming order earns nothing; the naive reward pays it always, which is what teaches a
policy to copy (the paper's reward-hacking ablation).

For graded slates (several positives, the technical report's setting) the rank reward is R_AUC or graded
R_NDCG of the returned order, and the slate conditional reward (the report's Eq. 7) pays only the format
bonus for echoing a shown order that was not already optimal. `RewardConfig.rank` chooses R_rank for
`score_ranking`, which every trainer (CoT DAPO, direct DAPO, OPD) calls.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from gr2.eval.metrics import graded_ndcg_at_k, is_order_copy, slate_auc, target_rank
from gr2.prerank.candidates import RerankExample
from gr2.sid.sidmap import SidMap
from gr2.traces.parse import parse_ranking
from gr2.train.config import RewardConfig


def rank_promotion_reward(r_pre: int, r_new: int, k: int) -> float:
    """R_rank = (r_pre - r_new) / K: positive when the held-out item moved up."""
    return (r_pre - r_new) / k


def format_reward(valid: bool) -> float:
    """R_fmt = 1 when the output parses and is a permutation of the K candidates."""
    return 1.0 if valid else 0.0


def conditional_reward(r_pre: int, r_new: int, k: int, alpha: float) -> float:
    """R_rank + alpha * R_fmt if the target moved up or was already first, else R_rank (valid output)."""
    rank = rank_promotion_reward(r_pre, r_new, k)
    return rank + alpha * format_reward(True) if rank > 0 or r_pre == 1 else rank


def naive_reward(r_pre: int, r_new: int, k: int, alpha: float) -> float:
    """R_rank + alpha * R_fmt, whatever happened to the target (valid output)."""
    return rank_promotion_reward(r_pre, r_new, k) + alpha * format_reward(True)


def auc_reward(ranking: Sequence[str], grades: Mapping[str, int]) -> float:
    """R_AUC: the share of (positive, negative) pairs in the right order, positives being grade > 0 and
    negatives grade 0 (`slate_auc`; pairs of two positives do not count). 1.0 for a slate without a
    positive or without a negative: no pair can be misordered, every order of it scores the same (so a
    group of samples gets no advantage from it) and its shown order counts as optimal in Eq. 7."""
    auc = slate_auc(ranking, grades)
    return 1.0 if auc is None else auc


def graded_ndcg_reward(ranking: Sequence[str], grades: Mapping[str, int], k: int | None = None) -> float:
    """R_NDCG: graded NDCG@k of the returned order, gain 2^g - 1 (`graded_ndcg_at_k`); k None is the
    whole list, as in the report. 0 for a slate without a positive."""
    return graded_ndcg_at_k(ranking, grades, len(ranking) if k is None else k)


RankReward = Callable[[Sequence[str], Mapping[str, int]], float]


def slate_conditional_reward(
    ranking: Sequence[str],
    shown: Sequence[str],
    grades: Mapping[str, int],
    alpha: float,
    valid: bool,
    rank_reward: RankReward = auc_reward,
) -> float:
    """The technical report's Eq. 7: alpha * R_fmt alone for an invalid output (0: no ranking credit) and
    for a copy of the shown order when that order is not optimal (R_AUC(shown) < 1); otherwise
    R_rank + alpha * R_fmt, R_rank being `rank_reward` (R_AUC by default) of the returned order.

    `valid` says the output parsed and `ranking` is a permutation of `shown`; the pipeline's fixed penalty
    for invalid outputs is the caller's, as in `score_completion`."""
    bonus = alpha * format_reward(valid)
    if not valid or (is_order_copy(ranking, shown) and auc_reward(shown, grades) < 1.0):
        return bonus
    return rank_reward(ranking, grades) + bonus


def soft_overlong_penalty(length: int, max_length: int, cache_length: int) -> float:
    """DAPO's length penalty: 0 up to max_length - cache_length, then linear down to -1 at max_length,
    -1 beyond."""
    if cache_length <= 0 or length <= max_length - cache_length:
        return 0.0 if length <= max_length else -1.0
    if length <= max_length:
        return (max_length - cache_length - length) / cache_length
    return -1.0


@dataclass(frozen=True)
class RewardBreakdown:
    """One completion's reward and its parts: total = rank + format_bonus for a valid output, the invalid
    penalty otherwise (then rank and format_bonus are 0)."""

    total: float
    rank: float
    format_bonus: float
    valid: bool
    order_copy: bool


RANK_REWARDS: dict[str, RankReward] = {"auc": auc_reward, "ndcg": graded_ndcg_reward}


def example_grades(example: RerankExample) -> dict[str, int]:
    """Each candidate's grade: a slate example's own, else the target as the one positive (grade 1)."""
    return example.grades_by_item or {item: int(item == example.target) for item in example.candidates}


def promotion_total(ranking: Sequence[str], example: RerankExample, config: RewardConfig) -> tuple[float, float]:
    """(total, R_rank) of GR2's rank-promotion reward for the held-out item."""
    k = len(example.candidates)
    r_pre = target_rank(example.candidates, example.target)
    r_new = target_rank(ranking, example.target)
    reward = conditional_reward if config.kind == "conditional" else naive_reward
    return reward(r_pre, r_new, k, config.alpha), rank_promotion_reward(r_pre, r_new, k)


def graded_total(ranking: Sequence[str], example: RerankExample, config: RewardConfig) -> tuple[float, float]:
    """(total, R_rank paid) of R_AUC or R_NDCG: Eq. 7 (`slate_conditional_reward`) when conditional, else
    R_rank + alpha. Every valid output earns alpha, so R_rank paid is total - alpha (0 for Eq. 7's echo)."""
    grades, rank_reward = example_grades(example), RANK_REWARDS[config.rank]
    if config.kind == "conditional":
        total = slate_conditional_reward(ranking, example.candidates, grades, config.alpha, True, rank_reward)
    else:
        total = rank_reward(ranking, grades) + config.alpha * format_reward(True)
    return total, total - config.alpha * format_reward(True)


def score_ranking(ranking: Sequence[str], example: RerankExample, config: RewardConfig) -> RewardBreakdown:
    """The reward of a valid ranking (a permutation of the example's candidates), with the R_rank that
    `config.rank` selects."""
    scored = promotion_total if config.rank == "promotion" else graded_total
    total, rank = scored(ranking, example, config)
    return RewardBreakdown(
        total=total,
        rank=rank,
        format_bonus=total - rank,
        valid=True,
        order_copy=tuple(ranking) == tuple(example.candidates),
    )


def score_completion(text: str, example: RerankExample, sids: SidMap, config: RewardConfig) -> RewardBreakdown:
    """The reward of one completion for one example; an invalid output gets the fixed penalty."""
    parsed = parse_ranking(text, example.candidates, sids)
    if not parsed.valid:
        return RewardBreakdown(config.invalid_penalty, 0.0, 0.0, valid=False, order_copy=False)
    return score_ranking(parsed.ranking, example, config)
