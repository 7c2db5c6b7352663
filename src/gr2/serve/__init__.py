"""Serving: the KServe predictor (`predictor`), its request validation, constrained decoding and backends,
the model bundle format (`bundle`), metrics, deployment (`deploy`), `gr2 serve` (`server`) and the
benchmark (`bench`). See docs/serving.md."""
