"""Beauty direct-mode lever experiments (docs/benchmarks.md, GR2-Direct on Beauty).

Library training (gr2.train.direct: direct SFT, then optionally direct DAPO on the SFT weights); validation
and test scored from the cached frozen-layer activations with the trained top layers; the fusion lambda
chosen on the validation examples only; paired sign-flip tests against the incoming order on every test
example. --run: a KFP local run folder holding the data and prerank outputs (`gr2 run --until prerank`);
--sid: a folder with sid_map.json; --model: a base-model folder with that SID vocabulary (gr2.lm.base).
With prompt.direct_evidence the collaborative counts come from the train split, as in the pipeline.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from gr2.eval.metrics import example_metrics, rerank_metrics
from gr2.eval.stats import paired_sign_flip_p_value
from gr2.eval.validate import choose_fusion_lambda, direct_rankings
from gr2.inputs import load_inputs
from gr2.lm.models import load_model_and_tokenizer
from gr2.rank.direct import head_token_ids, stage_prompt_context
from gr2.rank.frozen import FrozenLowerLayers
from gr2.traces.config import PromptConfig
from gr2.train.checkpoint import trainable_parameters
from gr2.train.config import DirectDapoConfig, DirectSftConfig
from gr2.train.direct import build_views, train_direct_dapo, train_direct_sft

LAMBDAS = [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]
SHOWN = ("recall@1", "recall@5", "ndcg@5", "order_copy_rate", "kendall_tau")


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    for name in ("--run", "--out", "--sid", "--model"):
        parser.add_argument(name, required=True)
    parser.add_argument("--prompt", default="{}", help="PromptConfig fields as JSON")
    parser.add_argument("--sft", default="{}", help="DirectSftConfig fields as JSON")
    parser.add_argument("--dapo", default=None, help="DirectDapoConfig fields as JSON: run direct DAPO after SFT")
    parser.add_argument("--init", default=None, help="trainable.pt of an earlier run: skip SFT, start from it")
    parser.add_argument("--cache", default="/tmp/exp2/states", help="frozen-layer activations cache")
    return parser.parse_args()


def load_trainable(split: FrozenLowerLayers, path: Path) -> None:
    params = trainable_parameters(split.model)
    with torch.no_grad():
        for name, value in torch.load(path).items():
            params[name].copy_(value)


def paired(test, rankings, incoming) -> dict:
    result = {}
    for metric in ("ndcg@5", "recall@5"):
        model = np.array([example_metrics(r, e.target)[metric] for r, e in zip(rankings, test, strict=True)])
        base = np.array([example_metrics(r, e.target)[metric] for r, e in zip(incoming, test, strict=True)])
        result[f"d_{metric}"] = float(model.mean() - base.mean())
        result[f"p_{metric}"] = paired_sign_flip_p_value(model, base, 2000, 0)
    return result


def main() -> None:
    args = parse_args()
    run = Path(args.run)
    one = lambda stage, name: next(run.glob(f"*/{stage}/{name}"))  # noqa: E731
    inputs = load_inputs(one("data", "dataset"), one("prerank", "examples"), args.sid, 50)
    context = stage_prompt_context(inputs, PromptConfig(**json.loads(args.prompt)))
    sft = DirectSftConfig(**json.loads(args.sft))
    model, tokenizer = load_model_and_tokenizer(args.model)
    out, cache = Path(args.out), Path(args.cache)
    out.mkdir(parents=True, exist_ok=True)
    train = inputs.examples_of("train")
    started = time.time()
    metrics, curve = {}, []
    split = FrozenLowerLayers(model, sft.trainable_layers, head_token_ids(tokenizer, context.config))
    if args.init:
        load_trainable(split, Path(args.init))
    else:
        metrics["sft"], curve = train_direct_sft(model, tokenizer, train, context, sft, 0, out / "sft", cache)
    if args.dapo:
        dapo = DirectDapoConfig(**{"trainable_layers": sft.trainable_layers, **json.loads(args.dapo)})
        metrics["dapo"], curve = train_direct_dapo(model, tokenizer, train, context, dapo, 0, out / "dapo", cache)
    print("TRAIN", json.dumps(metrics), flush=True)
    split = FrozenLowerLayers(model, sft.trainable_layers, head_token_ids(tokenizer, context.config))
    torch.save(
        {name: p.detach().clone() for name, p in trainable_parameters(split.model).items()}, out / "trainable.pt"
    )
    model.eval()

    def scores_of(examples):
        views = build_views(split, tokenizer, examples, context, 1, cache)
        with torch.no_grad():
            return [view.prompt.incoming_order(view.scores(split)) for view in views]

    valid, test = inputs.examples_of("valid"), inputs.examples_of("test")
    fusion_lambda, by_lambda = choose_fusion_lambda(valid, scores_of(valid), LAMBDAS)
    scoring = time.time()
    test_scores = scores_of(test)
    incoming, targets = [e.candidates for e in test], [e.target for e in test]
    result = {
        "fusion_lambda": fusion_lambda,
        "valid_ndcg_by_lambda": by_lambda,
        "n_test": len(test),
        "test_scoring_seconds": time.time() - scoring,
        "total_seconds": time.time() - started,
        "incoming": {k: v for k, v in rerank_metrics(incoming, incoming, targets).items() if k in SHOWN[:3]},
        "top1_incoming_position_hist": np.bincount([int(s.argmax()) for s in test_scores], minlength=10).tolist(),
    }
    for name, weight in (("alone", 0.0), ("fused", fusion_lambda)):
        rankings = direct_rankings(test, test_scores, weight)
        measured = rerank_metrics(incoming, rankings, targets)
        result[name] = {k: measured[k] for k in SHOWN} | paired(test, rankings, incoming)
    print("RESULT", json.dumps(result, indent=1), flush=True)
    record = {"args": vars(args), "train": metrics, "test": result, "curve": curve}
    (out / "result.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
