import json

import pytest

from gr2.traces.config import PromptConfig
from gr2.traces.parse import FAILURE_REASONS, parse_ranking
from gr2.traces.prompt import build_messages, format_answer


def test_prompt_shows_every_item_with_sid_title_and_category(example, catalog, sids):
    system, user = build_messages(example.history, example.candidates, catalog, sids, PromptConfig())
    assert system["role"] == "system" and "semantic ID" in system["content"]
    text = user["content"]
    for item in (*example.history, *example.candidates):
        assert sids.text(item) in text
    assert "Product i3 & (Office > Paper)" in text
    assert "Domain knowledge:" in text and '"recommendations"' in text
    assert text.index("Purchase history") < text.index("Candidates (10)")


def test_prompt_caps_history_and_titles(example, catalog, sids):
    config = PromptConfig(history_items=1, title_chars=9, category_levels=0)
    text = build_messages(example.history, example.candidates, catalog, sids, config)[1]["content"]
    assert sids.text("i0") not in text and sids.text("i2") in text
    assert "Product i" in text and "Product i3" not in text
    assert "(Office" not in text


def test_parse_accepts_a_permutation_in_prose_and_fences(example, sids):
    ranking = list(reversed(example.candidates))
    answer = "Sure!\n```json\n" + format_answer("because", ranking, sids) + "\n```"
    parsed = parse_ranking(answer, example.candidates, sids)
    assert parsed.valid and parsed.ranking == tuple(ranking) and parsed.explanation == "because"


def answer_with(recommendations) -> str:
    return json.dumps({"explanation": "x", "recommendations": recommendations})


@pytest.mark.parametrize(
    ("make_answer", "reason"),
    [
        (lambda e, s: "no braces here", "no_json"),
        (lambda e, s: "{not: json}", "invalid_json"),
        (lambda e, s: json.dumps({"explanation": "x"}), "missing_recommendations"),
        (lambda e, s: answer_with("i3"), "not_a_list"),
        (lambda e, s: answer_with(["<|sid_begin|><s_a_99><|sid_end|>"] * 10), "unknown_sid"),
        (lambda e, s: answer_with([s.text("i0")] + [s.text(c) for c in e.candidates[1:]]), "not_a_candidate"),
        (lambda e, s: answer_with([s.text(e.candidates[0])] * 10), "duplicate_item"),
        (lambda e, s: answer_with([s.text(c) for c in e.candidates[:9]]), "missing_candidates"),
    ],
)
def test_parse_names_each_failure(example, sids, make_answer, reason):
    parsed = parse_ranking(make_answer(example, sids), example.candidates, sids)
    assert not parsed.valid and parsed.failure == reason
    assert reason in FAILURE_REASONS
