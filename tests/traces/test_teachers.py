import json
import random

from gr2.traces.config import PromptConfig, TeacherConfig
from gr2.traces.evidence import EvidenceTeacher
from gr2.traces.parse import parse_ranking
from gr2.traces.sampling import generate_traces, read_traces, trace_metrics
from gr2.traces.teachers import EvidenceBackend

TRAIN = {"u1": ["i2", "i7", "i8"], "u2": ["i2", "i7"], "u3": ["i1", "i7", "i5"], "u4": ["i9", "i4"]}


def analyst(catalog, sids, temperature=0.0):
    return EvidenceTeacher(catalog, sids, TRAIN, temperature=temperature)


def test_evidence_teacher_ranks_by_transitions_and_cites_figures(example, catalog, sids):
    answer = analyst(catalog, sids).answer(example.history, example.candidates, random.Random(0))
    parsed = parse_ranking(answer, example.candidates, sids)
    assert parsed.valid
    assert parsed.ranking[0] == "i7"  # followed i2 twice and i1 once in the train split
    assert f"{sids.text('i7')} followed the recent items 3 times" in parsed.explanation
    assert parsed.explanation.startswith("Step 1:") and "Step 3:" in parsed.explanation


def test_evidence_teacher_samples_at_temperature_and_is_seeded(example, catalog, sids):
    teacher = analyst(catalog, sids, temperature=5.0)
    orders = {teacher.answer(example.history, example.candidates, random.Random(s)) for s in range(6)}
    assert len(orders) > 1
    again = teacher.answer(example.history, example.candidates, random.Random(3))
    assert again == teacher.answer(example.history, example.candidates, random.Random(3))


def test_targeted_mode_puts_the_answer_first(example, catalog, sids):
    teacher = analyst(catalog, sids)
    answer = teacher.answer(example.history, example.candidates, random.Random(0), forced_first="i12")
    assert parse_ranking(answer, example.candidates, sids).ranking[0] == "i12"


class ScriptedTeacher:
    """Answers from a script, in order: lets a test decide which tries are accepted."""

    name = "scripted"

    def __init__(self, rankings, sids):
        self.rankings = list(rankings)
        self.sids = sids
        self.calls = 0

    def generate(self, requests):
        self.calls += len(requests)
        out = []
        for _ in requests:
            ranking = self.rankings.pop(0)
            out.append(
                ranking
                if isinstance(ranking, str)
                else json.dumps({"explanation": "e", "recommendations": [self.sids.text(i) for i in ranking]})
            )
        return out


def test_rejection_sampling_keeps_first_hit_and_counts_reasons(tmp_path, example, catalog, sids):
    miss = list(example.candidates)  # target i7 is 5th: rejected
    hit = ["i7"] + [c for c in example.candidates if c != "i7"]
    teacher = ScriptedTeacher(["garbage", miss, hit], sids)
    out = tmp_path / "traces.jsonl"
    config = TeacherConfig(max_tries=5)
    generate_traces([example], teacher, catalog, sids, PromptConfig(), config, seed=0, out_path=out)
    (record,) = read_traces(out)
    assert record["accepted"] and record["tries"] == 3
    assert record["rejections"] == ["no_json", "top1_not_target"]
    assert teacher.calls == 3
    metrics = trace_metrics([record])
    assert metrics["acceptance_rate"] == 1.0 and metrics["rejected_no_json"] == 1


def test_rejection_gives_up_after_max_tries(tmp_path, example, catalog, sids):
    teacher = ScriptedTeacher([list(example.candidates)] * 2, sids)
    out = tmp_path / "traces.jsonl"
    generate_traces([example], teacher, catalog, sids, PromptConfig(), TeacherConfig(max_tries=2), 0, out)
    (record,) = read_traces(out)
    assert not record["accepted"] and record["tries"] == 2
    assert trace_metrics([record])["acceptance_rate"] == 0.0


def test_generation_resumes_without_redoing_finished_examples(tmp_path, example, catalog, sids):
    from dataclasses import replace

    second = replace(example, user_id="u2")
    out = tmp_path / "traces.jsonl"
    backend = EvidenceBackend(analyst(catalog, sids))
    config = TeacherConfig(max_tries=1, batch_size=1)
    generate_traces([example], backend, catalog, sids, PromptConfig(), config, 0, out)
    with out.open("a") as handle:
        handle.write('{"key": "torn')  # a crash mid-write
    counting = ScriptedTeacher([list(second.candidates)], sids)
    generate_traces([example, second], counting, catalog, sids, PromptConfig(), config, 0, out)
    assert counting.calls == 1
