"""Configuration of the re-ranker's training stages."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class RewardConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal["conditional", "naive"] = Field(
        "conditional",
        description="`conditional`: the format bonus only when the held-out item moved up or was already "
        "first (GR2); `naive`: R_rank + alpha * R_fmt always (the reward-hacking ablation).",
    )
    alpha: float = Field(0.2, ge=0.0, description="Weight of the format reward.")
    invalid_penalty: float = Field(-1.0, le=0.0, description="Reward of an output that does not parse.")
    overlong_max_tokens: int = Field(512, ge=8, description="DAPO soft overlong penalty: the length budget.")
    overlong_cache_tokens: int = Field(
        64, ge=0, description="DAPO soft overlong penalty: the last this many tokens of the budget ramp to -1."
    )
