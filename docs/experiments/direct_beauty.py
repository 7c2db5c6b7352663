"""Beauty direct-mode lever experiments (docs/benchmarks.md, GR2-Direct on Beauty).

Library training (gr2.train.direct); validation and test scored from the cached frozen-layer activations
with the trained top layers; the fusion lambda chosen on validation; paired tests against the incoming order.
--sid: a folder with sid_map.json; --model: a base-model folder with that SID vocabulary (gr2.lm.base).
"""
import argparse, json, time
from pathlib import Path
import numpy as np
import torch
from gr2.inputs import load_inputs
from gr2.lm.models import load_model_and_tokenizer
from gr2.traces.config import PromptConfig
from gr2.train.config import DirectSftConfig
from gr2.train.direct import train_direct_sft, FrozenLowerLayers, build_views
from gr2.rank.direct import label_token_ids
from gr2.eval.validate import choose_fusion_lambda, direct_rankings
from gr2.eval.metrics import rerank_metrics, example_metrics
from gr2.eval.stats import paired_sign_flip_p_value

ap = argparse.ArgumentParser()
ap.add_argument("--run", required=True); ap.add_argument("--out", required=True)
ap.add_argument("--sid", required=True); ap.add_argument("--model", required=True)
ap.add_argument("--prompt", default="{}"); ap.add_argument("--sft", default="{}")
ap.add_argument("--train-limit", type=int, default=None); ap.add_argument("--test-limit", type=int, default=None)
ap.add_argument("--zero-shot", action="store_true")
ap.add_argument("--cache", default="/tmp/exp/states", help="frozen-layer activations cache")
ap.add_argument("--from-checkpoint", default=None)
args = ap.parse_args()
run = Path(args.run)
one = lambda stage, name: next(run.glob(f"*/{stage}/{name}"))
inputs = load_inputs(one("data", "dataset"), one("prerank", "examples"), args.sid, 50)
prompt = PromptConfig(**json.loads(args.prompt)); config = DirectSftConfig(**json.loads(args.sft))
model, tok = load_model_and_tokenizer(args.model)
out = Path(args.out); out.mkdir(parents=True, exist_ok=True)
cache = Path(args.cache)
train = inputs.examples_of("train", args.train_limit, 0)
metrics, curve = {}, []
if not (args.zero_shot or args.from_checkpoint):
    metrics, curve = train_direct_sft(model, tok, train, inputs.catalog, inputs.sids, prompt, config, 0, out / "work", cache)
    print("TRAIN", json.dumps(metrics), flush=True)
split = FrozenLowerLayers(model, config.trainable_layers, label_token_ids(tok, prompt.direct_labels))
if args.from_checkpoint:
    state = torch.load(args.from_checkpoint, weights_only=False)
    params = split.trainable()
    with torch.no_grad():
        for name, value in state["trainable"].items():
            params[name].copy_(value)
    metrics = {"checkpoint_step": state["state"]["step"]}
    curve = state["state"]["curve"]
model.eval()
def scores_of(examples):
    views = build_views(split, tok, examples, inputs.catalog, inputs.sids, prompt, 1, cache)
    with torch.no_grad():
        return [v.prompt.incoming_order(split.label_scores(v.lower)[: len(v.prompt.shown)]) for v in views]
valid = inputs.examples_of("valid"); test = inputs.examples_of("test", args.test_limit, 0)
vs = scores_of(valid)
lam, by_lam = choose_fusion_lambda(valid, vs, [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0])
t = time.time(); ts = scores_of(test); print("test scoring s", time.time() - t)
inc = [e.candidates for e in test]; tg = [e.target for e in test]
per = lambda rk, m: np.array([example_metrics(r, e.target)[m] for r, e in zip(rk, test)])
res = {"lambda": lam, "valid_ndcg_by_lambda": by_lam, "n_test": len(test)}
res["incoming"] = {k: v for k, v in rerank_metrics(inc, inc, tg).items() if k in ("recall@1", "recall@5", "ndcg@5")}
top1 = [int(torch.argmax(s)) for s in ts]
res["top1_incoming_position_hist"] = np.bincount(top1, minlength=10).tolist()
for name, l in (("alone", 0.0), ("fused", lam)):
    rk = direct_rankings(test, ts, l); m = rerank_metrics(inc, rk, tg)
    res[name] = {k: m[k] for k in ("recall@1", "recall@5", "ndcg@5", "order_copy_rate", "kendall_tau")}
    for met in ("ndcg@5", "recall@5"):
        a, b = per(rk, met), per(inc, met)
        res[name][f"d_{met}"] = float(a.mean() - b.mean()); res[name][f"p_{met}"] = paired_sign_flip_p_value(a, b, 2000, 0)
print("RESULT", json.dumps(res, indent=1), flush=True)
(out / "result.json").write_text(json.dumps({"args": vars(args), "train": metrics, "test": res, "curve": curve}, indent=1))
