"""The slate dataset format: logged requests, the K items each showed, and a graded label per shown item.

A folder holds `slates.jsonl.gz` (or `slates.jsonl`), one JSON object per request:
`{"request_id": "r1", "user_id": "u1", "timestamp": 1700000000, "history": ["i1", "i2"],
"shown": ["i3", "i4", "i5"], "labels": [0, 2, 1]}`. `timestamp` is integer seconds since the epoch (UTC),
`history` the user's item ids before the request (oldest first; cutting it at the request time is the
producer's job), `shown` the items in shown order and `labels` one non-negative integer grade per shown
item (0 none, 1 click, 2 conversion, or any larger grade). Other fields are ignored.

A line that breaks these rules raises `DatasetError` naming the file, line and field. Requests without a
positive (grade > 0) or without a negative (grade 0) cannot rank anything and are dropped and counted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gr2.data.artifact import gzip_text
from gr2.data.errors import DatasetError
from gr2.data.loading import find_file, read_lines
from gr2.storage.atomic import write_bytes_atomic

SLATE_FILE = "slates.jsonl.gz"
SLATE_FILES = (SLATE_FILE, "slates.jsonl")
SLATE_FIELDS = ("request_id", "user_id", "timestamp", "history", "shown", "labels")


@dataclass(frozen=True)
class Slate:
    """One logged request: who, when, what the user had before, what was shown (in order) and each shown
    item's grade (labels[i] is the grade of shown[i])."""

    request_id: str
    user_id: str
    timestamp: int
    history: tuple[str, ...]
    shown: tuple[str, ...]
    labels: tuple[int, ...]

    @property
    def grades_by_item(self) -> dict[str, int]:
        """Each shown item's grade."""
        return dict(zip(self.shown, self.labels, strict=True))

    @property
    def positives(self) -> tuple[str, ...]:
        """Shown items with a grade above 0, in shown order."""
        return tuple(item for item, grade in zip(self.shown, self.labels, strict=True) if grade > 0)

    @property
    def negatives(self) -> tuple[str, ...]:
        """Shown items with grade 0, in shown order."""
        return tuple(item for item, grade in zip(self.shown, self.labels, strict=True) if grade == 0)

    @property
    def has_positive_and_negative(self) -> bool:
        """Whether the slate has at least one pair to order (a positive and a negative)."""
        return any(grade > 0 for grade in self.labels) and any(grade == 0 for grade in self.labels)

    def to_record(self) -> dict:
        """The slate as one JSON object of the file format."""
        return {
            "request_id": self.request_id,
            "user_id": self.user_id,
            "timestamp": self.timestamp,
            "history": list(self.history),
            "shown": list(self.shown),
            "labels": list(self.labels),
        }


@dataclass(frozen=True)
class SlateLoad:
    """The usable slates of a file, in file order, and how many were dropped for lacking a positive or a
    negative."""

    slates: tuple[Slate, ...]
    dropped_no_positive: int
    dropped_no_negative: int


def field_error(where: str, name: str, problem: str) -> DatasetError:
    return DatasetError(f"{where}: field '{name}' {problem}")


