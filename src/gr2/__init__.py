"""GR2: the Generative Reasoning Re-ranker, as a library that every pipeline stage calls."""

__version__ = "0.1.0"
