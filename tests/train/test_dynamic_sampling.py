import pytest
import torch

from gr2.train.dapo import (
    DynamicSamplingStarvation,
    concat_batches,
    fill_with_informative_groups,
    informative_groups,
    select_groups,
)


def batch_of(rows: int, prompt_width: int, completion_width: int, start: int = 0) -> dict:
    ids = torch.arange(start, start + rows).unsqueeze(1)
    return {
        "prompt_ids": ids.repeat(1, prompt_width),
        "prompt_mask": torch.ones(rows, prompt_width, dtype=torch.long),
        "completion_ids": ids.repeat(1, completion_width),
        "completion_mask": torch.ones(rows, completion_width, dtype=torch.long),
        "advantages": torch.zeros(rows),
        "num_items_in_batch": torch.tensor(rows * completion_width),
    }


def test_informative_groups_uses_a_std_threshold_not_exact_equality():
    rewards = torch.tensor([0.2, 0.2, 0.2, 0.2 + 1e-6, 0.0, 0.5, -1.0, -1.0])
    assert informative_groups(rewards, group_size=2, min_std=1e-3) == [2]
    assert informative_groups(rewards, group_size=2, min_std=0.0) == [0, 1, 2, 3]


def test_select_groups_keeps_whole_groups():
    selected = select_groups(batch_of(6, 3, 2), [0, 2], group_size=2)
    assert selected["prompt_ids"][:, 0].tolist() == [0, 1, 4, 5]
    assert selected["num_items_in_batch"].item() == 12  # scalars are left alone here


def test_concat_pads_prompts_left_and_completions_right_and_recounts_tokens():
    merged = concat_batches([batch_of(2, 3, 2), batch_of(2, 5, 4, start=10)])
    assert merged["prompt_ids"].shape == (4, 5) and merged["completion_ids"].shape == (4, 4)
    assert merged["prompt_mask"][0].tolist() == [0, 0, 1, 1, 1]
    assert merged["completion_mask"][0].tolist() == [1, 1, 0, 0]
    assert merged["num_items_in_batch"].item() == 2 * 2 + 2 * 4


def scripted_generator(reward_rounds):
    """Each call returns the next round's rewards (2 completions per group) and records the request."""
    asked = []

    def generate(groups):
        asked.append(groups)
        rewards = torch.tensor(reward_rounds[len(asked) - 1], dtype=torch.float)
        return batch_of(len(rewards), 2, 2, start=100 * len(asked)), rewards

    return generate, asked


def test_fill_over_generates_until_the_batch_is_full():
    generate, asked = scripted_generator(
        [
            [1, 1, 0, 1, 0.5, 0.5],  # 1 informative group of 3
            [0, 0, 2, 3],  # asked for 2 more: 1 informative
            [4, 5],  # asked for 1 more
        ]
    )
    batch, stats = fill_with_informative_groups(generate, groups_needed=3, group_size=2, min_std=1e-3, max_rounds=5)
    assert asked == [3, 2, 1]
    assert batch["prompt_ids"].shape[0] == 6
    assert batch["prompt_ids"][:, 0].tolist() == [102, 103, 202, 203, 300, 301]
    assert stats.rounds == 3 and stats.groups_generated == 6 and stats.groups_dropped == 3
    assert stats.dropped_share == 0.5


def test_fill_raises_a_clear_error_when_starved():
    generate, _ = scripted_generator([[1, 1, 1, 1]] * 3)
    with pytest.raises(DynamicSamplingStarvation, match="only 0 of 2 groups had differing rewards after 3"):
        fill_with_informative_groups(generate, groups_needed=2, group_size=2, min_std=1e-3, max_rounds=3)


def test_a_full_rank_keeps_generating_while_another_rank_misses_groups():
    """Generation gathers across processes: every rank takes part in every round, with the same group count."""
    generate, asked = scripted_generator([[0, 1, 0, 1], [0, 1, 0, 1], [0, 1]])
    other_rank_missing = iter([2, 2, 1, 0])

    def most_missing(missing: int) -> int:
        return max(missing, next(other_rank_missing))

    batch, stats = fill_with_informative_groups(
        generate, 2, 2, 1e-3, max_rounds=5, most_missing_of_all_ranks=most_missing
    )
    assert asked == [2, 2, 1] and stats.rounds == 3
    assert batch["prompt_ids"][:, 0].tolist() == [100, 101, 102, 103]  # its own first round only
