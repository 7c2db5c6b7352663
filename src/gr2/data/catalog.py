"""Statistics of the bundled datasets, for `gr2 datasets`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from gr2.data.loading import load_interactions
from gr2.data.registry import bundled_datasets, data_root

TEXT_FIELDS = ("title", "brand", "categories", "description", "text_id")


@dataclass
class DatasetSummary:
    name: str
    users: int
    items: int
    interactions: int
    mean_length: float
    text_fields: str
    citation: str


def citation_line(provenance: str) -> str:
    """The sentence of PROVENANCE.md that says whom to cite."""
    match = re.search(r"Cite (.+?\d{4})\.", provenance)
    return match.group(1) if match else "see PROVENANCE.md"


def summarise(name: str) -> DatasetSummary:
    folder = data_root() / name
    data = load_interactions(folder)
    interactions = sum(len(seq) for seq in data.sequences.values())
    present = [f for f in TEXT_FIELDS if any(getattr(item, f) for item in data.items.values())]
    return DatasetSummary(
        name=name,
        users=len(data.sequences),
        items=len(data.items),
        interactions=interactions,
        mean_length=interactions / len(data.sequences),
        text_fields=", ".join(present),
        citation=citation_line((folder / "PROVENANCE.md").read_text()),
    )


def dataset_summaries() -> list[DatasetSummary]:
    return [summarise(name) for name in bundled_datasets()]
