"""Configuration of the evaluation stage and the deployment gate."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class GateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    candidate: str = Field(
        "direct_dapo_fused",
        description="The row that would be deployed (the served model). If its stage did not run, the first "
        "trained row of gr2.eval.gate.CANDIDATE_ORDER that did.",
    )
    metric: str = Field("ndcg@5", description="The metric compared with the incoming order (pre-rank).")
    margin: float = Field(
        0.0, ge=0.0, description="Pass when candidate metric >= pre-rank metric - margin (0: must not be worse)."
    )
    max_invalid_rate: float = Field(
        0.05, ge=0.0, le=1.0, description="Pass only when invalid outputs are at most this."
    )


class EvaluateConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_examples: int | None = Field(
        None, ge=1, description="Evaluate on a seeded sample of this many test examples (None: all of them)."
    )
    generated_max_examples: int | None = Field(
        None,
        ge=1,
        description="Rows that generate text (the reasoning rows) or score every candidate's SID (the mid-trained "
        "likelihood row) are scored on a seeded sample of this many of the evaluation examples, each compared with "
        "the incoming order on the same sample (None: all). Direct rows, baselines and the teacher are scored on "
        "all of them.",
    )
    decoding: Literal["constrained", "free"] = Field(
        "constrained",
        description="How trained rows (and SFT/DAPO validation) decode. `constrained`: as served (free reasoning, "
        "then a ranking that can only be a permutation of the candidates), so the gate judges what would be "
        "deployed. `free`: plain generation as in the paper, where invalid answers fall back and are counted.",
    )
    max_new_tokens: int = Field(
        384, ge=16, description="Generation budget per answer for LLM rows (the reasoning budget when constrained)."
    )
    batch_size: int = Field(8, ge=1, description="Prompts per generation batch.")
    fusion_lambdas: list[float] = Field(
        default_factory=lambda: [0.0, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0],
        min_length=1,
        description="Direct rows: fusion with the incoming order, score = log p(label) + lambda * -ln(incoming "
        "rank). The direct training stages pick the lambda with the best NDCG@5 on the validation examples "
        "(never test) and store it with the model; evaluation reports the model alone and fused, and serving "
        "uses the stored lambda. [0] turns fusion off.",
    )
    position_bias_probe: bool = Field(
        True, description="Re-run every row with the candidates shuffled (seeded) and report how metrics move."
    )
    bootstrap_samples: int = Field(1000, ge=100, description="Resamples for the 95% intervals of R@5 and NDCG@5.")
    permutations: int = Field(2000, ge=100, description="Sign flips of the paired test against pre-rank.")
    example_traces: int = Field(3, ge=0, description="Example traces per model row in the report.")
    gate: GateConfig = Field(default_factory=GateConfig, description="The deployment gate.")
