"""Configuration of the data stage."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(
        "amazon-office-2014",
        description="A bundled dataset name (see `gr2 datasets`) or a path to a folder in the normalised "
        "format. `gr2 run --data DIR` overrides it.",
    )
    max_history: int = Field(50, ge=1, description="Histories are capped at this many most recent items.")
    min_sequence_length: int = Field(
        3, ge=3, description="Users with fewer usable items are dropped: leave-one-out needs train, valid, test."
    )
    max_users: int | None = Field(
        None, ge=10, description="Keep a seeded sample of this many users (small presets); None keeps all."
    )
    rerank_valid_fraction: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="Share of users whose validation-target example is held out to validate the re-ranker "
        "(SFT/RL model selection) instead of training it.",
    )