def is_integer(value: object) -> bool:
    """A JSON integer (true/false are not integers here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def parse_text(record: dict, name: str, where: str) -> str:
    value = record[name]
    if not isinstance(value, str) or not value.strip():
        raise field_error(where, name, f"must be a non-empty string, found {value!r}")
    return value.strip()


def parse_timestamp(record: dict, where: str) -> int:
    value = record["timestamp"]
    if not is_integer(value):
        raise field_error(where, "timestamp", f"must be integer seconds since the epoch, found {value!r}")
    return value


def parse_item_ids(record: dict, name: str, where: str) -> tuple[str, ...]:
    value = record[name]
    if not isinstance(value, list):
        raise field_error(where, name, f"must be a list of item ids, found {type(value).__name__}")
    for position, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise field_error(where, name, f"entry {position} must be a non-empty item id string, found {item!r}")
    return tuple(item.strip() for item in value)


def parse_shown(record: dict, where: str) -> tuple[str, ...]:
    shown = parse_item_ids(record, "shown", where)
    if not shown:
        raise field_error(where, "shown", "is empty")
    seen: set[str] = set()
    for item in shown:
        if item in seen:
            raise field_error(where, "shown", f"lists item {item!r} twice")
        seen.add(item)
    return shown


def parse_labels(record: dict, shown: tuple[str, ...], where: str) -> tuple[int, ...]:
    labels = record["labels"]
    if not isinstance(labels, list):
        raise field_error(where, "labels", f"must be a list of grades, found {type(labels).__name__}")
    if len(labels) != len(shown):
        raise field_error(where, "labels", f"has {len(labels)} grades for {len(shown)} shown items")
    for position, grade in enumerate(labels):
        if not is_integer(grade) or grade < 0:
            raise field_error(where, "labels", f"entry {position} must be a non-negative integer, found {grade!r}")
    return tuple(labels)


def parse_slate(line: str, where: str) -> Slate:
    """One validated slate from one line of the file; `where` is `path:line` for the error."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise DatasetError(f"{where}: not valid JSON ({error.msg})") from error
    if not isinstance(record, dict):
        raise DatasetError(f"{where}: not a JSON object")
    for name in SLATE_FIELDS:
        if name not in record:
            raise DatasetError(f"{where}: missing field '{name}'")
    shown = parse_shown(record, where)
    return Slate(
        request_id=parse_text(record, "request_id", where),
        user_id=parse_text(record, "user_id", where),
        timestamp=parse_timestamp(record, where),
        history=parse_item_ids(record, "history", where),
        shown=shown,
        labels=parse_labels(record, shown, where),
    )


def parse_slate_file(path: Path) -> list[Slate]:
    """Every slate of a file, in file order, blank lines skipped; a request id may appear only once."""
    slates: list[Slate] = []
    first_line: dict[str, int] = {}
    for number, line in read_lines(path):
        if not line.strip():
            continue
        slate = parse_slate(line, f"{path}:{number}")
        if slate.request_id in first_line:
            problem = f"{slate.request_id!r} already used on line {first_line[slate.request_id]}"
            raise field_error(f"{path}:{number}", "request_id", problem)
        first_line[slate.request_id] = number
        slates.append(slate)
    return slates


def keep_rankable(slates: list[Slate]) -> SlateLoad:
    """The slates with a positive and a negative, and the counts of those without."""
    no_positive = sum(1 for slate in slates if not slate.positives)
    no_negative = sum(1 for slate in slates if not slate.negatives)
    kept = tuple(slate for slate in slates if slate.has_positive_and_negative)
    return SlateLoad(kept, dropped_no_positive=no_positive, dropped_no_negative=no_negative)


def read_slates(folder: str | Path) -> SlateLoad:
    """Read and validate a slate folder; slates without a positive or a negative are dropped and counted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: dataset folder not found")
    path = find_file(folder, SLATE_FILES, "slates")
    slates = parse_slate_file(path)
    if not slates:
        raise DatasetError(f"{path}: no slates")
    load = keep_rankable(slates)
    if not load.slates:
        raise DatasetError(
            f"{path}: no slate has both a positive and a negative "
            f"({load.dropped_no_positive} without a positive, {load.dropped_no_negative} without a negative)"
        )
    return load


def split_by_time(slates: Iterable[Slate], cutoff: int) -> tuple[tuple[Slate, ...], tuple[Slate, ...]]:
    """(train, test): slates strictly before `cutoff` (seconds since the epoch) and those at or after it,
    each in the given order."""
    slates = tuple(slates)
    train = tuple(slate for slate in slates if slate.timestamp < cutoff)
    test = tuple(slate for slate in slates if slate.timestamp >= cutoff)
    return train, test


def write_slates(folder: str | Path, slates: Iterable[Slate]) -> Path:
    """Write `slates.jsonl.gz` in `folder` atomically (a reader sees the old file or the whole new one);
    returns its path. Slates are written as given, without dropping any."""
    path = Path(folder) / SLATE_FILE
    text = "".join(json.dumps(slate.to_record(), ensure_ascii=False) + "\n" for slate in slates)
    write_bytes_atomic(path, gzip_text(text))
    return path
