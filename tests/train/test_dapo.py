import pytest

from gr2.train.config import DapoConfig, RewardConfig
from gr2.train.dapo import train_dapo, training_curve


@pytest.mark.slow
def test_dapo_takes_two_steps_with_dynamic_sampling_and_resumes(tmp_path, tiny, office, prompt_config):
    model, tokenizer = tiny
    catalog, sids, _, examples = office
    config = DapoConfig(
        num_generations=2,
        prompts_per_step=2,
        max_steps=2,
        save_steps=1,
        max_completion_length=96,
        reasoning_tokens=8,
        learning_rate=1e-4,
    )
    trainer, metrics = train_dapo(
        model, tokenizer, examples[:16], catalog, sids, prompt_config, config, RewardConfig(), 0, tmp_path / "ckpt"
    )
    assert metrics["train_steps"] == 2
    curve = training_curve(trainer.state.log_history)
    assert [row["step"] for row in curve] == [1, 2]
    assert all(row["gr2/valid_share"] == 1.0 for row in curve)  # constrained rollouts are always valid
    assert all("gr2/format_bonus_mean" in row and "gr2/overlong_penalty_mean" in row for row in curve)
    assert all(0.0 <= row["dynamic_sampling/dropped_group_share"] < 1.0 for row in curve)
    longer = config.model_copy(update={"max_steps": 3})
    _, resumed = train_dapo(
        model, tokenizer, examples[:16], catalog, sids, prompt_config, longer, RewardConfig(), 0, tmp_path / "ckpt"
    )
    assert resumed["resumed_from_step"] == 2 and resumed["train_steps"] == 3
