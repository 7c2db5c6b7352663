import pytest
from transformers import AutoTokenizer

from gr2.lm.config import MidtrainConfig, TaskMixture
from gr2.lm.midtrain import run_midtraining
from gr2.lm.vocab import sid_roundtrip_failures

REQUIRED = {
    "recall@10",
    "ndcg@10",
    "sid_valid_rate",
    "caption_accuracy",
    "train_seconds",
    "train_sequences",
    "seconds_per_1k_sequences",
    "final_loss",
}


def small_config(**overrides) -> MidtrainConfig:
    defaults = dict(
        num_examples=64,
        max_steps=4,
        save_steps=2,
        per_device_train_batch_size=4,
        logging_steps=1,
        eval_sample_size=6,
        caption_eval_size=6,
        eval_batch_size=6,
    )
    return MidtrainConfig(**{**defaults, **overrides})


def test_midtraining_saves_reports_and_resumes(tmp_path, tiny_dir, catalog, sid_map, split):
    train, test = split
    metrics = run_midtraining(
        tiny_dir, catalog, sid_map, train, test, small_config(), tmp_path / "out", tmp_path / "ckpt"
    )
    assert set(metrics) >= REQUIRED
    assert all(isinstance(value, float) for value in metrics.values())
    assert metrics["train_sequences"] == 16 and metrics["train_steps"] == 4
    assert metrics["seconds_per_1k_sequences"] == pytest.approx(1000 * metrics["train_seconds"] / 16)
    assert 0 <= metrics["recall@10"] <= 1 and metrics["sid_valid_rate"] <= 1
    assert {path.name for path in (tmp_path / "ckpt").iterdir()} >= {"checkpoint-2", "checkpoint-4"}
    assert sid_roundtrip_failures(AutoTokenizer.from_pretrained(tmp_path / "out"), sid_map) == []

    resumed = run_midtraining(
        tiny_dir, catalog, sid_map, train, test, small_config(max_steps=6), tmp_path / "out", tmp_path / "ckpt"
    )
    assert resumed["resumed_from_step"] == 4 and resumed["train_steps"] == 6
    assert resumed["train_sequences"] == 8


def test_midtraining_learns_the_transitions_it_is_shown(tmp_path, tiny_dir, catalog, sid_map, split):
    """Six two-item sequences: after training on exactly these transitions, constrained retrieval must
    put most next items in the top 10, which chance (10 of ~440 items) cannot."""
    train, _ = split
    pairs = [sequence[-2:] for sequence in train if len(sequence) >= 2][:6]
    config = small_config(
        tasks=TaskMixture(sequential=1, captioning=0, inverse_captioning=0, grounding=0, general_text=0),
        num_examples=len(pairs),
        max_steps=40,
        save_steps=1000,
        learning_rate=1e-2,
        warmup_ratio=0.0,
        lr_scheduler_type="constant",
        per_device_train_batch_size=6,
        eval_sample_size=6,
    )
    held_out = [(pair[:1], pair[1]) for pair in pairs]
    metrics = run_midtraining(tiny_dir, catalog, sid_map, pairs, held_out, config, tmp_path / "out", tmp_path / "ckpt")
    assert metrics["final_loss"] < 2.0
    assert metrics["recall@10"] >= 4 / 6


def test_midtraining_refuses_a_model_without_sid_tokens(tmp_path, model_cache, catalog, sid_map, split):
    from gr2.lm.models import resolve_checkpoint

    train, test = split
    plain = resolve_checkpoint("tiny-random", model_cache)
    with pytest.raises(ValueError, match="not in the tokenizer's vocabulary"):
        run_midtraining(plain, catalog, sid_map, train, test, small_config(), tmp_path / "out", tmp_path / "ckpt")
