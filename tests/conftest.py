import gzip
import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


def write_dataset(folder: Path, sequences: dict[str, list[str]], items: list[dict]) -> Path:
    """A dataset folder in the normalised format, written from plain Python data."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = "".join(f"{user}\t{' '.join(seq)}\n" for user, seq in sequences.items())
    with gzip.open(folder / "sequences.tsv.gz", "wt") as handle:
        handle.write("user_id\titem_ids\n" + rows)
    with gzip.open(folder / "items.jsonl.gz", "wt") as handle:
        handle.writelines(json.dumps(item) + "\n" for item in items)
    return folder


@pytest.fixture
def make_dataset(tmp_path):
    def make(sequences, items=None, name="toy"):
        if items is None:
            ids = sorted({i for seq in sequences.values() for i in seq})
            items = [{"item_id": i, "title": f"Item {i}", "categories": "A > B"} for i in ids]
        return write_dataset(tmp_path / name, sequences, items)

    return make
