"""The evaluation stage: every model row judged on the same held-out test examples, the same way.

Rows: the no-model baselines, the teacher's own ranking (without the answer), the mid-trained model
(candidates ordered by the likelihood of their SID after the history), and each trained re-ranker
(generation with the one prompt builder and parser; invalid outputs fall back to the incoming order).
Each row gets its metrics, bootstrap 95% intervals of R@5 and NDCG@5, a paired sign-flip test against
the incoming order, per-position hits, a position-bias probe (candidates shuffled) and example traces.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from gr2.eval.baselines import baseline_rerankers
from gr2.eval.config import EvaluateConfig
from gr2.eval.gate import decide_gate
from gr2.eval.metrics import example_metrics, examples_metrics, target_rank
from gr2.eval.stats import bootstrap_interval, paired_sign_flip_p_value
from gr2.eval.validate import direct_rankings
from gr2.inputs import StageInputs
from gr2.prerank.base import item_popularity
from gr2.prerank.candidates import RerankExample
from gr2.rank.direct import DirectScorer
from gr2.rank.frozen import CachedDirectScorer
from gr2.rank.generation import rerank_with_model
from gr2.traces.config import PromptConfig
from gr2.traces.parse import parse_ranking
from gr2.traces.prompt import build_messages
from gr2.traces.teachers import Teacher, TeacherRequest

BASELINE_LABELS = {
    "prerank": "Incoming order (pre-rank)",
    "popularity": "Popularity",
    "random": "Random",
    "oracle": "Oracle",
}
CI_METRICS = ("recall@5", "ndcg@5")


@dataclass
class RowOutput:
    """One row's answer per example: a ranking (None when invalid) and its explanation."""

    rankings: list[tuple[str, ...] | None]
    explanations: list[str] = field(default_factory=list)
    speed: dict[str, float] = field(default_factory=dict)


Ranker = Callable[[Sequence[RerankExample]], RowOutput]


def baseline_ranker(rerank) -> Ranker:
    return lambda examples: RowOutput([tuple(rerank(e)) for e in examples])


def teacher_ranker(teacher: Teacher, inputs: StageInputs, prompt: PromptConfig, seed: int) -> Ranker:
    def rank(examples: Sequence[RerankExample]) -> RowOutput:
        requests = [
            TeacherRequest(
                build_messages(e.history, e.candidates, inputs.catalog, inputs.sids, prompt),
                e.history,
                e.candidates,
                seed + i,
            )
            for i, e in enumerate(examples)
        ]
        parsed = [
            parse_ranking(text, e.candidates, inputs.sids)
            for text, e in zip(teacher.generate(requests), examples, strict=True)
        ]
        return RowOutput([p.ranking for p in parsed], [p.explanation for p in parsed])

    return rank


def llm_ranker(model, tokenizer, inputs: StageInputs, prompt: PromptConfig, config: EvaluateConfig) -> Ranker:
    def rank(examples: Sequence[RerankExample]) -> RowOutput:
        run = rerank_with_model(
            model,
            tokenizer,
            examples,
            inputs.catalog,
            inputs.sids,
            prompt,
            config.max_new_tokens,
            config.batch_size,
            constrained=config.decoding == "constrained",
        )
        return RowOutput(run.rankings, [p.explanation for p in run.parsed], run.speed_metrics())

    return rank


def direct_rankers(scorer: DirectScorer | CachedDirectScorer, fusion_lambda: float) -> tuple[Ranker, Ranker]:
    """The direct model alone and fused with the incoming order: one scoring per example serves both."""
    scored: dict[tuple, torch.Tensor] = {}
    speed: dict[str, float] = {}

    def scores_of(examples: Sequence[RerankExample]) -> list[torch.Tensor]:
        key = lambda e: (e.user_id, e.history, e.candidates)  # noqa: E731
        missing = [e for e in examples if key(e) not in scored]
        if missing:
            started = time.monotonic()
            fresh = scorer.score([(e.history, e.candidates) for e in missing], progress=True)
            speed["examples_per_second"] = len(missing) / max(time.monotonic() - started, 1e-9)
            scored.update({key(e): s for e, s in zip(missing, fresh, strict=True)})
        return [scored[key(e)] for e in examples]

    def ranker(fusion: float) -> Ranker:
        return lambda examples: RowOutput(direct_rankings(examples, scores_of(examples), fusion), speed=dict(speed))

    return ranker(0.0), ranker(fusion_lambda)


@torch.no_grad()
def sid_log_likelihood(model, tokenizer, prompt_text: str, continuations: Sequence[str]) -> list[float]:
    """log p(continuation | prompt) for each continuation, in one padded batch."""
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    rows = [prompt_ids + tokenizer(c, add_special_tokens=False)["input_ids"] for c in continuations]
    width = max(len(r) for r in rows)
    ids = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows], device=model.device)
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=model.device)
    logprobs = model(input_ids=ids, attention_mask=mask).logits.log_softmax(-1)
    scores = []
    for row, tokens in enumerate(rows):
        positions = range(len(prompt_ids), len(tokens))
        scores.append(sum(logprobs[row, p - 1, tokens[p]].item() for p in positions))
    return scores


def likelihood_ranker(model, tokenizer, inputs: StageInputs, system_prompt: str, history_length: int) -> Ranker:
    """The mid-trained model as a re-ranker: candidates by the likelihood of their SID as the next item."""
    from gr2.lm.chat import render_prompt
    from gr2.lm.tasks import sequential_prompt

    def rank(examples: Sequence[RerankExample]) -> RowOutput:
        model.eval()
        rankings = []
        for e in examples:
            prompt = render_prompt(tokenizer, system_prompt, sequential_prompt(inputs.sids, e.history, history_length))
            scores = sid_log_likelihood(model, tokenizer, prompt, [inputs.sids.text(c) for c in e.candidates])
            # log-likelihoods within 1e-3 count as ties and keep the incoming order
            order = sorted(range(len(e.candidates)), key=lambda i: (-round(scores[i], 3), i))
            rankings.append(tuple(e.candidates[i] for i in order))
        return RowOutput(rankings)

    return rank


