"""The GR2 pipeline, its compilation, and its local run through kfp.local."""
