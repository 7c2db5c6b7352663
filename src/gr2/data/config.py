"""Configuration of the data stage."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from gr2.data.slates_from_sequences import SequenceSlatesConfig


class SlateSplitConfig(BaseModel):
    """The time split of a slate dataset (`gr2.data.slates.split_by_time`): train before the cutoff, test at
    or after it."""

    model_config = ConfigDict(extra="forbid")

    test_from: int | None = Field(
        None,
        description="The cutoff: slates with a timestamp at or after it are test, earlier ones train (and "
        "validation, see rerank_valid_fraction). Seconds since the epoch; for slates made from sequences, the "
        "position in the user's sequence. None: the earliest timestamp that leaves at most test_fraction of "
        "the slates for test.",
    )
    test_fraction: float = Field(
        0.2, gt=0.0, lt=1.0, description="With test_from None: at most this share of the slates is test."
    )


class SlatesFromSequencesConfig(SequenceSlatesConfig):
    """Slates made from a sequence dataset (`gr2.data.slates_from_sequences`): a co-occurrence pre-ranker
    fitted on each user's items before their first request point plays the logging system."""

    cooccurrence_window: int = Field(
        3, ge=1, description="The logging pre-ranker's window: the last this many history items vote."
    )


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
        description="Share of users whose validation-target example (for slates: whose train slates) is held "
        "out to validate the re-ranker (SFT/RL model selection) instead of training it.",
    )
    slate_split: SlateSplitConfig = Field(
        default_factory=SlateSplitConfig, description="Slate datasets: the time split into train and test."
    )
    slates_from_sequences: SlatesFromSequencesConfig | None = Field(
        None,
        description="Turn a sequence dataset into slates before anything else (docs/slates.md); None: run on "
        "the dataset as it is. A slate folder (one with slates.jsonl[.gz]) is always read as slates.",
    )
