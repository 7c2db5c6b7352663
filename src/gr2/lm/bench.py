"""Benchmark of stage 1b on a real dataset: SIDs (stage 1a, built once), base model, a short mid-training,
generative retrieval on a test sample next to the popularity baseline. Writes metrics.json into --work.

    python -m gr2.lm.bench --dataset data/amazon-beauty-2014 --work /tmp/gr2lm/beauty \
        --examples 2000 --eval-sample 200 --threads 1
"""

from __future__ import annotations

import argparse
import json
import random
from collections import Counter
from pathlib import Path

import torch

from gr2.data.loading import load_interactions
from gr2.data.split import LeaveOneOutSplit
from gr2.lm.base import prepare_base_model
from gr2.lm.config import BaseModelConfig, MidtrainConfig
from gr2.lm.evaluate import ranking_metrics
from gr2.lm.midtrain import run_midtraining
from gr2.sid.config import SidConfig
from gr2.sid.sidmap import SidMap
from gr2.sid.stage import build_semantic_ids
from gr2.storage.atomic import write_json_atomic


def popularity_ranking(train_sequences: list[list[str]], k: int) -> list[str]:
    return [item for item, _ in Counter(i for s in train_sequences for i in s).most_common(k)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True, help="SIDs, models, checkpoints and metrics")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--examples", type=int, default=2000, help="mid-training examples (one epoch)")
    parser.add_argument("--eval-sample", type=int, default=200, help="test users for retrieval metrics")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--embedding-cache", type=Path, default=None, help="sentence-embedding cache")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    data = load_interactions(args.dataset)
    split = LeaveOneOutSplit(data.sequences, max_history=50)
    train = list(split.train_sequences().values())
    sid_path = args.work / "sid" / "sid_map.json"
    if not sid_path.exists():
        build_semantic_ids(data.items, train, SidConfig(), sid_path.parent, args.embedding_cache)
    sid_map = SidMap.load(sid_path)

    base_metrics = prepare_base_model(BaseModelConfig(name=args.model), sid_map, args.work / "base")
    config = MidtrainConfig(
        num_examples=args.examples,
        eval_sample_size=args.eval_sample,
        caption_eval_size=args.eval_sample,
        save_steps=50,
    )
    tests = [(list(example.history), example.target) for example in split.test_examples()]
    sample = random.Random(config.seed).sample(tests, min(args.eval_sample, len(tests)))
    metrics = run_midtraining(
        args.work / "base", data.items, sid_map, train, sample, config, args.work / "mid", args.work / "ckpt"
    )
    popular = popularity_ranking(train, config.eval_k)
    baseline = ranking_metrics([popular] * len(sample), [target for _, target in sample], config.eval_k)
    report = {
        "base": base_metrics,
        "midtrain": metrics,
        "popularity": baseline,
        "config": config.model_dump(),
        "torch_threads": torch.get_num_threads(),
    }
    write_json_atomic(args.work / "metrics.json", report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
