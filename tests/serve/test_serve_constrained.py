"""The ranking grammar and its logits processor: whatever the model's scores, the ranking is a permutation
of the candidates, and the explanation string is cut where JSON ends it."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gr2.rank.constrained import (
    PermutationLogitsProcessor,
    RankingGrammar,
    explanation_end,
    explanation_text,
    ranking_prefix,
)
from gr2.traces.parse import parse_ranking
from gr2.traces.prompt import format_answer

VOCAB = 40
SEP, CLOSE, EOS = (30, 31), (32, 33), 34


def grammar(options: list[tuple[int, ...]]) -> RankingGrammar:
    return RankingGrammar(tuple(options), SEP, (*CLOSE, EOS))


def decode_with(processor: PermutationLogitsProcessor, scores: torch.Tensor, steps: int) -> list[int]:
    """Greedy decoding of one row whose raw scores at step t are scores[t]."""
    ids = torch.zeros((1, 3), dtype=torch.long)  # a 3-token prompt
    for step in range(steps):
        masked = processor(ids, scores[step : step + 1].clone())
        ids = torch.cat([ids, masked.argmax(dim=-1, keepdim=True)], dim=1)
    return ids[0, 3:].tolist()


@pytest.mark.parametrize(
    ("text", "end"),
    [("plain", None), ('a"b', 1), ('say \\"hi\\" now"', 14), ('ends with \\\\"', 12), ("", None)],
)
def test_explanation_ends_at_the_first_unescaped_quote(text, end):
    assert explanation_end(text) == end


def test_explanation_text_unescapes_and_keeps_broken_escapes():
    assert explanation_text('line\\nnext \\"q\\"", "recommendations"') == 'line\nnext "q"'
    assert explanation_text("cut at the budget \\") == "cut at the budget "
    assert explanation_text("bad \\x escape") == "bad \\x escape"


def test_ranking_prefix_matches_the_trained_answer_format(sid_map):
    items = sorted(sid_map.codes)[:3]
    answer = format_answer('why "this"', items, sid_map)
    body = '", "'.join(sid_map.text(i) for i in items) + '"]}'
    assert ranking_prefix('why "this"') + body == answer
    assert parse_ranking(answer, items, sid_map).ranking == tuple(items)


def test_grammar_forces_separators_and_closing():
    g = grammar([(1, 2), (1, 3)])
    assert g.walk([]) == ([], {1})
    assert g.walk([1]) == ([], {2, 3})
    assert g.walk([1, 3]) == ([1], {SEP[0]})
    assert g.walk([1, 3, *SEP]) == ([1], {1})
    assert g.walk([1, 3, *SEP, 1]) == ([1], {2})
    assert g.walk([1, 3, *SEP, 1, 2, CLOSE[0]]) == ([1, 0], {CLOSE[1]})
    assert g.walk([1, 3, *SEP, 1, 2, *CLOSE, EOS]) == ([1, 0], None)
    assert g.length == 2 * 2 + 2 + 3
    with pytest.raises(ValueError, match="not allowed"):
        g.walk([1, 3, *SEP, 1, 3])


def test_grammar_refuses_ambiguous_options():
    with pytest.raises(ValueError, match="distinct"):
        grammar([(1, 2), (1, 2)])
    with pytest.raises(ValueError, match="one length"):
        grammar([(1, 2), (1, 2, 3)])


@settings(max_examples=60, deadline=None)
@given(
    codes=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=2, max_size=8, unique=True),
    seed=st.integers(0, 2**16),
)
def test_any_scores_give_a_permutation(codes, seed):
    """Random logits (the worst model) still yield each option exactly once, closed properly."""
    g = grammar([(10 + a, 20 + b) for a, b in codes])
    scores = torch.randn((g.length, VOCAB), generator=torch.Generator().manual_seed(seed))
    generated = decode_with(PermutationLogitsProcessor([g], prompt_length=3), scores, g.length)
    chosen, allowed = g.walk(generated)
    assert allowed is None
    assert sorted(chosen) == list(range(len(codes)))
    assert generated[-3:] == [*CLOSE, EOS]


def test_processor_leaves_finished_rows_alone():
    g = grammar([(1, 2), (1, 3)])
    finished = torch.tensor([[0, 0, 0, 1, 2, *SEP, 1, 3, *CLOSE, EOS]])
    scores = torch.randn((1, VOCAB))
    assert torch.equal(PermutationLogitsProcessor([g], 3)(finished, scores.clone()), scores)


def test_explanation_round_trips_through_json():
    text = 'uses "quotes", back\\slashes and\nnewlines ü'
    assert explanation_text(json.dumps(text)[1:] + ', "recommendations"') == text
