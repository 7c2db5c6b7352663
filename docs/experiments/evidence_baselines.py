"""Non-LLM references for the direct student on Beauty (docs/benchmarks.md, GR2-Direct on Beauty).

Each candidate gets one feature, used alone and fused with the incoming order as
`feature + prior / l` (prior = -ln(incoming rank)), l chosen on the validation examples by NDCG@5:
- trans: log(1 + transitions from the user's 3 latest items, weighted 1/distance), train split only;
- cos_user / cos_last: cosine of the item's sentence embedding (the SID stage's encoder) to the history's
  recency-weighted mean / to the latest item; pop: log(1 + train-split popularity).
--run: a KFP local run folder holding the data and prerank outputs; --sid: a folder with sid_map.json.
"""

import argparse
from pathlib import Path

import numpy as np

from gr2.eval.metrics import example_metrics
from gr2.eval.stats import paired_sign_flip_p_value
from gr2.inputs import load_inputs
from gr2.prerank.base import item_popularity
from gr2.prerank.cooccurrence import transition_counts
from gr2.sid.config import SidConfig
from gr2.sid.stage import embed_catalog

INVERSE_WEIGHTS = [0.25, 0.5, 1, 2, 4, 8, 16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run", required=True)
    parser.add_argument("--sid", required=True)
    parser.add_argument("--embeddings-cache", default=str(Path.home() / ".cache/gr2/embeddings"))
    args = parser.parse_args()
    one = lambda stage, name: next(Path(args.run).glob(f"*/{stage}/{name}"))  # noqa: E731
    inputs = load_inputs(one("data", "dataset"), one("prerank", "examples"), args.sid, 50)
    embedded = embed_catalog(inputs.catalog, SidConfig(), Path(args.embeddings_cache))
    index = {item: n for n, item in enumerate(embedded.item_ids)}
    vectors = embedded.vectors / np.linalg.norm(embedded.vectors, axis=1, keepdims=True)
    train = inputs.split.train_sequences()
    transitions, popularity = transition_counts(train), item_popularity(train)

    def features(example) -> dict[str, np.ndarray]:
        recent = [vectors[index[i]] for i in example.history[-5:]]
        weights = np.array([0.5 ** (len(recent) - 1 - k) for k in range(len(recent))])
        user = (np.array(recent) * weights[:, None]).sum(0)
        candidates = np.array([vectors[index[c]] for c in example.candidates])
        followed = [
            sum(transitions.get(h, {}).get(c, 0) / (d + 1) for d, h in enumerate(reversed(example.history[-3:])))
            for c in example.candidates
        ]
        return {
            "cos_user": candidates @ user / np.linalg.norm(user),
            "cos_last": candidates @ vectors[index[example.history[-1]]],
            "trans": np.log1p(followed),
            "pop": np.log1p([popularity.get(c, 0) for c in example.candidates]),
            "prior": -np.log(np.arange(1, len(example.candidates) + 1)),
        }

    def ndcg(examples, name: str, inverse_weight: float | None) -> np.ndarray:
        """Per example NDCG@5 of the feature alone (inverse_weight None) or fused with the prior."""
        values = []
        for example in examples:
            f = features(example)
            score = f[name] if inverse_weight is None else f[name] + f["prior"] / inverse_weight
            order = np.argsort(-score, kind="stable")
            values.append(example_metrics([example.candidates[i] for i in order], example.target)["ndcg@5"])
        return np.array(values)

    valid, test = inputs.examples_of("valid"), inputs.examples_of("test")
    incoming = ndcg(test, "prior", None)
    print(f"incoming test NDCG@5 {incoming.mean():.4f}")
    for name in ("trans", "cos_user", "cos_last", "pop"):
        alone = ndcg(test, name, None)
        best = max(INVERSE_WEIGHTS, key=lambda w, name=name: ndcg(valid, name, w).mean())
        fused = ndcg(test, name, best)
        p = paired_sign_flip_p_value(fused, incoming, 2000, 0)
        print(f"{name}: alone {alone.mean():.4f}; fused (1/l = {best}) {fused.mean():.4f}, p {p:.4f}")


if __name__ == "__main__":
    main()
