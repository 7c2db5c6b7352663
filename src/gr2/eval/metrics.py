"""Ranking metrics over a re-ranked candidate list with one held-out target, or over a graded slate.

The one metrics module: the pre-ranker, training-time validation, evaluation and the serving benchmark
all call these functions. Ranks are 1-based; a target missing from the list has rank None. Slate metrics
take each shown item's grade (0 none, above 0 a positive) and a ranking that is a permutation of them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from gr2.data.slates import Slate

if TYPE_CHECKING:
    from gr2.prerank.candidates import RerankExample

CUTOFFS_RECALL = (1, 3, 5)
CUTOFFS_NDCG = (3, 5)


def target_rank(ranking: Sequence[str], target: str) -> int | None:
    try:
        return ranking.index(target) + 1
    except ValueError:
        return None


def recall_at_k(rank: int | None, k: int) -> float:
    return 1.0 if rank is not None and rank <= k else 0.0


def ndcg_at_k(rank: int | None, k: int) -> float:
    """One relevant item, so the ideal DCG is 1 and NDCG is the discounted gain of the target."""
    return 1.0 / math.log2(rank + 1) if rank is not None and rank <= k else 0.0


def reciprocal_rank(rank: int | None) -> float:
    return 1.0 / rank if rank is not None else 0.0


def is_order_copy(ranking: Sequence[str], incoming: Sequence[str]) -> bool:
    return list(ranking) == list(incoming)


def kendall_tau(ranking: Sequence[str], incoming: Sequence[str]) -> float:
    """Kendall's tau between two orders of the same items: 1 identical, -1 reversed."""
    if sorted(ranking) != sorted(incoming):
        raise ValueError("kendall_tau needs two orders of the same items")
    n = len(incoming)
    if n < 2:
        return 1.0
    position = {item: index for index, item in enumerate(ranking)}
    order = [position[item] for item in incoming]
    concordant = sum(1 for i in range(n) for j in range(i + 1, n) if order[i] < order[j])
    pairs = n * (n - 1) // 2
    return (2 * concordant - pairs) / pairs


def example_metrics(ranking: Sequence[str], target: str, grades: Mapping[str, int] | None = None) -> dict[str, float]:
    """Recall@1/3/5, NDCG@3/5 and reciprocal rank of one ranked list. With `grades` (a slate example: each
    candidate's grade) the slate's metrics instead: AUC, Recall@k over all positives, graded NDCG@k and the
    reciprocal rank of the first positive (`graded_metrics`); the target is then not used."""
    if grades is not None:
        return graded_metrics(ranking, grades, "a slate example")
    rank = target_rank(ranking, target)
    metrics = {f"recall@{k}": recall_at_k(rank, k) for k in CUTOFFS_RECALL}
    metrics.update({f"ndcg@{k}": ndcg_at_k(rank, k) for k in CUTOFFS_NDCG})
    metrics["mrr"] = reciprocal_rank(rank)
    return metrics


def mean_metrics(rows: list[dict[str, float]]) -> dict[str, float]:
    if not rows:
        raise ValueError("no examples to average")
    return {name: sum(row[name] for row in rows) / len(rows) for name in rows[0]}


def rerank_metrics(
    incoming: Sequence[Sequence[str]],
    rankings: Sequence[Sequence[str] | None],
    targets: Sequence[str],
    grades: Sequence[Mapping[str, int] | None] | None = None,
) -> dict[str, float]:
    """Mean metrics of re-ranked lists (`example_metrics`; `grades`, when given, one entry per example).
    A ranking of None is an invalid output: it falls back to the incoming order for the ranking metrics and
    counts in `invalid_rate`."""
    grades = [None] * len(targets) if grades is None else grades
    if not len(incoming) == len(rankings) == len(targets) == len(grades):
        raise ValueError("incoming, rankings, targets and grades must have one entry per example")
    rows = []
    for before, after, target, graded in zip(incoming, rankings, targets, grades, strict=True):
        used = before if after is None else after
        row = example_metrics(used, target, graded)
        row["invalid_rate"] = float(after is None)
        row["order_copy_rate"] = float(after is not None and is_order_copy(after, before))
        row["kendall_tau"] = kendall_tau(used, before)
        rows.append(row)
    return mean_metrics(rows)


