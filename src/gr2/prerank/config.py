"""Configuration of the pre-ranker that produces the K candidates GR2 re-ranks."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SasRecConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hidden_size: int = Field(64, ge=8, description="Item and position embedding width.")
    num_blocks: int = Field(2, ge=1, description="Causal self-attention blocks.")
    num_heads: int = Field(1, ge=1, description="Attention heads per block.")
    dropout: float = Field(0.2, ge=0.0, lt=1.0, description="Dropout on embeddings and blocks.")
    epochs: int = Field(
        30,
        ge=1,
        description="Passes over the train split. Fixed, not early-stopped on the "
        "validation targets, so candidate lists for those targets stay leak-free.",
    )
    batch_size: int = Field(128, ge=1, description="Users per optimiser step.")
    learning_rate: float = Field(1e-3, gt=0, description="Adam learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay.")


class PrerankConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: Literal["sasrec", "cooccurrence", "popularity", "external", "sid-beam"] = Field(
        "sasrec",
        description="`sasrec`: a SASRec model trained on the train split; `cooccurrence`: item-to-item "
        "transition counts with a popularity prior; `popularity`: most popular unseen items; `external`: "
        "read the lists from `external_path` (format in gr2/prerank/external.py); `sid-beam`: a mid-trained "
        "model from an earlier run (`sid_beam_model`, `sid_beam_sid_map`) by trie-constrained beam search.",
    )
    sid_beam_model: str | None = Field(
        None, description="`sid-beam`: a mid-trained checkpoint folder (an earlier run's midtrain model artifact)."
    )
    sid_beam_sid_map: str | None = Field(
        None, description="`sid-beam`: that run's sid_map.json (the codes the checkpoint was mid-trained on)."
    )
    k: int = Field(10, ge=2, le=50, description="Candidates per example (GR2 uses 10).")
    sasrec: SasRecConfig = Field(default_factory=SasRecConfig, description="SASRec settings.")
    cooccurrence_window: int = Field(
        3, ge=1, description="`cooccurrence`: the last this many history items vote, the most recent most."
    )
    external_path: str | None = Field(
        None, description="`external`: a `candidates.tsv[.gz]` file with user_id, split, item ids."
    )
    keep_target_outside_top_k: bool = Field(
        False,
        description="Keep examples whose target is not among the K (the paper drops them, so the target "
        "is always rankable). Only for analysis; every re-ranking metric assumes False.",
    )
