import gzip
import json

import pytest

from gr2.data.errors import DatasetError
from gr2.data.slates import Slate, read_slates, split_by_time, write_slates


def record(request_id="r1", **fields) -> dict:
    """A valid slate line: two positives (b grade 2, d grade 1) and two negatives."""
    base = {
        "request_id": request_id,
        "user_id": "u1",
        "timestamp": 100,
        "history": ["x", "y"],
        "shown": ["a", "b", "c", "d"],
        "labels": [0, 2, 0, 1],
    }
    return {**base, **fields}


def write_lines(folder, lines: list[str], name="slates.jsonl.gz"):
    folder.mkdir(parents=True, exist_ok=True)
    opener = gzip.open if name.endswith(".gz") else open
    with opener(folder / name, "wt", encoding="utf-8") as handle:
        handle.writelines(line + "\n" for line in lines)
    return folder


def write_records(folder, records: list[dict]):
    return write_lines(folder, [json.dumps(r) for r in records])


def test_slate_properties():
    slate = Slate("r1", "u1", 100, ("x",), ("a", "b", "c", "d"), (0, 2, 0, 1))
    assert slate.positives == ("b", "d")
    assert slate.negatives == ("a", "c")
    assert slate.grades_by_item == {"a": 0, "b": 2, "c": 0, "d": 1}
    assert slate.has_positive_and_negative
    assert not Slate("r2", "u1", 100, (), ("a", "b"), (1, 3)).has_positive_and_negative
    assert not Slate("r3", "u1", 100, (), ("a", "b"), (0, 0)).has_positive_and_negative


def test_write_then_read_round_trip(tmp_path):
    slates = [
        Slate("r1", "u1", 100, ("x", "y"), ("a", "b", "c"), (0, 2, 1)),
        Slate("r2", "u2", 50, (), ("c", "a"), (0, 7)),
    ]
    path = write_slates(tmp_path / "out", slates)
    assert path == tmp_path / "out" / "slates.jsonl.gz"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["slates.jsonl.gz"]  # no temporary file left
    load = read_slates(tmp_path / "out")
    assert load.slates == tuple(slates)
    assert (load.dropped_no_positive, load.dropped_no_negative) == (0, 0)
    first = json.loads(gzip.decompress(path.read_bytes()).decode().splitlines()[0])
    assert first == record(history=["x", "y"], shown=["a", "b", "c"], labels=[0, 2, 1])


def test_plain_jsonl_blank_lines_and_stripped_ids(tmp_path):
    lines = [json.dumps(record(shown=[" a", "b ", "c", "d"])), "", "  "]
    load = read_slates(write_lines(tmp_path / "plain", lines, name="slates.jsonl"))
    assert [s.shown for s in load.slates] == [("a", "b", "c", "d")]


def test_no_positive_and_no_negative_are_dropped_and_counted(tmp_path):
    records = [
        record("keep1"),
        record("nopos1", labels=[0, 0, 0, 0]),
        record("nopos2", labels=[0, 0, 0, 0]),
        record("noneg", labels=[1, 2, 1, 1]),
        record("keep2", labels=[3, 0, 0, 0]),
    ]
    load = read_slates(write_records(tmp_path / "d", records))
    assert [s.request_id for s in load.slates] == ["keep1", "keep2"]
    assert load.dropped_no_positive == 2
    assert load.dropped_no_negative == 1


def test_a_file_with_no_usable_slate_is_an_error(tmp_path):
    folder = write_records(tmp_path / "d", [record("a", labels=[0, 0, 0, 0]), record("b", labels=[1, 1, 1, 1])])
    with pytest.raises(DatasetError, match=r"no slate has both a positive and a negative \(1 without a positive, 1"):
        read_slates(folder)
    with pytest.raises(DatasetError, match=r"slates.jsonl.gz: no slates"):
        read_slates(write_lines(tmp_path / "empty", [""]))


def test_missing_folder_and_file(tmp_path):
    with pytest.raises(DatasetError, match="dataset folder not found"):
        read_slates(tmp_path / "absent")
    (tmp_path / "bare").mkdir()
    with pytest.raises(DatasetError, match="no slates file; expected one of slates.jsonl.gz, slates.jsonl"):
        read_slates(tmp_path / "bare")


