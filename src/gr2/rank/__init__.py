"""How a model turns a prompt into a ranking: direct (label logits of one prefill)."""
