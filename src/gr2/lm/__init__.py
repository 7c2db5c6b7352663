"""Stage 1b: the base LLM with semantic-ID tokens, mid-training on SIDs, and SID generative retrieval.

Entry points: `gr2.lm.base.prepare_base_model`, `gr2.lm.midtrain.run_midtraining`,
`gr2.lm.retrieval.generate_candidates` (the `sid-beam` pre-ranker). See docs/lm.md.
"""
