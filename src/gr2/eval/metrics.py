"""Ranking metrics over a re-ranked candidate list with one held-out target.

The one metrics module: the pre-ranker, training-time validation, evaluation and the serving benchmark
all call these functions. Ranks are 1-based; a target missing from the list has rank None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

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


def example_metrics(ranking: Sequence[str], target: str) -> dict[str, float]:
    """Recall@1/3/5, NDCG@3/5 and reciprocal rank of one ranked list."""
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
    incoming: Sequence[Sequence[str]], rankings: Sequence[Sequence[str] | None], targets: Sequence[str]
) -> dict[str, float]:
    """Mean metrics of re-ranked lists. A ranking of None is an invalid output: it falls back to the
    incoming order for the ranking metrics and counts in `invalid_rate`."""
    if not len(incoming) == len(rankings) == len(targets):
        raise ValueError("incoming, rankings and targets must have one entry per example")
    rows = []
    for before, after, target in zip(incoming, rankings, targets, strict=True):
        used = before if after is None else after
        row = example_metrics(used, target)
        row["invalid_rate"] = float(after is None)
        row["order_copy_rate"] = float(after is not None and is_order_copy(after, before))
        row["kendall_tau"] = kendall_tau(used, before)
        rows.append(row)
    return mean_metrics(rows)
