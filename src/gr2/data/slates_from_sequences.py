"""Slates made from a sequence dataset: what a pre-ranker would have shown a user at a point of their
sequence, labelled by what the user bought next.

The bundled sequences carry no timestamps (only the order of a user's items), so time here is the
position in the user's own sequence: a request at position p comes after the user's items 0..p-1 (the
history) and before item p. Per user, the request points are the last `requests_per_user` positions p
with `min_history` <= p <= len - 1 (so the item bought next exists); users with no such position get no
slate.

For each request the retriever ranks the catalogue for the history s[:p] and its top `k` is the shown
slate, in the retriever's order. The label window is the next `window` items, s[p:p + window] (shorter at
the end of the sequence). A shown item's grade is 2 if it is s[p] (bought next), 1 if it is elsewhere in
the window, 0 otherwise (also when the user bought it after the window). The slate's `timestamp` is p and
its `request_id` is `"{user_id}@{p}"`.

Leakage: the history is cut at p, so it holds nothing from the request on. A retriever fitted on
`fit_prefixes` has seen, for every user, only the items before that user's first request point (and the
whole sequence of users without a request point), so no interaction at or after any request point, hence
no label of any slate. Without timestamps the order across users is unknown: another user's prefix may
be later in calendar time than a request it helps to rank.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from gr2.data.slates import Slate
from gr2.data.split import RankingExample
from gr2.prerank.base import Retriever

NEXT_ITEM_GRADE = 2
LATER_IN_WINDOW_GRADE = 1


class SequenceSlatesConfig(BaseModel):
    """How sequences become slates: slate size, label window, request points per user, minimum history."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(10, ge=2, le=50, description="Shown items per slate: the retriever's top k for the history.")
    window: int = Field(
        3,
        ge=1,
        description="The next this many items of the user, from the request on, label the slate: the next "
        "item grade 2, the others grade 1; shown items outside the window grade 0.",
    )
    requests_per_user: int = Field(
        2, ge=1, description="Request points per user: the last this many positions with enough history."
    )
    min_history: int = Field(3, ge=1, description="A request point has at least this many items before it.")


def request_points(length: int, config: SequenceSlatesConfig) -> range:
    """The request positions p of a sequence of `length` items, ascending: the last `requests_per_user`
    of min_history..length-1 (empty when length <= min_history)."""
    first = max(config.min_history, length - config.requests_per_user)
    return range(first, length)


def fit_prefixes(sequences: dict[str, list[str]], config: SequenceSlatesConfig) -> dict[str, list[str]]:
    """Each user's items before their first request point (the whole sequence of a user without one): the
    interactions a retriever may be fitted on without seeing any slate's request or labels."""
    prefixes = {}
    for user, sequence in sequences.items():
        points = request_points(len(sequence), config)
        prefixes[user] = list(sequence[: points.start] if points else sequence)
    return prefixes


def window_grades(future: Iterable[str]) -> dict[str, int]:
    """Grades of the items in a label window, oldest first: the first grade 2, the rest grade 1."""
    return {item: NEXT_ITEM_GRADE if offset == 0 else LATER_IN_WINDOW_GRADE for offset, item in enumerate(future)}


def check_shown(request_id: str, shown: list[str]) -> None:
    """A slate needs at least one shown item and no item twice (the slate format refuses both)."""
    if not shown:
        raise ValueError(f"request {request_id}: the retriever returned no item")
    if len(set(shown)) != len(shown):
        raise ValueError(f"request {request_id}: the retriever returned an item twice: {shown}")


def slates_from_sequences(
    sequences: dict[str, list[str]], retriever: Retriever, config: SequenceSlatesConfig
) -> tuple[Slate, ...]:
    """Every request point's slate, users in the given order and their requests by position; slates
    without a positive or a negative are kept (`read_slates` drops and counts them). The retriever gets
    the history cut at the request and, as target, the item bought next, which it must not look at."""
    requests = [
        (user, point, sequence)
        for user, sequence in sequences.items()
        for point in request_points(len(sequence), config)
    ]
    examples = [RankingExample(user, tuple(sequence[:point]), sequence[point]) for user, point, sequence in requests]
    lists = retriever.top_k(examples, config.k)
    slates = []
    for (user, point, sequence), shown in zip(requests, lists, strict=True):
        request_id = f"{user}@{point}"
        check_shown(request_id, shown)
        grades = window_grades(sequence[point : point + config.window])
        labels = tuple(grades.get(item, 0) for item in shown)
        slates.append(Slate(request_id, user, point, tuple(sequence[:point]), tuple(shown), labels))
    return tuple(slates)


@dataclass(frozen=True)
class SlateStatistics:
    """Counts over a set of slates: how many, how many lack a positive or a negative, how many have more
    than one positive, slates by number of positives, and shown items by grade."""

    slates: int
    no_positive: int
    no_negative: int
    multi_positive: int
    positives_per_slate: dict[int, int]
    grade_counts: dict[int, int]


def slate_statistics(slates: Iterable[Slate]) -> SlateStatistics:
    """The `SlateStatistics` of the given slates (dictionaries sorted by key)."""
    slates = tuple(slates)
    positives = Counter(len(slate.positives) for slate in slates)
    grades = Counter(grade for slate in slates for grade in slate.labels)
    return SlateStatistics(
        slates=len(slates),
        no_positive=positives[0],
        no_negative=sum(1 for slate in slates if not slate.negatives),
        multi_positive=sum(count for number, count in positives.items() if number > 1),
        positives_per_slate=dict(sorted(positives.items())),
        grade_counts=dict(sorted(grades.items())),
    )
