"""sid stage."""
