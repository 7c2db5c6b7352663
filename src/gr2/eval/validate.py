"""Score a policy on held-out re-ranking examples: the metrics every trained stage reports."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import torch

from gr2.eval.metrics import examples_metrics
from gr2.inputs import StageInputs
from gr2.prerank.candidates import RerankExample
from gr2.rank.direct import DirectScorer, fused_scores, ranking_from_scores
from gr2.rank.frozen import CachedDirectScorer
from gr2.rank.generation import GenerationRun, rerank_with_model
from gr2.traces.config import PromptConfig


def run_metrics(run: GenerationRun, examples: list[RerankExample]) -> dict[str, float]:
    """Ranking metrics (invalid outputs fall back to the incoming order), speed, and failure reasons."""
    metrics = examples_metrics(examples, run.rankings)
    metrics.update(run.speed_metrics())
    reasons = Counter(p.failure for p in run.parsed if p.failure)
    metrics.update({f"invalid_{reason}": count / len(examples) for reason, count in reasons.items()})
    return metrics


def validate_policy(
    model,
    tokenizer,
    inputs: StageInputs,
    split: str,
    limit: int,
    prompt: PromptConfig,
    max_new_tokens: int,
    batch_size: int,
    seed: int,
    constrained: bool,
) -> dict[str, float]:
    examples = inputs.examples_of(split, limit, seed)
    if not examples:
        raise ValueError(f"no {split!r} examples to validate on; raise data.rerank_valid_fraction or max_users")
    run = rerank_with_model(
        model, tokenizer, examples, inputs.catalog, inputs.sids, prompt, max_new_tokens, batch_size, constrained
    )
    return {"eval_examples": len(examples), **run_metrics(run, examples)}


def direct_rankings(
    examples: Sequence[RerankExample], scores: Sequence[torch.Tensor], fusion_lambda: float
) -> list[tuple[str, ...]]:
    """Each example's candidates ordered by the model's scores fused with the incoming order's prior."""
    return [
        ranking_from_scores(e.candidates, fused_scores(s, fusion_lambda)) for e, s in zip(examples, scores, strict=True)
    ]


def choose_fusion_lambda(
    examples: Sequence[RerankExample], scores: Sequence[torch.Tensor], lambdas: Sequence[float]
) -> tuple[float, dict[float, float]]:
    """The lambda with the best mean NDCG@5 on these (validation) examples, ties to the smaller lambda, and
    every lambda's NDCG@5."""
    ndcg = {lam: examples_metrics(examples, direct_rankings(examples, scores, lam))["ndcg@5"] for lam in lambdas}
    best = max(sorted(ndcg), key=lambda lam: ndcg[lam])
    return best, ndcg


def validate_direct(
    scorer: DirectScorer | CachedDirectScorer,
    inputs: StageInputs,
    limit: int | None,
    lambdas: Sequence[float],
    seed: int,
) -> tuple[dict[str, float], float]:
    """Validation metrics of a direct model, alone and fused with the fusion lambda chosen here; and it."""
    examples = inputs.examples_of("valid", limit, seed)
    if not examples:
        raise ValueError("no 'valid' examples to validate on; raise data.rerank_valid_fraction or max_users")
    scores = scorer.score([(e.history, e.candidates) for e in examples], progress=True)
    best, ndcg_by_lambda = choose_fusion_lambda(examples, scores, lambdas)
    alone = examples_metrics(examples, direct_rankings(examples, scores, 0.0))
    fused = examples_metrics(examples, direct_rankings(examples, scores, best))
    metrics = {"eval_examples": len(examples), "fusion_lambda": best, **alone}
    metrics |= {f"fused_{name}": value for name, value in fused.items()}
    metrics |= {f"fusion_ndcg@5_lambda_{lam:g}": value for lam, value in ndcg_by_lambda.items()}
    return metrics, best
