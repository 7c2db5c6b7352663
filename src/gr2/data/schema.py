"""The normalised in-memory form of a dataset: items with their text, and users' sequences."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Item:
    """One catalogue item. Text fields are already HTML-unescaped and stripped; absent ones are None."""

    item_id: str
    title: str | None = None
    brand: str | None = None
    categories: tuple[str, ...] = ()
    description: str | None = None
    text_id: str | None = None

    @property
    def category_path(self) -> str:
        return " > ".join(self.categories)

    @property
    def display_title(self) -> str:
        """The best short name the item has: its title, else its generated text id, else its id."""
        return self.title or self.text_id or self.item_id


@dataclass
class LoadReport:
    """What loading kept and dropped, with counts, so nothing is dropped silently."""

    dropped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[str]] = field(default_factory=dict)

    def drop(self, reason: str, example: str, count: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count
        samples = self.examples.setdefault(reason, [])
        if len(samples) < 3:
            samples.append(example)


@dataclass
class Interactions:
    """A validated dataset: the catalogue and each user's items, oldest first. For `kind` "slates" (the data
    stage's artifact of a slate dataset) the sequences are the train interactions, with no held-out items."""

    name: str
    items: dict[str, Item]
    sequences: dict[str, list[str]]
    report: LoadReport = field(default_factory=LoadReport)
    kind: Literal["sequences", "slates"] = "sequences"
