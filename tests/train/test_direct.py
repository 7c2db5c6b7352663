"""Direct mode on the tiny model: labels, the listwise loss, Plackett-Luce, the reward, SFT and DAPO steps."""

import copy
import math
from itertools import permutations

import pytest
import torch

from gr2.prerank.candidates import RerankExample
from gr2.rank.direct import (
    DirectScorer,
    LabelTokenError,
    PromptContext,
    direct_prompt,
    fused_scores,
    head_token_ids,
    label_head,
    label_token_ids,
    ranking_from_scores,
    shown_order,
)
from gr2.rank.frozen import CachedDirectScorer, FrozenLowerLayers
from gr2.traces.collaborative import CollaborativeCounts
from gr2.traces.config import PromptConfig
from gr2.train.checkpoint import CHECKPOINT_DIR
from gr2.train.config import DirectDapoConfig, DirectSftConfig, RewardConfig
from gr2.train.direct import (
    DynamicSamplingStarvation,
    RolloutStats,
    informative_groups,
    train_direct_dapo,
    train_direct_sft,
)
from gr2.train.direct_losses import (
    clipped_surrogate,
    gold_positions,
    listwise_loss,
    plackett_luce_log_probs,
    sample_plackett_luce,
    target_pairwise_loss,
)
from gr2.train.rewards import score_ranking


def test_labels_are_single_tokens_and_a_multi_token_label_is_refused(tiny):
    _, tokenizer = tiny
    ids = label_token_ids(tokenizer, list("ABCDEFGHIJ"))
    assert len(set(ids)) == 10 and all(tokenizer.decode([i]) == c for i, c in zip(ids, "ABCDEFGHIJ", strict=True))
    with pytest.raises(LabelTokenError, match="'Candidate-Seventeen'"):
        label_token_ids(tokenizer, ["A", "Candidate-Seventeen"])


def test_listwise_loss_matches_a_hand_computed_case():
    scores = torch.tensor([1.0, 0.0, 2.0])
    # target 1: cross-entropy -log(e^0 / (e^1 + e^0 + e^2)); gold order (1, 0, 2) -> positions 2, 1, 3
    ce = -math.log(1 / (math.e + 1 + math.e**2))
    w0, w2 = 1 / (1 + 2), 1 / (1 + 3)
    pairwise = (w0 * math.log(1 + math.exp(1.0)) + w2 * math.log(1 + math.exp(2.0))) / (w0 + w2)
    assert gold_positions(3, 1).tolist() == [2, 1, 3]
    assert target_pairwise_loss(scores, 1, gold_positions(3, 1)).item() == pytest.approx(pairwise)
    assert listwise_loss(scores, 1, 0.5).item() == pytest.approx(ce + 0.5 * pairwise)


def test_plackett_luce_log_probs_are_a_distribution_and_sampling_follows_them():
    scores = torch.tensor([2.0, 0.5, -1.0])
    rankings = torch.tensor(list(permutations(range(3))))
    probabilities = plackett_luce_log_probs(scores, rankings).sum(-1).exp()
    assert probabilities.sum().item() == pytest.approx(1.0, abs=1e-6)
    # first placement of (0, 1, 2): e^2 / (e^2 + e^0.5 + e^-1), then e^0.5 / (e^0.5 + e^-1)
    expected = (
        math.exp(2) / (math.exp(2) + math.exp(0.5) + math.exp(-1)) * math.exp(0.5) / (math.exp(0.5) + math.exp(-1))
    )
    assert probabilities[0].item() == pytest.approx(expected)
    samples = sample_plackett_luce(scores, 20000, torch.Generator().manual_seed(0))
    observed = (samples == torch.tensor([0, 1, 2])).all(-1).float().mean().item()
    assert observed == pytest.approx(expected, abs=0.015)


def test_clipped_surrogate_clips_above_one_plus_eps_high_for_positive_advantages():
    old = torch.zeros(1, 2)
    new = torch.log(torch.tensor([[1.5, 1.1]]))
    loss, clipped = clipped_surrogate(new, old, torch.tensor([1.0]), 0.2, 0.28)
    assert loss.tolist()[0] == pytest.approx([-1.28, -1.1])
    assert clipped.tolist() == [[True, False]]


def test_direct_reward_on_hand_made_rankings():
    example = RerankExample("train", "u", (), ("a", "b", "c", "d"), "c")
    conditional, naive = RewardConfig(alpha=0.2), RewardConfig(kind="naive", alpha=0.2)
    moved_up = score_ranking(("c", "a", "b", "d"), example, conditional)
    assert (moved_up.rank, moved_up.total) == (pytest.approx(0.5), pytest.approx(0.7))
    copy = score_ranking(example.candidates, example, conditional)
    assert copy.order_copy and copy.total == 0.0
    assert score_ranking(example.candidates, example, naive).total == pytest.approx(0.2)
    down = score_ranking(("a", "b", "d", "c"), example, conditional)
    assert down.total == pytest.approx(-0.25)


