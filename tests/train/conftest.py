import random

import pytest

from gr2.data.loading import load_interactions
from gr2.data.split import LeaveOneOutSplit
from gr2.lm.base import prepare_base_model
from gr2.lm.config import BaseModelConfig
from gr2.lm.models import load_model_and_tokenizer
from gr2.prerank.candidates import build_examples
from gr2.prerank.cooccurrence import CooccurrenceRetriever
from gr2.sid.sidmap import SidMap
from gr2.traces.config import PromptConfig, TeacherConfig
from gr2.traces.evidence import EvidenceTeacher
from gr2.traces.sampling import generate_traces, read_traces
from gr2.traces.teachers import EvidenceBackend
from tests.conftest import REPO


@pytest.fixture(scope="session")
def office():
    """300 real Office users, their re-ranking examples, and a random-code SID map."""
    data = load_interactions(REPO / "data" / "amazon-office-2014")
    users = dict(list(data.sequences.items())[:300])
    split = LeaveOneOutSplit(users, max_history=20)
    catalog = {i: data.items[i] for seq in users.values() for i in seq}
    rng = random.Random(0)
    codes = {}
    for n, item in enumerate(sorted(catalog)):
        codes[item] = (rng.randrange(16), n // 256, n // 16 % 16, n % 16)  # unique up to 4,096 items
    sids = SidMap(levels=4, codebook_size=16, codes=codes)
    retriever = CooccurrenceRetriever(split.train_sequences(), sorted(catalog), window=3)
    examples = build_examples("train", split.validation_examples(), retriever, k=10, keep_all=False).kept
    return catalog, sids, split, examples


@pytest.fixture(scope="session")
def prompt_config():
    return PromptConfig(history_items=3, title_chars=24, category_levels=1)


@pytest.fixture(scope="session")
def traces(tmp_path_factory, office, prompt_config):
    catalog, sids, split, examples = office
    teacher = EvidenceBackend(EvidenceTeacher(catalog, sids, split.train_sequences(), temperature=1.0))
    path = tmp_path_factory.mktemp("traces") / "traces.jsonl"
    generate_traces(examples[:12], teacher, catalog, sids, prompt_config, TeacherConfig(max_tries=4), 0, path)
    return [t for t in read_traces(path) if t["accepted"]]


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory, office):
    _, sids, _, _ = office
    out = tmp_path_factory.mktemp("tiny") / "base"
    cache = tmp_path_factory.mktemp("model-cache")
    prepare_base_model(BaseModelConfig(name="tiny-random", cache_dir=cache), sids, out)
    return out


@pytest.fixture
def tiny(tiny_dir):
    return load_model_and_tokenizer(tiny_dir)
