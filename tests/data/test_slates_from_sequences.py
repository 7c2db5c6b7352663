from collections.abc import Sequence

import pytest
from pydantic import ValidationError

from gr2.data.slates import Slate, read_slates, write_slates
from gr2.data.slates_from_sequences import (
    SequenceSlatesConfig,
    fit_prefixes,
    request_points,
    slate_statistics,
    slates_from_sequences,
)
from gr2.data.split import RankingExample
from gr2.prerank.cooccurrence import CooccurrenceRetriever
from tests.office import office_sequences

SEQUENCES = {
    "u1": list("abcdefg"),
    "u2": list("cah"),
    "u3": list("bdfa"),
    "u5": list("ab"),  # too short for a request point
}
ORDER = list("efgcabdhi")
CONFIG = SequenceSlatesConfig(k=3, window=3, requests_per_user=3, min_history=2)


class FixedOrderRetriever:
    """Shows the items of a fixed order that are not in the history; records what it was asked."""

    def __init__(self, order: list[str], lists: list[list[str]] | None = None):
        self.order = order
        self.lists = lists
        self.examples: list[RankingExample] = []

    def top_k(self, examples: Sequence[RankingExample], k: int) -> list[list[str]]:
        self.examples.extend(examples)
        if self.lists is not None:
            return self.lists
        return [[item for item in self.order if item not in example.history][:k] for example in examples]


def make(config=CONFIG, sequences=SEQUENCES):
    retriever = FixedOrderRetriever(ORDER)
    return slates_from_sequences(sequences, retriever, config), retriever


def test_exact_slates():
    slates, _ = make()
    assert slates == (
        Slate("u1@4", "u1", 4, tuple("abcd"), tuple("efg"), (2, 1, 1)),
        Slate("u1@5", "u1", 5, tuple("abcde"), tuple("fgh"), (2, 1, 0)),
        Slate("u1@6", "u1", 6, tuple("abcdef"), tuple("ghi"), (2, 0, 0)),
        Slate("u2@2", "u2", 2, tuple("ca"), tuple("efg"), (0, 0, 0)),
        Slate("u3@2", "u3", 2, tuple("bd"), tuple("efg"), (0, 2, 0)),
        Slate("u3@3", "u3", 3, tuple("bdf"), tuple("egc"), (0, 0, 0)),
    )


def test_request_points():
    assert list(request_points(7, CONFIG)) == [4, 5, 6]
    assert list(request_points(4, CONFIG)) == [2, 3]  # min_history keeps p=1 out
    assert list(request_points(2, CONFIG)) == []
    assert list(request_points(7, CONFIG.model_copy(update={"requests_per_user": 1}))) == [6]


def test_history_is_cut_at_the_request():
    slates, retriever = make()
    assert len(retriever.examples) == len(slates)
    for example, slate in zip(retriever.examples, slates, strict=True):
        sequence = SEQUENCES[slate.user_id]
        assert example.history == slate.history == tuple(sequence[: slate.timestamp])
        assert example.target == sequence[slate.timestamp]
        assert not set(slate.history) & set(sequence[slate.timestamp :])


def test_window_edges():
    by_window = {w: make(CONFIG.model_copy(update={"window": w}))[0] for w in (1, 2, 3, 4)}
    u1_at_4 = {w: slates[0].labels for w, slates in by_window.items()}
    # e is bought next (grade 2), f one later, g two later: each enters as the window reaches it
    assert u1_at_4 == {1: (2, 0, 0), 2: (2, 1, 0), 3: (2, 1, 1), 4: (2, 1, 1)}
    # the window ends with the sequence: u1@6 has only g after it, u3@2 has f then a (a not shown)
    assert {w: slates[2].labels for w, slates in by_window.items()} == dict.fromkeys((1, 2, 3, 4), (2, 0, 0))
    assert by_window[1][4].labels == (0, 2, 0)


def test_fit_prefixes_hold_no_request_or_label():
    prefixes = fit_prefixes(SEQUENCES, CONFIG)
    assert prefixes == {"u1": list("abcd"), "u2": list("ca"), "u3": list("bd"), "u5": list("ab")}
    slates, _ = make()
    for slate in slates:
        assert not set(prefixes[slate.user_id]) & set(SEQUENCES[slate.user_id][slate.timestamp :])


def test_statistics():
    slates, _ = make()
    stats = slate_statistics(slates)
    assert (stats.slates, stats.no_positive, stats.no_negative, stats.multi_positive) == (6, 2, 1, 2)
    assert stats.positives_per_slate == {0: 2, 1: 2, 2: 1, 3: 1}
    assert stats.grade_counts == {0: 11, 1: 3, 2: 4}


def test_round_trip_drops_and_counts(tmp_path):
    slates, _ = make()
    write_slates(tmp_path, slates)
    load = read_slates(tmp_path)
    assert (load.dropped_no_positive, load.dropped_no_negative) == (2, 1)
    assert [slate.request_id for slate in load.slates] == ["u1@5", "u1@6", "u3@2"]
    assert load.slates == tuple(slate for slate in slates if slate.has_positive_and_negative)
    assert slate_statistics(load.slates).multi_positive == 1


@pytest.mark.parametrize("lists", [[["e", "e", "f"]], [[]]])
def test_unusable_retriever_lists_are_errors(lists):
    retriever = FixedOrderRetriever(ORDER, lists)
    with pytest.raises(ValueError, match="request u2@2"):
        slates_from_sequences({"u2": list("cah")}, retriever, CONFIG)


def test_config_is_validated():
    with pytest.raises(ValidationError):
        SequenceSlatesConfig(k=1)
    with pytest.raises(ValidationError):
        SequenceSlatesConfig(windows=3)


def test_office_users_with_the_cooccurrence_retriever():
    sequences = {str(n): sequence for n, sequence in enumerate(office_sequences(300))}
    config = SequenceSlatesConfig()
    catalog = sorted({item for sequence in sequences.values() for item in sequence})
    retriever = CooccurrenceRetriever(fit_prefixes(sequences, config), catalog, window=3)
    slates = slates_from_sequences(sequences, retriever, config)
    assert len(slates) == 2 * len(sequences)  # every Office user has at least 5 items
    for slate in slates:
        sequence = sequences[slate.user_id]
        assert len(slate.shown) == config.k
        assert not set(slate.shown) & set(slate.history)
        window = sequence[slate.timestamp : slate.timestamp + config.window]
        assert slate.positives == tuple(item for item in slate.shown if item in window)
