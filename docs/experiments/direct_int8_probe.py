"""Does PyTorch's dynamic int8 quantization keep a direct model's rankings? (docs/benchmarks.md, Serving)

Scores a seeded sample of a finished run's test examples with a direct model in float32, then with the
`nn.Linear` modules of its decoder layers quantized by `torch.ao.quantization.quantize_dynamic` (int8 weights,
activations quantized per batch), once per `--keep-float` variant (linear layers left in float32, by name).
Reports the process CPU time per request with one torch thread (so a busy machine does not skew the ratio),
how often the top candidate and the whole order agree with float32, alone and fused with the incoming order.

--run: the run's KFP folder (RUN/kfp/gr2-...); --model: a direct model folder of that run (with direct.json).
"""

import argparse
import json
import time
from pathlib import Path

import torch
from torch.ao.quantization import quantize_dynamic

from gr2.config import config_from_json
from gr2.eval.evaluate import evaluation_examples
from gr2.inputs import load_inputs
from gr2.lm.models import load_on_device
from gr2.rank.direct import DirectScorer, fused_scores, stage_prompt_context
from gr2.train.direct_stage import read_direct_file


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--config", required=True, type=Path, help="RUN/config.json")
    parser.add_argument("--model", required=True, type=Path)
    parser.add_argument("--max-examples", type=int, default=30)
    parser.add_argument(
        "--keep-float", action="append", default=[], help="comma-separated linear names left in float32, repeated"
    )
    parser.add_argument("--out", required=True, type=Path)
    return parser.parse_args()


def quantize_linear_layers(model, keep_float: set[str]) -> None:
    """int8 dynamic quantization of every decoder layer's attention and MLP projections but `keep_float`."""
    for layer in model.get_decoder().layers:
        for block in (layer.self_attn, layer.mlp):
            for name, child in list(block.named_children()):
                if isinstance(child, torch.nn.Linear) and name not in keep_float:
                    quantized = quantize_dynamic(torch.nn.Sequential(child), {torch.nn.Linear}, dtype=torch.qint8)
                    setattr(block, name, quantized[0])


def scored(scorer: DirectScorer, requests) -> tuple[list[torch.Tensor], float]:
    started = time.process_time()
    scores = scorer.score(requests)
    return scores, (time.process_time() - started) / len(requests)


def agreement(reference: list[torch.Tensor], other: list[torch.Tensor], fusion_lambda: float) -> dict:
    def share(same) -> float:
        return sum(same(a, b) for a, b in zip(reference, other, strict=True)) / len(reference)

    def order(scores: torch.Tensor) -> list[int]:
        return scores.argsort(descending=True).tolist()

    return {
        "top1_agreement": share(lambda a, b: int(a.argmax() == b.argmax())),
        "fused_top1_agreement": share(
            lambda a, b: int(fused_scores(a, fusion_lambda).argmax() == fused_scores(b, fusion_lambda).argmax())
        ),
        "same_order": share(lambda a, b: int(order(a) == order(b))),
        "max_log_prob_difference": max(
            (a.log_softmax(-1) - b.log_softmax(-1)).abs().max().item() for a, b in zip(reference, other, strict=True)
        ),
    }


def main() -> None:
    args = parse_args()
    torch.set_num_threads(1)
    config = config_from_json(args.config.read_text())
    run = args.run
    inputs = load_inputs(
        run / "data/dataset", run / "prerank/examples", run / "sid/semantic_ids", config.data.max_history
    )
    evaluate = config.evaluate.model_copy(update={"max_examples": args.max_examples})
    requests = [(e.history, e.candidates) for e in evaluation_examples(inputs, evaluate, config.seed)]
    context = stage_prompt_context(inputs, config.prompt)
    fusion_lambda = read_direct_file(args.model)["fusion_lambda"]

    model, tokenizer = load_on_device(args.model)
    reference, float_seconds = scored(DirectScorer(model, tokenizer, context, batch_size=1), requests)
    variants = {}
    for keep in ["", *args.keep_float]:
        model, tokenizer = load_on_device(args.model)
        quantize_linear_layers(model, set(filter(None, keep.split(","))))
        scores, seconds = scored(DirectScorer(model, tokenizer, context, batch_size=1), requests)
        variants[keep or "none"] = {"cpu_seconds_per_request": seconds, **agreement(reference, scores, fusion_lambda)}
        print(f"keep float: {keep or 'none'}", json.dumps(variants[keep or "none"]), flush=True)
    result = {"examples": len(requests), "float32_cpu_seconds_per_request": float_seconds, "int8": variants}
    args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