@pytest.mark.parametrize("field", ["request_id", "user_id", "timestamp", "history", "shown", "labels"])
def test_missing_field_names_file_line_and_field(tmp_path, field):
    bad = record("r2")
    del bad[field]
    folder = write_records(tmp_path / "d", [record("r1"), bad])
    with pytest.raises(DatasetError, match=rf"slates.jsonl.gz:2: missing field '{field}'$"):
        read_slates(folder)


def test_bad_json_and_non_object_name_file_and_line(tmp_path):
    folder = write_lines(tmp_path / "d", [json.dumps(record("r1")), "{not json"])
    with pytest.raises(DatasetError, match=r"slates.jsonl.gz:2: not valid JSON"):
        read_slates(folder)
    folder = write_lines(tmp_path / "e", ["[1, 2]"])
    with pytest.raises(DatasetError, match=r"slates.jsonl.gz:1: not a JSON object"):
        read_slates(folder)


@pytest.mark.parametrize(
    ("fields", "field", "problem"),
    [
        ({"labels": [0, 1, 0]}, "labels", "has 3 grades for 4 shown items"),
        ({"labels": [0, -1, 0, 1]}, "labels", "entry 1 must be a non-negative integer, found -1"),
        ({"labels": [0, 1.5, 0, 1]}, "labels", "entry 1 must be a non-negative integer, found 1.5"),
        ({"labels": [0, "1", 0, 1]}, "labels", "entry 1 must be a non-negative integer, found '1'"),
        ({"labels": [0, True, 0, 1]}, "labels", "entry 1 must be a non-negative integer, found True"),
        ({"labels": "0 1 0 1"}, "labels", "must be a list of grades, found str"),
        ({"shown": ["a", "b", "a", "d"]}, "shown", "lists item 'a' twice"),
        ({"shown": [], "labels": []}, "shown", "is empty"),
        ({"shown": ["a", 2, "c", "d"]}, "shown", "entry 1 must be a non-empty item id string, found 2"),
        ({"history": ["x", {"item_id": "y"}]}, "history", "entry 1 must be a non-empty item id string"),
        ({"history": ["x", ""]}, "history", "entry 1 must be a non-empty item id string, found ''"),
        ({"history": "x y"}, "history", "must be a list of item ids, found str"),
        ({"timestamp": "2024-01-01"}, "timestamp", "must be integer seconds since the epoch"),
        ({"timestamp": 1.5}, "timestamp", "must be integer seconds since the epoch, found 1.5"),
        ({"user_id": ""}, "user_id", "must be a non-empty string, found ''"),
        ({"request_id": 7}, "request_id", "must be a non-empty string, found 7"),
    ],
)
def test_each_bad_field_names_file_line_and_field(tmp_path, fields, field, problem):
    folder = write_records(tmp_path / "d", [record("r1"), record("r2"), {**record("r3"), **fields}])
    with pytest.raises(DatasetError) as raised:
        read_slates(folder)
    assert str(raised.value).startswith(f"{folder / 'slates.jsonl.gz'}:3: field '{field}' {problem}")


def test_duplicate_request_id_names_both_lines(tmp_path):
    folder = write_records(tmp_path / "d", [record("r1"), record("r2"), record("r1")])
    with pytest.raises(DatasetError, match=r"slates.jsonl.gz:3: field 'request_id' 'r1' already used on line 1$"):
        read_slates(folder)


def test_split_by_time_train_strictly_before_the_cutoff():
    def at(request_id, timestamp):
        return Slate(request_id, "u", timestamp, (), ("a", "b"), (1, 0))

    slates = [at("late", 300), at("early", 100), at("cut", 200), at("just-before", 199)]
    train, test = split_by_time(slates, cutoff=200)
    assert [s.request_id for s in train] == ["early", "just-before"]
    assert [s.request_id for s in test] == ["late", "cut"]
    assert split_by_time(iter(slates), cutoff=50) == ((), tuple(slates))
