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


def write_interactions(data: Interactions, folder: Path) -> dict:
    """Write items and sequences in the normalised format; returns the summary written beside them."""
    folder.mkdir(parents=True, exist_ok=True)
    items_text = "".join(json.dumps(item_record(i), ensure_ascii=False) + "\n" for i in data.items.values())
    rows = "".join(f"{user}\t{' '.join(seq)}\n" for user, seq in data.sequences.items())
    write_bytes_atomic(folder / "items.jsonl.gz", gzip_text(items_text))
    write_bytes_atomic(folder / "sequences.tsv.gz", gzip_text("user_id\titem_ids\n" + rows))
    summary = {
        "name": data.name,
        "content_sha256": hash_files([folder / "items.jsonl.gz", folder / "sequences.tsv.gz"]),
        "dropped": data.report.dropped,
        "dropped_examples": data.report.examples,
    }
    write_json_atomic(folder / SUMMARY_FILE, summary)
    return summary


def read_interactions(folder: str | Path) -> Interactions:
    folder = Path(folder)
    summary = json.loads((folder / SUMMARY_FILE).read_text())
    return load_interactions(folder, name=summary["name"])