def test_fusion_with_a_large_lambda_gives_back_the_incoming_order():
    scores = torch.tensor([0.0, 3.0, 1.0, 2.0])
    candidates = ("a", "b", "c", "d")
    assert ranking_from_scores(candidates, fused_scores(scores, 0.0)) == ("b", "d", "c", "a")
    assert ranking_from_scores(candidates, fused_scores(scores, 1e3)) == candidates


def test_shuffled_prompts_are_seeded_by_the_candidates_and_scores_come_back_in_incoming_order(tiny, office):
    model, tokenizer = tiny
    catalog, sids, _, examples = office
    config = PromptConfig(
        history_items=3, title_chars=24, direct_show_sids=False, direct_shuffle=True, direct_show_ranks=True
    )
    example = examples[0]
    assert shown_order(example.candidates, True) == shown_order(example.candidates, True)
    assert sorted(shown_order(example.candidates, True)) == list(range(10))
    context = PromptContext(catalog, sids, config)
    prompt = direct_prompt(tokenizer, example.history, example.candidates, context)
    first = prompt.shown[0]
    assert f"A. {catalog[example.candidates[first]].display_title[:24]}" in prompt.text
    assert f"[upstream rank {first + 1}]" in prompt.text
    assert_serving_and_training_paths_agree(model, tokenizer, context, examples)


def assert_serving_and_training_paths_agree(model, tokenizer, context, examples):
    scorer = DirectScorer(model, tokenizer, context, batch_size=2)
    batched = scorer.score([(e.history, e.candidates) for e in examples[:3]])
    alone = scorer.score([(examples[2].history, examples[2].candidates)])
    assert torch.allclose(batched[2], alone[0], atol=1e-4)  # left padding changes nothing
    split = FrozenLowerLayers(model, 1, scorer.head_ids)
    prompt = scorer.prompt(examples[0].history, examples[0].candidates)
    ids = tokenizer(prompt.text, add_special_tokens=False)["input_ids"]
    split_scores = prompt.incoming_order(split.label_scores(split.lower(ids), prompt))
    assert torch.allclose(split_scores, batched[0], atol=1e-2)  # the training path scores as serving does


def test_cached_scorer_equals_a_full_forward_and_models_with_the_same_frozen_layers_share_the_cache(
    tiny, office, tmp_path, monkeypatch
):
    model, tokenizer = tiny
    catalog, sids, _, examples = office
    context = PromptContext(catalog, sids, PromptConfig(history_items=3, title_chars=24, direct_show_sids=False))
    requests = [(e.history, e.candidates) for e in examples[:4]]
    full = DirectScorer(model, tokenizer, context, batch_size=4).score(requests)
    lower_runs = []
    monkeypatch.setattr(FrozenLowerLayers, "lower", counting(FrozenLowerLayers.lower, lower_runs))
    cached = CachedDirectScorer(model, tokenizer, context, 1, tmp_path).score(requests)
    for exact, served in zip(cached, full, strict=True):
        assert torch.allclose(exact, served, atol=1e-4)  # the lower output is kept in float32 for evaluation
    assert len(lower_runs) == 4
    retrained = copy.deepcopy(model)
    with torch.no_grad():
        retrained.get_decoder().layers[-1].mlp.down_proj.weight.mul_(1.5)  # as a later stage trains the top
    again = CachedDirectScorer(retrained, tokenizer, context, 1, tmp_path).score(requests)
    assert len(lower_runs) == 4  # read from the cache, not recomputed
    assert not torch.allclose(again[0], cached[0])
    CachedDirectScorer(retrained, tokenizer, context, 2, tmp_path).score(requests)
    assert len(lower_runs) == 8  # a lower boundary includes the changed layer: another cache entry


def counting(method, calls: list):
    def wrapped(self, *args):
        calls.append(args)
        return method(self, *args)

    return wrapped


def test_candidate_readout_with_evidence_reads_each_line_end_and_cites_the_train_counts(tiny, office):
    model, tokenizer = tiny
    catalog, sids, split, examples = office
    config = PromptConfig(
        history_items=3,
        title_chars=24,
        category_levels=0,
        direct_show_sids=False,
        direct_shuffle=True,
        direct_evidence=True,
        direct_readout="candidate",
    )
    with pytest.raises(ValueError, match="direct_evidence"):
        PromptContext(catalog, sids, config)
    counts = CollaborativeCounts.from_sequences(split.train_sequences())
    context = PromptContext(catalog, sids, config, counts)
    example = next(e for e in examples if any(counts.followed(e.history, c) for c in e.candidates))
    prompt = direct_prompt(tokenizer, example.history, example.candidates, context)
    ids = tokenizer(prompt.text, add_special_tokens=False)["input_ids"]
    assert len(prompt.positions) == len(example.candidates)
    assert list(prompt.token_ids) == ids[: prompt.positions[-1] + 1]  # nothing after the last line end is read
    assert tokenizer.decode(ids[prompt.positions[-1] + 1 :]).startswith("\nAnswer with one label.")
    with torch.no_grad():
        whole_prompt = model.get_decoder()(torch.tensor([ids])).last_hidden_state[0]
    head = label_head(model, head_token_ids(tokenizer, config))
    served = DirectScorer(model, tokenizer, context).score([(example.history, example.candidates)])[0]
    assert torch.allclose(prompt.incoming_order(prompt.scores(whole_prompt, head)), served, atol=1e-5)
    for label, index, position in zip("ABCDEFGHIJ", prompt.shown, prompt.positions, strict=True):
        line = f"{label}. {catalog[example.candidates[index]].display_title[:24]}"
        note = f"[next {counts.followed(example.history, example.candidates[index])}, "
        note += f"with {counts.bought_with(example.history, example.candidates[index])}]"
        assert f"{line} {note}\n" in prompt.text
        assert "]" in tokenizer.decode(ids[position])  # the score is read where the line ends
    assert_serving_and_training_paths_agree(model, tokenizer, context, examples)


