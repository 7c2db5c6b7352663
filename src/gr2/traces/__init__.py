"""Prompts, output parsing and teacher reasoning traces (GR2 stage 2)."""