def shuffled_candidates(examples: Sequence[RerankExample], seed: int) -> list[RerankExample]:
    rng = random.Random(seed)
    return [e.reordered(rng.sample(e.candidates, len(e.candidates))) for e in examples]


def per_example(examples: Sequence[RerankExample], output: RowOutput, metric: str) -> np.ndarray:
    used = [r if r is not None else e.candidates for e, r in zip(examples, output.rankings, strict=True)]
    rows = [example_metrics(r, e.target, e.grades_by_item) for r, e in zip(used, examples, strict=True)]
    return np.array([row[metric] for row in rows])


def hit_positions(examples: Sequence[RerankExample], output: RowOutput) -> list[int]:
    counts = [0] * len(examples[0].candidates)
    for e, ranking in zip(examples, output.rankings, strict=True):
        counts[target_rank(ranking if ranking is not None else e.candidates, e.target) - 1] += 1
    return counts


def example_traces(examples, output: RowOutput, inputs: StageInputs, count: int) -> list[dict]:
    title = lambda item: inputs.catalog[item].display_title  # noqa: E731
    shown = []
    for e, ranking, explanation in zip(examples, output.rankings, output.explanations, strict=False):
        if len(shown) == count:
            break
        shown.append(
            {
                "user_id": e.user_id,
                "history": [title(i) for i in e.history[-5:]],
                "candidates": [title(i) for i in e.candidates],
                "target": title(e.target),
                "ranking": [title(i) for i in ranking] if ranking else [],
                "explanation": explanation,
            }
        )
    return shown


def row_metrics(examples, output: RowOutput) -> dict[str, float]:
    metrics = examples_metrics(examples, output.rankings)
    metrics["fallback_rate"] = metrics["invalid_rate"]  # an invalid answer is served as the incoming order
    return metrics | output.speed


def evaluate_row(
    name: str,
    label: str,
    kind: str,
    ranker: Ranker,
    examples,
    prerank: RowOutput,
    inputs: StageInputs,
    config: EvaluateConfig,
    seed: int,
) -> dict:
    output = ranker(examples)
    row = {
        "label": label,
        "kind": kind,
        "metrics": row_metrics(examples, output),
        "hit_positions": hit_positions(examples, output),
        "examples": example_traces(examples, output, inputs, config.example_traces if kind != "baseline" else 0),
    }
    row["ci95"] = {
        m: bootstrap_interval(per_example(examples, output, m), config.bootstrap_samples, seed) for m in CI_METRICS
    }
    if name != "prerank":
        row["vs_prerank"] = {
            m: {
                "diff": row["metrics"][m] - float(per_example(examples, prerank, m).mean()),
                "p_value": paired_sign_flip_p_value(
                    per_example(examples, output, m), per_example(examples, prerank, m), config.permutations, seed
                ),
            }
            for m in CI_METRICS
        }
    if config.position_bias_probe and name != "oracle":
        shuffled = shuffled_candidates(examples, seed)
        moved = row_metrics(shuffled, ranker(shuffled))
        row["position_bias"] = {
            **{f"{m}_shuffled": moved[m] for m in ("ndcg@5", "recall@1")},
            **{f"{m}_delta": moved[m] - row["metrics"][m] for m in ("ndcg@5", "recall@1")},
        }
    return row


def evaluation_examples(inputs: StageInputs, config: EvaluateConfig, seed: int) -> list[RerankExample]:
    examples = inputs.examples_of("test", config.max_examples, seed)
    if not examples:
        raise ValueError("evaluate: no test examples")
    return examples


def generated_sample(examples: list[RerankExample], size: int | None, seed: int) -> list[RerankExample]:
    """The seeded sample (in stable order) that rows generating text are scored on; all when size is None."""
    if size is None or size >= len(examples):
        return examples
    keep = set(random.Random(seed).sample(range(len(examples)), size))
    return [e for i, e in enumerate(examples) if i in keep]


def evaluate_rows(
    inputs: StageInputs,
    rankers: dict[str, tuple[str, str, Ranker]],
    config: EvaluateConfig,
    seed: int,
    generated: frozenset[str] = frozenset(),
) -> dict:
    """Rows in order: baselines first, then the given (label, kind, ranker) rows; and the gate. The rows
    named in `generated` are scored on `generated_sample` of the examples, each against the incoming order
    on the same examples; `metrics.scored_examples` says how many a row was scored on."""
    examples = evaluation_examples(inputs, config, seed)
    sample = generated_sample(examples, config.generated_max_examples, seed)
    popularity = item_popularity(inputs.split.train_sequences())
    rows_in = {
        name: (BASELINE_LABELS[name], "baseline", baseline_ranker(rerank))
        for name, rerank in baseline_rerankers(popularity, seed).items()
    } | rankers
    rows = {}
    for name, (label, kind, ranker) in rows_in.items():
        scored = sample if name in generated else examples
        prerank = RowOutput([tuple(e.candidates) for e in scored])
        rows[name] = evaluate_row(name, label, kind, ranker, scored, prerank, inputs, config, seed)
        rows[name]["metrics"]["scored_examples"] = len(scored)
    return {"examples": len(examples), "seed": seed, "rows": rows, "gate": decide_gate(rows, config.gate)}


def load_curve(model_dir: Path | None) -> list[dict]:
    import json

    path = model_dir / "training_curve.json" if model_dir else None
    return json.loads(path.read_text()) if path and path.exists() else []