def test_collaborative_counts_round_trip_and_a_missing_file_is_named(office, tmp_path):
    _, _, split, _ = office
    counts = CollaborativeCounts.from_sequences(split.train_sequences())
    with pytest.raises(FileNotFoundError, match="collaborative_counts"):
        CollaborativeCounts.load(tmp_path)
    counts.save(tmp_path)
    assert CollaborativeCounts.load(tmp_path) == counts


@pytest.mark.parametrize("readout", ["answer", "candidate"])
def test_direct_sft_learns_and_resumes(tiny_dir, office, prompt_config, tmp_path, readout):
    from gr2.lm.models import load_model_and_tokenizer

    catalog, sids, split, examples = office
    evidence = CollaborativeCounts.from_sequences(split.train_sequences()) if readout == "candidate" else None
    prompt_config = prompt_config.model_copy(
        update={"direct_readout": readout, "direct_evidence": evidence is not None}
    )
    config = DirectSftConfig(trainable_layers=1, epochs=3, batch_size=4, learning_rate=3e-3, save_steps=2)
    model, tokenizer = load_model_and_tokenizer(tiny_dir)
    train = examples[:8]
    context = PromptContext(catalog, sids, prompt_config, evidence)
    metrics, curve = train_direct_sft(model, tokenizer, train, context, config, 0, tmp_path)
    assert metrics["train_steps"] == 6 and curve[-1]["loss"] < curve[0]["loss"]
    resumed_model, _ = load_model_and_tokenizer(tiny_dir)
    again, _ = train_direct_sft(resumed_model, tokenizer, examples[:8], context, config, 0, tmp_path)
    assert again["resumed_from_step"] == 6 and again["train_steps"] == 6
    for (name, a), b in zip(model.state_dict().items(), resumed_model.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_direct_dapo_steps_with_dynamic_sampling_and_resume(tiny_dir, office, prompt_config, tmp_path):
    from gr2.lm.models import load_model_and_tokenizer

    catalog, sids, _, examples = office
    config = DirectDapoConfig(
        trainable_layers=1, num_generations=4, prompts_per_step=2, max_steps=2, learning_rate=1e-3, save_steps=1
    )
    model, tokenizer = load_model_and_tokenizer(tiny_dir)
    context = PromptContext(catalog, sids, prompt_config)
    metrics, curve = train_direct_dapo(model, tokenizer, examples[:6], context, config, 0, tmp_path)
    assert metrics["train_steps"] == 2 and len(curve) == 2
    assert {"reward_mean", "rank_reward_std", "format_bonus_mean", "order_copy_rate", "clip_ratio"} <= set(curve[0])
    assert curve[0]["valid_share"] == 1.0 and curve[0]["reward_std"] > 0
    (tmp_path / "once").mkdir()
    resumed = DirectDapoConfig(**{**config.model_dump(), "max_steps": 1})
    fresh, _ = load_model_and_tokenizer(tiny_dir)
    train_direct_dapo(fresh, tokenizer, examples[:6], context, resumed, 0, tmp_path / "once")
    assert (tmp_path / "once" / CHECKPOINT_DIR).is_dir()
    _, finished = train_direct_dapo(fresh, tokenizer, examples[:6], context, config, 0, tmp_path / "once")
    assert finished[-1]["reward_mean"] == pytest.approx(curve[-1]["reward_mean"])
    for (name, a), b in zip(model.state_dict().items(), fresh.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name


def test_dynamic_sampling_drops_flat_groups_and_gives_up_with_a_clear_error():
    class Group:
        def __init__(self, totals):
            self.rewards = [type("R", (), {"total": t})() for t in totals]

    flat, useful = Group([0.1, 0.1]), Group([0.0, 0.3])
    supply = iter([flat, useful, flat, useful])
    stats = RolloutStats()
    kept = informative_groups(lambda: next(supply), 2, 1e-3, 8, stats)
    assert kept == [useful, useful] and (stats.groups_generated, stats.groups_dropped) == (4, 2)
    with pytest.raises(DynamicSamplingStarvation, match="0 of 1 groups"):
        informative_groups(lambda: flat, 1, 1e-3, 3, RolloutStats())
