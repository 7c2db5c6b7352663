import gzip
import json
import os
from pathlib import Path

import pytest

from gr2.data.schema import Item
from gr2.sid.sidmap import SidMap
from tests.office import office_catalog, office_sequences, random_sid_map

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]


def after_the_suite(variable: str, what: str):
    """Skip unless `variable` is 1: `what` is too long for `make test`'s 20-minute budget, so .ci/run runs it
    after the suite with `variable`=1."""
    return pytest.mark.skipif(
        os.environ.get(variable) != "1",
        reason=f"{what}, kept out of `make test`'s budget: .ci/run runs it after the suite with {variable}=1",
    )


OFFICE_USERS = 60  # the lm and serve tests' slice: tiny-random trains and decodes on it in seconds


@pytest.fixture(scope="session", autouse=True)
def empty_home(tmp_path_factory) -> Path:
    """The suite runs as a new user would, with an empty home: the base-model conversions (~/.cache/gr2/models),
    the sentence embeddings (the config's `cache`, ~/.cache/gr2) and Hugging Face's caches all start cold, so a
    green run means a fresh machine passes. Pipeline tasks and servers started by tests inherit it."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HOME", str(home))
        patch.setenv("GR2_MODEL_CACHE", str(home / ".cache" / "gr2" / "models"))
        for variable in ("HF_HOME", "XDG_CACHE_HOME"):
            patch.delenv(variable, raising=False)
        yield home


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


@pytest.fixture(scope="session")
def sequences() -> list[list[str]]:
    """The first users' full Office sequences, oldest first."""
    return office_sequences(OFFICE_USERS)


@pytest.fixture(scope="session")
def catalog(sequences) -> dict[str, Item]:
    return office_catalog(sequences)


@pytest.fixture(scope="session")
def sid_map(catalog) -> SidMap:
    """Random unique 4-level codes over the catalog."""
    return random_sid_map(sorted(catalog))
