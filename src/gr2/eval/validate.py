"""Score a policy on held-out re-ranking examples: the metrics every trained stage reports."""

from __future__ import annotations

from collections import Counter

from gr2.eval.generation import GenerationRun, rerank_with_model
from gr2.eval.metrics import rerank_metrics
from gr2.inputs import StageInputs
from gr2.prerank.candidates import RerankExample
from gr2.traces.config import PromptConfig


def run_metrics(run: GenerationRun, examples: list[RerankExample]) -> dict[str, float]:
    """Ranking metrics (invalid outputs fall back to the incoming order), speed, and failure reasons."""
    metrics = rerank_metrics([e.candidates for e in examples], run.rankings, [e.target for e in examples])
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
