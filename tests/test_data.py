import gzip

import pytest

from gr2.data.artifact import read_interactions, write_interactions
from gr2.data.config import DataConfig
from gr2.data.errors import DatasetError
from gr2.data.loading import load_interactions
from gr2.data.registry import bundled_datasets, resolve_dataset
from gr2.data.split import LeaveOneOutSplit, sample_users
from gr2.data.stage import prepare_dataset


def test_loading_drops_and_counts(make_dataset):
    folder = make_dataset(
        {"u1": ["a", "b", "c", "d"], "u2": ["a", "ghost", "b", "b", "c"], "u3": ["a", "b"]},
        items=[
            {"item_id": "a", "title": "Tom &amp; Jerry", "categories": "Office > Paper"},
            {"item_id": "b", "title": "B", "categories_list": ["X", "Y"]},
            {"item_id": "c", "title": "  ", "categories": "Pens, Gel Pens"},
            {"item_id": "d", "title": "D"},
            {"item_id": "a", "title": "duplicate"},
        ],
    )
    data = load_interactions(folder)
    assert data.sequences == {"u1": ["a", "b", "c", "d"], "u2": ["a", "b", "c"]}
    assert data.items["a"].title == "Tom & Jerry"
    assert data.items["a"].categories == ("Office", "Paper")
    assert data.items["b"].categories == ("X", "Y")
    assert data.items["c"].categories == ("Pens", "Gel Pens")
    assert data.items["c"].title is None
    dropped = data.report.dropped
    assert dropped["item in sequence without metadata"] == 1
    assert dropped["duplicate item in a sequence (kept the first)"] == 1
    assert dropped["user with fewer than 3 items (too short to split)"] == 1
    assert dropped["duplicate item id in item file (kept the first)"] == 1


def test_malformed_sequence_rows_are_dropped_and_counted(tmp_path, make_dataset):
    folder = make_dataset({"u1": ["a", "b", "c"]})
    with gzip.open(folder / "sequences.tsv.gz", "at") as handle:
        handle.write("no-tab-here\n\t\n")
    data = load_interactions(folder)
    assert data.report.dropped["malformed sequence row"] == 2
    assert data.report.examples["malformed sequence row"][0] == "sequences.tsv.gz:3"


def test_bad_item_file_names_file_and_line(make_dataset):
    folder = make_dataset({"u1": ["a", "b", "c"]})
    with gzip.open(folder / "items.jsonl.gz", "at") as handle:
        handle.write("{not json\n")
    with pytest.raises(DatasetError, match=r"items.jsonl.gz:4: not valid JSON"):
        load_interactions(folder)


def test_item_without_id_names_field(make_dataset):
    folder = make_dataset({"u1": ["a", "b", "c"]}, items=[{"title": "no id"}])
    with pytest.raises(DatasetError, match=r"items.jsonl.gz:1: missing field 'item_id'"):
        load_interactions(folder)


def test_wrong_header_and_missing_files(tmp_path, make_dataset):
    folder = make_dataset({"u1": ["a", "b", "c"]})
    with gzip.open(folder / "sequences.tsv.gz", "wt") as handle:
        handle.write("user\titems\nu1\ta b c\n")
    with pytest.raises(DatasetError, match=r"sequences.tsv.gz:1: header"):
        load_interactions(folder)
    (folder / "items.jsonl.gz").unlink()
    with pytest.raises(DatasetError, match="no item metadata file"):
        load_interactions(folder)
    with pytest.raises(DatasetError, match="not found"):
        load_interactions(tmp_path / "absent")


def test_not_gzip_is_a_clear_error(make_dataset):
    folder = make_dataset({"u1": ["a", "b", "c"]})
    (folder / "sequences.tsv.gz").write_bytes(b"plain text, not gzip")
    with pytest.raises(DatasetError, match="sequences.tsv.gz: cannot be read"):
        load_interactions(folder)


def test_leave_one_out_split_and_history_cap():
    split = LeaveOneOutSplit({"u": ["a", "b", "c", "d", "e"]}, max_history=2)
    assert split.train_sequences() == {"u": ["a", "b", "c"]}
    (valid,) = split.validation_examples()
    assert valid.history == ("b", "c") and valid.target == "d"
    (test,) = split.test_examples()
    assert test.history == ("c", "d") and test.target == "e"


def test_reranker_examples_partition_users_deterministically():
    sequences = {f"u{i}": ["a", "b", "c", "d"] for i in range(200)}
    split = LeaveOneOutSplit(sequences, max_history=50)
    first = split.reranker_examples(0.25, seed=3)
    again = split.reranker_examples(0.25, seed=3)
    assert [e.user_id for e in first["valid"]] == [e.user_id for e in again["valid"]]
    train_users = {e.user_id for e in first["train"]}
    valid_users = {e.user_id for e in first["valid"]}
    assert not train_users & valid_users and len(train_users | valid_users) == 200
    assert 25 < len(valid_users) < 75
    assert len(first["test"]) == 200 and all(e.target == "d" for e in first["test"])
    assert all(e.target == "c" for e in first["train"])


def test_sample_users_is_seeded_and_order_independent():
    sequences = {f"u{i}": ["a", "b", "c"] for i in range(100)}
    reversed_order = dict(reversed(list(sequences.items())))
    assert set(sample_users(sequences, 10, 1)) == set(sample_users(reversed_order, 10, 1))
    assert set(sample_users(sequences, 10, 1)) != set(sample_users(sequences, 10, 2))
    assert sample_users(sequences, None, 1) is sequences


def test_artifact_round_trip(tmp_path, make_dataset):
    data = load_interactions(make_dataset({"u1": ["a", "b", "c"], "u2": ["c", "b", "a"]}))
    summary = write_interactions(data, tmp_path / "artifact")
    again = read_interactions(tmp_path / "artifact")
    assert again.sequences == data.sequences and again.items == data.items
    assert len(summary["content_sha256"]) == 64


def test_bundled_datasets_resolve():
    assert bundled_datasets() == ["amazon-beauty-2014", "amazon-office-2014", "amazon-sports-2014"]
    assert resolve_dataset("amazon-office-2014").name == "amazon-office-2014"
    with pytest.raises(DatasetError, match="bundled: amazon-beauty-2014"):
        resolve_dataset("no-such-dataset")


def test_prepare_dataset_on_bundled_office(tmp_path):
    metrics = prepare_dataset("amazon-office-2014", DataConfig(), seed=0, out_dir=tmp_path)
    assert metrics["users"] == 4905
    assert metrics["items"] == 2420
    assert metrics["interactions"] == 53258
    assert metrics["train_interactions"] == 53258 - 2 * 4905