def examples_metrics(examples: Sequence[RerankExample], rankings: Sequence[Sequence[str] | None]) -> dict[str, float]:
    """`rerank_metrics` of re-ranking examples, each with its incoming order, target and (slates) grades."""
    return rerank_metrics(
        [e.candidates for e in examples], rankings, [e.target for e in examples], [e.grades_by_item for e in examples]
    )


def check_same_items(ranking: Sequence[str], grades_by_item: Mapping[str, int]) -> None:
    """Raise ValueError unless `ranking` orders exactly the graded items, each once."""
    if sorted(ranking) != sorted(grades_by_item):
        raise ValueError("a slate metric needs a ranking of exactly the graded items, each once")


def slate_auc(ranking: Sequence[str], grades_by_item: Mapping[str, int]) -> float | None:
    """Share of (positive, negative) pairs the ranking puts positive first, positives being grade > 0 and
    negatives grade 0. Pairs of two positives (grade 1 vs 2) do not count: ordering among positives is the
    graded NDCG's job. None when there is no pair (no positive or no negative): the AUC is undefined there."""
    check_same_items(ranking, grades_by_item)
    positives_above = ordered = 0
    for item in ranking:
        if grades_by_item[item] > 0:
            positives_above += 1
        else:
            ordered += positives_above
    pairs = positives_above * (len(ranking) - positives_above)
    return ordered / pairs if pairs else None


def discounted_gain(grades: Sequence[int], k: int) -> float:
    """DCG@k of grades in ranked order: sum over the top k of (2^g - 1) / log2(rank + 1)."""
    return sum((2**grade - 1) / math.log2(rank + 1) for rank, grade in enumerate(grades[:k], start=1))


def graded_ndcg_at_k(ranking: Sequence[str], grades_by_item: Mapping[str, int], k: int) -> float:
    """DCG@k of the ranking over the ideal DCG@k (the grades sorted high to low), gain 2^g - 1;
    0 when no item has a positive grade."""
    check_same_items(ranking, grades_by_item)
    ideal = discounted_gain(sorted(grades_by_item.values(), reverse=True), k)
    return discounted_gain([grades_by_item[item] for item in ranking], k) / ideal if ideal else 0.0


def recall_at_k_of_positives(ranking: Sequence[str], positives: Sequence[str], k: int) -> float:
    """Share of all positives that are in the top k (at most k / len(positives) when there are more
    positives than k); 0 when there is no positive."""
    if not positives:
        return 0.0
    top = set(ranking[:k])
    return sum(1 for item in positives if item in top) / len(positives)


def slate_ranking_metrics(ranking: Sequence[str], grades_by_item: Mapping[str, int], name: str) -> dict[str, float]:
    """AUC, Recall@1/3/5 over all positives and graded NDCG@3/5 of one ranked slate. Raises ValueError,
    naming the slate by `name`, for a slate without a positive or a negative (loading drops those)."""
    auc = slate_auc(ranking, grades_by_item)
    if auc is None:
        raise ValueError(f"{name} has no positive or no negative: its metrics are undefined")
    positives = [item for item in ranking if grades_by_item[item] > 0]
    metrics = {"auc": auc}
    metrics.update({f"recall@{k}": recall_at_k_of_positives(ranking, positives, k) for k in CUTOFFS_RECALL})
    metrics.update({f"ndcg@{k}": graded_ndcg_at_k(ranking, grades_by_item, k) for k in CUTOFFS_NDCG})
    return metrics


def slate_metrics(ranking: Sequence[str], slate: Slate) -> dict[str, float]:
    """`slate_ranking_metrics` of one ranked slate. With one positive of grade 1 the recall and NDCG equal
    `example_metrics`' values."""
    return slate_ranking_metrics(ranking, slate.grades_by_item, f"slate {slate.request_id}")


def graded_metrics(ranking: Sequence[str], grades_by_item: Mapping[str, int], name: str) -> dict[str, float]:
    """`slate_ranking_metrics` and `mrr`, the reciprocal rank of the first positive: the same keys as
    `example_metrics` (plus `auc`), equal to its values for one positive of grade 1."""
    metrics = slate_ranking_metrics(ranking, grades_by_item, name)
    first = next(rank for rank, item in enumerate(ranking, start=1) if grades_by_item[item] > 0)
    return metrics | {"mrr": reciprocal_rank(first)}
