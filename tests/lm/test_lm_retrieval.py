from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from gr2.lm.evaluate import ranking_metrics
from gr2.lm.retrieval import SidConstraint, constrained_beam_search, generate_candidates
from gr2.lm.vocab import sid_token_ids
from gr2.sid.sidmap import SID_BEGIN, SidMap, code_token

PAD = 0


class PrefixCache:
    """Stands in for a KV cache: remembers each row's tokens and follows the beam reordering."""

    def __init__(self, rows: list[list[int]]):
        self.rows = rows

    def reorder_cache(self, index: torch.Tensor) -> None:
        self.rows = [self.rows[i] for i in index.tolist()]


class FakeLM(torch.nn.Module):
    """Logits are a fixed pseudo-random function of the whole token sequence, large enough that
    unconstrained decoding usually picks invalid codes."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.vocab_size = vocab_size

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def logits_for(self, tokens: tuple[int, ...]) -> torch.Tensor:
        generator = torch.Generator().manual_seed(hash(tokens) % 2**31)
        return 20 * torch.randn(self.vocab_size, generator=generator)

    def forward(self, input_ids, attention_mask, position_ids, past_key_values, use_cache):
        if past_key_values is None:
            rows = [
                [t for t, m in zip(ids, mask, strict=True) if m]
                for ids, mask in zip(input_ids.tolist(), attention_mask.tolist(), strict=True)
            ]
            past_key_values = PrefixCache(rows)
        else:
            past_key_values.rows = [
                row + [t] for row, t in zip(past_key_values.rows, input_ids[:, 0].tolist(), strict=True)
            ]
        logits = torch.stack([self.logits_for(tuple(row)) for row in past_key_values.rows]).unsqueeze(1)
        return SimpleNamespace(logits=logits, past_key_values=past_key_values)


def fake_vocabulary(sid_map: SidMap) -> dict[str, int]:
    return {token: 10 + i for i, token in enumerate(sid_map.vocabulary())}


def brute_force(
    model: FakeLM, prompt: list[int], sid_map: SidMap, token_ids: dict[str, int]
) -> list[tuple[str, float]]:
    scored = []
    for item, codes in sid_map.codes.items():
        tokens, score = list(prompt), 0.0
        for level, code in enumerate(codes):
            token = token_ids[code_token(level, code)]
            score += torch.log_softmax(model.logits_for(tuple(tokens)), -1)[token].item()
            tokens.append(token)
        scored.append((item, score))
    return sorted(scored, key=lambda pair: -pair[1])


sid_maps = st.integers(2, 4).flatmap(
    lambda levels: st.integers(2, 5).flatmap(
        lambda size: st.sets(st.tuples(*[st.integers(0, size - 1)] * levels), min_size=1, max_size=30).map(
            lambda codes: SidMap(levels, size, {f"i{n}": c for n, c in enumerate(sorted(codes))})
        )
    )
)


@settings(max_examples=40, deadline=None)
@given(
    sid_map=sid_maps, beam_width=st.integers(1, 12), prompt_lengths=st.lists(st.integers(1, 6), min_size=1, max_size=3)
)
def test_beam_search_emits_only_distinct_catalogue_items(sid_map, beam_width, prompt_lengths):
    token_ids = fake_vocabulary(sid_map)
    model = FakeLM(10 + len(token_ids))
    prompts = [
        [1 + (n + i) % 9 for i in range(length)] + [token_ids[SID_BEGIN]] for n, length in enumerate(prompt_lengths)
    ]
    results = constrained_beam_search(model, prompts, SidConstraint(sid_map, token_ids), beam_width, PAD)
    for ranked in results:
        items = [item for item, _ in ranked]
        assert None not in items
        assert len(set(items)) == len(items) == min(beam_width, len(sid_map.codes))
        scores = [score for _, score in ranked]
        assert scores == sorted(scores, reverse=True)


@settings(max_examples=25, deadline=None)
@given(sid_map=sid_maps, prompt_lengths=st.lists(st.integers(1, 6), min_size=1, max_size=3))
def test_wide_beam_search_equals_exhaustive_scoring(sid_map, prompt_lengths):
    token_ids = fake_vocabulary(sid_map)
    model = FakeLM(10 + len(token_ids))
    prompts = [
        [1 + (n + i) % 9 for i in range(length)] + [token_ids[SID_BEGIN]] for n, length in enumerate(prompt_lengths)
    ]
    results = constrained_beam_search(model, prompts, SidConstraint(sid_map, token_ids), len(sid_map.codes), PAD)
    for prompt, ranked in zip(prompts, results, strict=True):
        expected = brute_force(model, prompt, sid_map, token_ids)
        assert [item for item, _ in ranked] == [item for item, _ in expected]
        assert [s for _, s in ranked] == pytest.approx([s for _, s in expected], abs=1e-3)


def test_unconstrained_fake_model_would_emit_invalid_sids():
    """Guards the two tests above: the fake model really prefers codes outside the catalogue."""
    sid_map = SidMap(4, 8, {"only": (1, 2, 3, 4)})
    token_ids = fake_vocabulary(sid_map)
    model = FakeLM(10 + len(token_ids))
    level_a = [token_ids[code_token(0, code)] for code in range(8)]
    best = max(level_a, key=lambda token: model.logits_for((1, token_ids[SID_BEGIN]))[token].item())
    assert best != token_ids[code_token(0, 1)]
    [[(item, _)]] = constrained_beam_search(
        model, [[1, token_ids[SID_BEGIN]]], SidConstraint(sid_map, token_ids), 1, PAD
    )
    assert item == "only"


def test_candidates_from_the_tiny_model_are_valid_and_independent_of_batching(tiny, sid_map, split):
    model, tokenizer = tiny
    _, test = split
    # Freshly added SID embeddings are all equal (mean init), so every SID would tie; separate them.
    sid_ids = list(sid_token_ids(tokenizer, sid_map).values())
    with torch.no_grad():
        model.get_input_embeddings().weight[sid_ids] = torch.randn(
            len(sid_ids), model.config.hidden_size, generator=torch.Generator().manual_seed(0)
        )
    histories = [history for history, _ in test[:5]]
    batched = generate_candidates(model, tokenizer, sid_map, histories, 10, batch_size=5, show_progress=False)
    single = [generate_candidates(model, tokenizer, sid_map, [h], 10, show_progress=False)[0] for h in histories]
    assert batched == single
    for candidates in batched:
        assert len(set(candidates)) == 10 and set(candidates) <= set(sid_map.codes)


def test_candidates_refuse_impossible_requests(tiny, sid_map):
    model, tokenizer = tiny
    history = [next(iter(sid_map.codes))]
    with pytest.raises(ValueError, match="beam_width=3 must be >= k=5"):
        generate_candidates(model, tokenizer, sid_map, [history], 5, beam_width=3)
    small = SidMap(4, 16, dict(list(sid_map.codes.items())[:3]))
    with pytest.raises(ValueError, match="k=5 but the SID map has only 3 items"):
        generate_candidates(model, tokenizer, small, [history[:0]], 5)
    with pytest.raises(ValueError, match="history item 'ghost' has no SID"):
        generate_candidates(model, tokenizer, sid_map, [[*history, "ghost"]], 5)


def test_ranking_metrics_count_the_single_target():
    ranked = [["a", "b", "c"], ["x", "y", "z"], ["q", "r", "s"]]
    metrics = ranking_metrics(ranked, ["a", "z", "missing"], k=3)
    assert metrics["recall@3"] == pytest.approx(2 / 3)
    assert metrics["ndcg@3"] == pytest.approx((1 + 1 / 2) / 3)
    assert ranking_metrics(ranked, ["a", "z", "missing"], k=2)["recall@2"] == pytest.approx(1 / 3)
