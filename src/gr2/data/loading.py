"""Load a dataset folder in the normalised format, validating as it goes.

A folder holds `sequences.tsv[.gz]` (header `user_id<TAB>item_ids`, item ids space-separated, oldest
first) and `items.jsonl[.gz]` or `items_textid.jsonl[.gz]` (one JSON object per line with `item_id`).
Rows that cannot be used are dropped and counted in the `LoadReport`; a file that cannot be read at all
raises `DatasetError` naming the file and line.
"""

from __future__ import annotations

import gzip
import html
import json
from collections.abc import Iterator
from pathlib import Path

from gr2.data.errors import DatasetError
from gr2.data.schema import Interactions, Item, LoadReport

SEQUENCES_HEADER = ("user_id", "item_ids")
SEQUENCE_FILES = ("sequences.tsv.gz", "sequences.tsv")
ITEM_FILES = ("items.jsonl.gz", "items.jsonl", "items_textid.jsonl.gz", "items_textid.jsonl")


def find_file(folder: Path, candidates: tuple[str, ...], what: str) -> Path:
    for name in candidates:
        if (folder / name).is_file():
            return folder / name
    raise DatasetError(f"{folder}: no {what} file; expected one of {', '.join(candidates)}")


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Yield (1-based line number, line without newline); unreadable bytes name the file."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                yield number, line.rstrip("\n")
    except (OSError, EOFError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot be read ({error})") from error


def clean_text(value: object) -> str | None:
    if value is None:
        return None
    text = html.unescape(str(value)).strip()
    return text or None


def parse_categories(record: dict) -> tuple[str, ...]:
    listed = record.get("categories_list")
    if isinstance(listed, list):
        return tuple(part for part in (clean_text(c) for c in listed) if part)
    joined = clean_text(record.get("categories"))
    if not joined:
        return ()
    separator = " > " if " > " in joined else ", "
    return tuple(part.strip() for part in joined.split(separator) if part.strip())


def parse_item(record: dict) -> Item:
    return Item(
        item_id=str(record["item_id"]).strip(),
        title=clean_text(record.get("title")),
        brand=clean_text(record.get("brand")),
        categories=parse_categories(record),
        description=clean_text(record.get("description")),
        text_id=clean_text(record.get("idgenrec_textid") or record.get("text_id")),
    )


def load_items(path: Path, report: LoadReport) -> dict[str, Item]:
    items: dict[str, Item] = {}
    for number, line in read_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(f"{path}:{number}: not valid JSON ({error.msg})") from error
        if not isinstance(record, dict) or record.get("item_id") in (None, ""):
            raise DatasetError(f"{path}:{number}: missing field 'item_id'")
        item = parse_item(record)
        if item.item_id in items:
            report.drop("duplicate item id in item file (kept the first)", f"{path.name}:{number} {item.item_id}")
            continue
        items[item.item_id] = item
    if not items:
        raise DatasetError(f"{path}: no items")
    return items


def check_sequences_header(path: Path, number: int, line: str) -> None:
    if tuple(line.split("\t")) != SEQUENCES_HEADER:
        raise DatasetError(f"{path}:{number}: header must be 'user_id<TAB>item_ids', found {line[:80]!r}")


def load_sequences(path: Path, items: dict[str, Item], report: LoadReport) -> dict[str, list[str]]:
    sequences: dict[str, list[str]] = {}
    for number, line in read_lines(path):
        if number == 1:
            check_sequences_header(path, number, line)
            continue
        fields = line.split("\t")
        if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
            report.drop("malformed sequence row", f"{path.name}:{number}")
            continue
        user, raw_items = fields[0].strip(), fields[1].split()
        if user in sequences:
            report.drop("duplicate user row (kept the first)", f"{path.name}:{number} {user}")
            continue
        sequences[user] = clean_sequence(raw_items, items, report, f"{path.name}:{number}")
    if not sequences:
        raise DatasetError(f"{path}: no sequence rows after the header")
    return sequences


def clean_sequence(raw_items: list[str], items: dict[str, Item], report: LoadReport, where: str) -> list[str]:
    kept: list[str] = []
    seen: set[str] = set()
    for item in raw_items:
        if item not in items:
            report.drop("item in sequence without metadata", f"{where} {item}")
        elif item in seen:
            report.drop("duplicate item in a sequence (kept the first)", f"{where} {item}")
        else:
            seen.add(item)
            kept.append(item)
    return kept


def drop_short_users(sequences: dict[str, list[str]], min_length: int, report: LoadReport) -> dict[str, list[str]]:
    kept = {}
    for user, items in sequences.items():
        if len(items) < min_length:
            report.drop(f"user with fewer than {min_length} items (too short to split)", user)
        else:
            kept[user] = items
    return kept


def load_interactions(folder: str | Path, min_sequence_length: int = 3, name: str | None = None) -> Interactions:
    """Load and validate a dataset folder; everything dropped is counted in the report."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"{folder}: dataset folder not found")
    report = LoadReport()
    items = load_items(find_file(folder, ITEM_FILES, "item metadata"), report)
    sequences = load_sequences(find_file(folder, SEQUENCE_FILES, "sequences"), items, report)
    sequences = drop_short_users(sequences, min_sequence_length, report)
    if not sequences:
        raise DatasetError(f"{folder}: no user has at least {min_sequence_length} usable items")
    return Interactions(name=name or folder.name, items=items, sequences=sequences, report=report)
