import gzip

import pytest
import torch

from gr2.data.errors import DatasetError
from gr2.data.split import LeaveOneOutSplit, RankingExample
from gr2.prerank.candidates import build_examples, read_examples, write_examples
from gr2.prerank.config import SasRecConfig
from gr2.prerank.cooccurrence import CooccurrenceRetriever, PopularityRetriever
from gr2.prerank.external import ExternalRetriever, read_external_candidates
from gr2.prerank.sasrec import train_sasrec

CATALOG = [f"i{n}" for n in range(12)]


def cyclic_sequences(users: int = 60) -> dict[str, list[str]]:
    """Every user walks the catalogue in a fixed cycle from a different start: next item is learnable."""
    return {f"u{u}": [CATALOG[(u + step) % 12] for step in range(8)] for u in range(users)}


def test_sasrec_learns_a_deterministic_successor():
    torch.set_num_threads(1)
    config = SasRecConfig(hidden_size=16, epochs=40, batch_size=32, dropout=0.0, learning_rate=5e-3)
    retriever, losses = train_sasrec(cyclic_sequences(), CATALOG, max_length=8, config=config, seed=0)
    assert losses[-1] < losses[0] / 3
    history = ("i3", "i4", "i5")
    (top,) = retriever.top_k([RankingExample("x", history, "i6")], k=3)
    assert top[0] == "i6"
    assert not set(top) & set(history)


def test_sasrec_is_deterministic_for_a_seed():
    config = SasRecConfig(hidden_size=8, epochs=2, batch_size=16)
    _, first = train_sasrec(cyclic_sequences(20), CATALOG, 8, config, seed=5)
    _, second = train_sasrec(cyclic_sequences(20), CATALOG, 8, config, seed=5)
    assert first == second


def test_cooccurrence_prefers_observed_successors_and_fills_by_popularity():
    train = {"u1": ["a", "b", "c"], "u2": ["a", "b", "d"], "u3": ["x", "c"]}
    retriever = CooccurrenceRetriever(train, ["a", "b", "c", "d", "x"], window=1)
    (top,) = retriever.top_k([RankingExample("q", ("a",), "?")], k=4)
    assert top[0] == "b"
    assert "a" not in top and len(top) == 4


def test_popularity_excludes_history():
    train = {"u1": ["a", "b"], "u2": ["a", "c"]}
    (top,) = PopularityRetriever(train, ["a", "b", "c"]).top_k([RankingExample("q", ("a",), "?")], k=2)
    assert top == ["b", "c"]


def test_build_examples_keeps_covered_targets_and_reports_coverage():
    examples = [RankingExample("u1", ("a",), "b"), RankingExample("u2", ("a",), "zz")]
    retriever = PopularityRetriever({"u": ["b", "c"]}, ["a", "b", "c"])
    built = build_examples("test", examples, retriever, k=2, keep_all=False)
    assert [e.user_id for e in built.kept] == ["u1"]
    assert built.coverage == 0.5
    assert built.kept[0].target_position == 1


def test_examples_round_trip(tmp_path):
    retriever = PopularityRetriever({"u": ["b", "c"]}, ["a", "b", "c"])
    built = build_examples("valid", [RankingExample("u1", ("a",), "c")], retriever, k=2, keep_all=False)
    write_examples(built.kept, tmp_path)
    assert read_examples(tmp_path) == built.kept
    assert read_examples(tmp_path, split="test") == []


def test_no_pre_ranker_trains_on_a_reranking_target():
    sequences = {f"u{i}": [f"i{i}", f"i{i + 1}", f"i{i + 2}", f"i{i + 3}"] for i in range(20)}
    split = LeaveOneOutSplit(sequences, max_history=50)
    seen_in_training = {(u, i) for u, seq in split.train_sequences().items() for i in seq}
    for name, examples in split.reranker_examples(0.2, seed=0).items():
        assert all((e.user_id, e.target) not in seen_in_training for e in examples), name


def write_candidates(path, rows):
    with gzip.open(path, "wt") as handle:
        handle.write("user_id\tsplit\titem_ids\n" + "".join(rows))


def test_external_candidates(tmp_path):
    path = tmp_path / "candidates.tsv.gz"
    write_candidates(path, ["u1\ttest\tb a c\n"])
    lists = read_external_candidates(path, {"a", "b", "c"})
    (top,) = ExternalRetriever(lists, "test").top_k([RankingExample("u1", (), "a")], k=2)
    assert top == ["b", "a"]
    with pytest.raises(DatasetError, match="no 'valid' list for user 'u1'"):
        ExternalRetriever(lists, "valid").top_k([RankingExample("u1", (), "a")], k=2)


def test_external_candidates_errors_name_file_and_line(tmp_path):
    path = tmp_path / "candidates.tsv.gz"
    write_candidates(path, ["u1\ttest\ta b\n", "u2\ttest\ta unknown\n"])
    with pytest.raises(DatasetError, match=r"candidates.tsv.gz:3: item 'unknown' is not in the catalogue"):
        read_external_candidates(path, {"a", "b"})
    write_candidates(path, ["u1\tholdout\ta b\n"])
    with pytest.raises(DatasetError, match=r":2: expected user_id, split"):
        read_external_candidates(path, {"a", "b"})


def test_primary_target_is_the_highest_grade_ties_to_the_first_shown():
    from gr2.prerank.candidates import primary_target

    assert primary_target(("a", "b", "c", "d"), (0, 1, 2, 2)) == "c"
    assert primary_target(("a", "b"), (1, 0)) == "a"
    with pytest.raises(ValueError, match="without a positive"):
        primary_target(("a", "b"), (0, 0))


def test_slate_examples_keep_the_shown_order_and_grades_and_split_by_time(tmp_path):
    from gr2.data.slates import Slate
    from gr2.prerank.candidates import slate_examples

    slates = [
        Slate(f"r{n}", f"u{n}", 10 * n, tuple(f"h{i}" for i in range(n)), ("a", "b", "c"), (0, 1, 2)) for n in range(40)
    ]
    examples = slate_examples(slates, test_from=300, valid_fraction=0.3, seed=0, max_history=2)
    assert [e.split for e in examples].count("test") == 10
    assert {e.split for e in examples[:30]} == {"train", "valid"}
    first = examples[5]
    assert first.candidates == ("a", "b", "c") and first.grades == (0, 1, 2) and first.target == "c"
    assert first.history == ("h3", "h4") and first.target_position == 3
    write_examples(examples, tmp_path)
    assert read_examples(tmp_path) == examples


def test_examples_without_grades_are_written_as_before(tmp_path):
    from gr2.prerank.candidates import RerankExample

    example = RerankExample("test", "u", ("x",), ("a", "b"), "b")
    write_examples([example], tmp_path)
    with gzip.open(tmp_path / "examples.jsonl.gz", "rt") as handle:
        assert "grades" not in handle.read()
    assert read_examples(tmp_path) == [example] and example.grades_by_item is None


def test_reordered_moves_the_grades_with_their_items():
    from gr2.prerank.candidates import RerankExample

    example = RerankExample("test", "u", (), ("a", "b", "c"), "b", (0, 2, 1))
    moved = example.reordered(("c", "a", "b"))
    assert moved.grades == (1, 0, 2) and moved.grades_by_item == example.grades_by_item
    assert example.reordered(("b", "a", "c")).target == "b"
    assert RerankExample("test", "u", (), ("a", "b"), "b").reordered(("b", "a")).grades is None
    with pytest.raises(ValueError, match="own candidates"):
        example.reordered(("a", "b", "x"))
