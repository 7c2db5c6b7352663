"""GR2's KFP components: one module per stage, each a thin body over `gr2.steps`."""
