import gzip
import json

import pytest

from gr2.data.artifact import read_interactions, read_summary
from gr2.data.config import DataConfig, SlatesFromSequencesConfig, SlateSplitConfig
from gr2.data.errors import DatasetError
from gr2.data.slate_dataset import load_slate_folder, time_cutoff, train_interactions
from gr2.data.slates import Slate, read_slates
from gr2.data.split import GivenTrainSplit, training_split
from gr2.data.stage import load_dataset, prepare_dataset

ITEMS = [f"i{n}" for n in range(8)]


def slate(request_id, user, timestamp, history, shown=("i4", "i5", "i6"), labels=(0, 2, 1)) -> Slate:
    return Slate(request_id, user, timestamp, tuple(history), tuple(shown), tuple(labels))


def write_folder(folder, slates, items=ITEMS):
    """A slate folder: slates.jsonl.gz and the sequence format's items.jsonl.gz."""
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(folder / "slates.jsonl.gz", "wt") as handle:
        handle.writelines(json.dumps(s.to_record()) + "\n" for s in slates)
    with gzip.open(folder / "items.jsonl.gz", "wt") as handle:
        handle.writelines(json.dumps({"item_id": i, "title": f"Item {i}"}) + "\n" for i in items)
    return folder


SLATES = [
    slate("r1", "u1", 10, ["i0", "i1"]),
    slate("r2", "u1", 20, ["i0", "i1", "i5"], ("i6", "i2", "i7"), (1, 0, 2)),
    slate("r3", "u2", 15, ["i3"]),
    slate("r4", "u2", 30, ["i3", "i4"]),
    slate("r5", "u3", 40, [], labels=(0, 0, 0)),  # no positive: dropped and counted
]


def test_unknown_items_drop_the_slate_or_the_history_item_and_are_counted(tmp_path):
    slates = [*SLATES[:4], slate("r6", "u4", 50, ["zz", "i0"]), slate("r7", "u4", 60, [], ("i4", "zz", "i6"))]
    data = load_slate_folder(write_folder(tmp_path / "shop", slates))
    assert [s.request_id for s in data.slates] == ["r1", "r2", "r3", "r4", "r6"]
    assert data.slates[-1].history == ("i0",)
    assert data.report.dropped == {"history item without metadata": 1, "slate showing an item without metadata": 1}


def test_every_slate_shows_the_same_number_of_items(tmp_path):
    folder = write_folder(tmp_path / "shop", [SLATES[0], slate("r9", "u9", 5, [], ("i4", "i5"), (1, 0))])
    with pytest.raises(DatasetError, match="field 'shown' of request 'r9' has 2 items, request 'r1' 3"):
        load_slate_folder(folder)


def test_a_bad_slate_line_is_the_readers_error_through_load_dataset(tmp_path):
    folder = write_folder(tmp_path / "shop", SLATES)
    with gzip.open(folder / "slates.jsonl.gz", "at") as handle:
        handle.write(json.dumps({**SLATES[0].to_record(), "request_id": "r8", "labels": [0, 1]}) + "\n")
    with pytest.raises(DatasetError, match=r"slates.jsonl.gz:6: field 'labels' has 2 grades for 3 shown items"):
        load_dataset(str(folder), DataConfig())


def test_time_cutoff_from_a_fraction_or_given():
    slates = [slate(f"r{t}", "u", t, []) for t in (1, 2, 2, 3, 4, 4, 4, 5, 6, 7)]
    assert time_cutoff(slates, SlateSplitConfig(test_fraction=0.2)) == 6  # 6 and 7: 2 of 10
    assert time_cutoff(slates, SlateSplitConfig(test_fraction=0.5)) == 5  # 4 is shared by 3 slates: 6 of 10
    assert time_cutoff(slates, SlateSplitConfig(test_from=3)) == 3
    with pytest.raises(DatasetError, match="time split at 1: 0 of 10 slates before it"):
        time_cutoff(slates, SlateSplitConfig(test_from=1))
    with pytest.raises(DatasetError, match="time split at 2: 2 of 2 slates before it"):
        time_cutoff([slate("a", "u", 1, []), slate("b", "u", 1, [])], SlateSplitConfig(test_fraction=0.9))


def test_train_interactions_are_histories_then_positives_in_time_order():
    train = [SLATES[1], SLATES[0], SLATES[2]]
    # u1: r1's history, its positives i5 (2) then i6 (1); r2 adds nothing new but its positive i7 (2)
    assert train_interactions(train) == {"u1": ["i0", "i1", "i5", "i6", "i7"], "u2": ["i3", "i5", "i6"]}


def test_prepare_dataset_writes_the_slate_artifact(tmp_path):
    folder = write_folder(tmp_path / "shop", SLATES)
    config = DataConfig(slate_split=SlateSplitConfig(test_from=25))
    metrics = prepare_dataset(str(folder), config, seed=0, out_dir=tmp_path / "artifact")
    assert metrics["slates"] == 4 and (metrics["train_slates"], metrics["test_slates"]) == (3, 1)
    assert metrics["test_from"] == 25 and metrics["dropped_slate_without_a_positive"] == 1
    assert metrics["multi_positive_slates"] == 4
    summary = read_summary(tmp_path / "artifact")
    assert summary["kind"] == "slates" and summary["test_from"] == 25
    assert [s.request_id for s in read_slates(tmp_path / "artifact").slates] == ["r1", "r2", "r3", "r4"]
    data = read_interactions(tmp_path / "artifact")
    split = training_split(data, max_history=50)
    assert isinstance(split, GivenTrainSplit)
    assert split.train_sequences() == {"u1": ["i0", "i1", "i5", "i6", "i7"], "u2": ["i3", "i5", "i6"]}


def test_sequences_become_slates_only_when_asked(tmp_path, make_dataset):
    sequences = {f"u{n}": [f"i{(n + step) % 9}" for step in range(6)] for n in range(30)}
    folder = make_dataset(sequences)
    assert not hasattr(load_dataset(str(folder), DataConfig()), "slates")
    made = load_dataset(str(folder), DataConfig(slates_from_sequences=SlatesFromSequencesConfig(k=4)))
    assert made.name == "toy-slates" and made.slates
    assert all(len(s.shown) == 4 and s.has_positive_and_negative for s in made.slates)
