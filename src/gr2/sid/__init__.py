"""Stage 1a, the semantic-ID tokenizer: entry point gr2.sid.stage.build_semantic_ids, configured by
gr2.sid.config.SidConfig; see docs/sid.md."""
