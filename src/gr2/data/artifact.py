"""The data stage's artifact: a validated dataset folder in the normalised format plus its report."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

from gr2.data.loading import load_interactions
from gr2.data.schema import Interactions, Item
from gr2.storage.atomic import write_bytes_atomic, write_json_atomic
from gr2.storage.hashing import hash_files

SUMMARY_FILE = "dataset.json"


def gzip_text(text: str) -> bytes:
    return gzip.compress(text.encode("utf-8"), mtime=0)


def item_record(item: Item) -> dict:
    record = dataclasses.asdict(item)
    record["categories_list"] = list(record.pop("categories"))
    return record


def write_interactions(data: Interactions, folder: Path, extra_files: tuple[Path, ...] = (), **details) -> dict:
    """Write items and sequences in the normalised format; returns the summary written beside them: the
    dataset's name and kind, the hash of these files and `extra_files` (already in `folder`), what loading
    dropped, and `details`."""
    folder.mkdir(parents=True, exist_ok=True)
    items_text = "".join(json.dumps(item_record(i), ensure_ascii=False) + "\n" for i in data.items.values())
    rows = "".join(f"{user}\t{' '.join(seq)}\n" for user, seq in data.sequences.items())
    write_bytes_atomic(folder / "items.jsonl.gz", gzip_text(items_text))
    write_bytes_atomic(folder / "sequences.tsv.gz", gzip_text("user_id\titem_ids\n" + rows))
    summary = {
        "name": data.name,
        "kind": data.kind,
        "content_sha256": hash_files([folder / "items.jsonl.gz", folder / "sequences.tsv.gz", *extra_files]),
        "dropped": data.report.dropped,
        "dropped_examples": data.report.examples,
        **details,
    }
    write_json_atomic(folder / SUMMARY_FILE, summary)
    return summary


def read_summary(folder: str | Path) -> dict:
    """The `dataset.json` the data stage wrote beside the files."""
    return json.loads((Path(folder) / SUMMARY_FILE).read_text())


def read_interactions(folder: str | Path) -> Interactions:
    """The data stage's artifact (its users were filtered when it was written, so none is dropped here)."""
    summary = read_summary(folder)
    data = load_interactions(folder, min_sequence_length=1, name=summary["name"])
    data.kind = summary.get("kind", data.kind)
    return data
