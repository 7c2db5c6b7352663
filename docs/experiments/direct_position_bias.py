"""Position-bias probe on the direct rows of a finished run (docs/benchmarks.md, GR2-Direct on Beauty).

Each direct model is scored on the test examples as they came and with every incoming candidate order
shuffled (seeded), exactly as `evaluate.position_bias_probe` does in the evaluate stage, but for the direct
rows only: turning the probe on in the pipeline would also re-run the sampled reasoning rows. The models
share the frozen-layer cache (`gr2.rank.frozen.CachedDirectScorer`), so each shuffled prompt's lower
layers run once for all of them.

--run: the run's KFP folder (RUN/kfp/gr2-...); --config: RUN/config.json; --model ROW=DIR for each direct
model folder (a direct stage's output, with direct.json).
"""

import argparse
import json
import time
from pathlib import Path

from gr2.config import config_from_json
from gr2.eval.evaluate import RowOutput, direct_rankers, evaluate_row, evaluation_examples
from gr2.eval.gate import FUSED
from gr2.inputs import load_inputs
from gr2.lm.models import load_on_device
from gr2.rank.direct import stage_prompt_context
from gr2.rank.frozen import CachedDirectScorer
from gr2.train.direct_stage import read_direct_file


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", required=True, type=Path)
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--model", action="append", required=True, help="ROW=DIR, repeated")
    parser.add_argument("--cache", type=Path, help="frozen-layer cache (default: the run config's)")
    parser.add_argument("--max-examples", type=int, help="a seeded sample of the test examples (default: all)")
    parser.add_argument("--out", required=True, type=Path, help="JSON file for the rows' metrics and probe")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    config = config_from_json(args.config.read_text())
    evaluate = config.evaluate.model_copy(update={"position_bias_probe": True, "max_examples": args.max_examples})
    run = args.run
    inputs = load_inputs(
        run / "data/dataset", run / "prerank/examples", run / "sid/semantic_ids", config.data.max_history
    )
    examples = evaluation_examples(inputs, evaluate, config.seed)
    prerank = RowOutput([tuple(e.candidates) for e in examples])
    context = stage_prompt_context(inputs, config.prompt)
    cache = args.cache or Path(config.cache).expanduser() / "direct-states"
    rows = {}
    for spec in args.model:
        name, model_dir = spec.split("=", 1)
        stored = read_direct_file(Path(model_dir))
        model, tokenizer = load_on_device(Path(model_dir))
        scorer = CachedDirectScorer(model, tokenizer, context, stored["trainable_layers"], cache)
        alone, fused = direct_rankers(scorer, stored["fusion_lambda"])
        for row, ranker in ((name, alone), (f"{name}{FUSED}", fused)):
            started = time.monotonic()
            body = evaluate_row(row, row, "model", ranker, examples, prerank, inputs, evaluate, config.seed)
            rows[row] = {
                "metrics": body["metrics"],
                "position_bias": body["position_bias"],
                "seconds": time.monotonic() - started,
            }
            print(row, json.dumps(rows[row]["position_bias"]), flush=True)
    args.out.write_text(json.dumps({"examples": len(examples), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
