"""The `prerank` stage: fit a pre-ranker on the train split and build the K-candidate examples GR2
re-ranks, with the coverage of each split and the no-model baseline rows on the test examples.

On a slate dataset nothing is fitted: the shown order is the incoming order (`slate_examples`), and
`prerank.method` and `prerank.k` are not used."""

from __future__ import annotations

import time
from pathlib import Path

from gr2.data.artifact import read_interactions, read_summary
from gr2.data.config import DataConfig
from gr2.data.schema import Interactions
from gr2.data.slates import read_slates
from gr2.data.split import LeaveOneOutSplit
from gr2.eval.baselines import baseline_rerankers
from gr2.eval.metrics import examples_metrics, mean_metrics, ndcg_at_k, recall_at_k
from gr2.lm.config import MidtrainConfig
from gr2.prerank.base import Retriever, item_popularity
from gr2.prerank.candidates import RerankExample, SplitCandidates, build_examples, slate_examples, write_examples
from gr2.prerank.config import PrerankConfig
from gr2.prerank.cooccurrence import CooccurrenceRetriever, PopularityRetriever
from gr2.prerank.external import ExternalRetriever, read_external_candidates
from gr2.prerank.sasrec import train_sasrec
from gr2.prerank.sid_beam import SidBeamRetriever
from gr2.storage.atomic import write_json_atomic


def fit_retrievers(
    config: PrerankConfig,
    split: LeaveOneOutSplit,
    catalog: list[str],
    seed: int,
    model_dir: Path,
    midtrain: MidtrainConfig,
) -> tuple[dict[str, Retriever], dict[str, float]]:
    """One retriever per re-ranker split (the same one except for external lists), and fit metrics."""
    train = split.train_sequences()
    started = time.monotonic()
    if config.method == "external":
        lists = read_external_candidates(config.external_path or "", set(catalog))
        return {name: ExternalRetriever(lists, name) for name in ("train", "valid", "test")}, {}
    if config.method == "sasrec":
        retriever, losses = train_sasrec(train, catalog, split.max_history, config.sasrec, seed)
        retriever.save(model_dir / "sasrec.pt")
        write_json_atomic(model_dir / "training_curve.json", {"epoch_loss": losses})
        fitted = {"train_seconds": time.monotonic() - started, "final_loss": losses[-1]}
    elif config.method == "sid-beam":
        if not (config.sid_beam_model and config.sid_beam_sid_map):
            raise ValueError("prerank.method=sid-beam needs prerank.sid_beam_model and prerank.sid_beam_sid_map")
        popular = PopularityRetriever(train, catalog)
        retriever = SidBeamRetriever(
            Path(config.sid_beam_model),
            Path(config.sid_beam_sid_map),
            popular,
            midtrain.system_prompt,
            midtrain.history_length,
        )
        fitted = {"train_seconds": time.monotonic() - started}
    elif config.method == "cooccurrence":
        retriever = CooccurrenceRetriever(train, catalog, config.cooccurrence_window)
        fitted = {"train_seconds": time.monotonic() - started}
    else:
        retriever = PopularityRetriever(train, catalog)
        fitted = {"train_seconds": time.monotonic() - started}
    return {"train": retriever, "valid": retriever, "test": retriever}, fitted


def full_catalogue_metrics(built: SplitCandidates, k: int) -> dict[str, float]:
    """Recall@K and NDCG@K over the whole catalogue, on every example of the split (kept or not)."""
    ranks = [e.target_position for e in built.kept] + [None] * (built.total - len(built.kept))
    return {
        f"full_recall@{k}": sum(recall_at_k(r, k) for r in ranks) / built.total,
        f"full_ndcg@{k}": sum(ndcg_at_k(r, k) for r in ranks) / built.total,
    }


def baseline_metrics(test: list[RerankExample], popularity: dict[str, int], seed: int) -> dict[str, float]:
    """The no-model rows on the test examples; the incoming order's have no prefix (`prerank.ndcg@5`)."""
    metrics: dict[str, float] = {}
    for name, rerank in baseline_rerankers(popularity, seed).items():
        row = examples_metrics(test, [rerank(e) for e in test])
        prefix = "" if name == "prerank" else f"{name}."
        metrics.update({f"{prefix}{metric}": value for metric, value in row.items()})
    return metrics


def run_prerank(
    data_dir: Path,
    config: PrerankConfig,
    data_config: DataConfig,
    seed: int,
    out_dir: Path,
    model_dir: Path,
    midtrain: MidtrainConfig,
) -> dict[str, float]:
    """Fit the configured pre-ranker, write `examples.jsonl.gz` to out_dir, return the stage's metrics."""
    data = read_interactions(data_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    if data.kind == "slates":
        return run_slate_prerank(data_dir, data, data_config, seed, out_dir)
    split = LeaveOneOutSplit(data.sequences, data_config.max_history)
    retrievers, metrics = fit_retrievers(config, split, sorted(data.items), seed, model_dir, midtrain)
    examples = split.reranker_examples(data_config.rerank_valid_fraction, seed)
    kept: list[RerankExample] = []
    for name, ranking_examples in examples.items():
        built = build_examples(name, ranking_examples, retrievers[name], config.k, config.keep_target_outside_top_k)
        kept.extend(built.kept)
        metrics[f"{name}_examples"] = len(built.kept)
        metrics[f"coverage_{name}"] = built.coverage
        if name == "test":
            metrics.update(full_catalogue_metrics(built, config.k))
            test = built.kept
    if not test:
        raise ValueError("prerank: no test example has its target among the candidates; nothing to re-rank")
    return publish_examples(kept, test, split.train_sequences(), metrics, seed, out_dir)


def publish_examples(
    examples: list[RerankExample],
    test: list[RerankExample],
    train_sequences: dict[str, list[str]],
    metrics: dict[str, float],
    seed: int,
    out_dir: Path,
) -> dict[str, float]:
    """Write the examples and the stage's metrics (with the baseline rows on `test`); returns the metrics."""
    write_examples(examples, out_dir)
    metrics["target_at_1_share"] = mean_metrics([{"x": float(e.target_position == 1)} for e in test])["x"]
    metrics.update(baseline_metrics(test, item_popularity(train_sequences), seed))
    write_json_atomic(out_dir / "metrics.json", metrics)
    return metrics


def run_slate_prerank(
    data_dir: Path, data: Interactions, data_config: DataConfig, seed: int, out_dir: Path
) -> dict[str, float]:
    """The slates as examples, split at the data stage's cutoff; the shown order is the incoming order."""
    test_from = read_summary(data_dir)["test_from"]
    slates = read_slates(data_dir).slates
    examples = slate_examples(slates, test_from, data_config.rerank_valid_fraction, seed, data_config.max_history)
    metrics: dict[str, float] = {f"{name}_examples": 0 for name in ("train", "valid", "test")}
    for example in examples:
        metrics[f"{example.split}_examples"] += 1
    test = [e for e in examples if e.split == "test"]
    return publish_examples(examples, test, data.sequences, metrics, seed, out_dir)
