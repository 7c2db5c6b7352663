"""How a model turns a prompt into a ranking, for training, evaluation and serving alike: `direct` (label
logits of one prefill), `constrained` (free reasoning, then a ranking that can only be a permutation) and
`generation` (batched free or constrained answers, parsed by the one parser)."""
