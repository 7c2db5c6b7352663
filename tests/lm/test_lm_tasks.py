import random

import pytest

from gr2.lm.config import MidtrainConfig, TaskMixture
from gr2.lm.tasks import build_examples, cycle_sample, task_counts
from gr2.lm.vocab import first_sid_item
from gr2.sid.sidmap import SID_BEGIN


def test_task_counts_follow_the_weights_and_sum_to_the_total():
    counts = task_counts({"a": 0.5, "b": 0.3, "c": 0.2, "d": 0.0}, 7)
    assert sum(counts.values()) == 7
    assert counts == {"a": 4, "b": 2, "c": 1, "d": 0}


def test_cycle_sample_uses_every_element_before_repeating_one():
    drawn = cycle_sample(random.Random(0), list(range(5)), 12)
    assert sorted(drawn[:5]) == list(range(5)) and sorted(drawn[5:10]) == list(range(5))


def test_mixture_has_the_configured_share_of_each_task(catalog, sid_map, split):
    train, _ = split
    config = MidtrainConfig(
        num_examples=200,
        tasks=TaskMixture(sequential=0.5, captioning=0.25, inverse_captioning=0, grounding=0.25, general_text=0),
    )
    examples = build_examples(catalog, sid_map, train, config)
    counts = {task: sum(e.task == task for e in examples) for task in config.tasks.weights()}
    assert counts == {"sequential": 100, "captioning": 50, "inverse_captioning": 0, "grounding": 50, "general_text": 0}


def test_default_size_is_one_sequential_example_per_training_sequence(catalog, sid_map, split):
    train, _ = split
    examples = build_examples(catalog, sid_map, train, MidtrainConfig())
    assert sum(e.task == "sequential" for e in examples) == len(train)


def test_sequential_examples_are_real_transitions_of_the_training_split(catalog, sid_map, split):
    train, test = split
    config = MidtrainConfig(num_examples=300, history_length=3)
    transitions = {
        (tuple(sid_map.text(i) for i in seq[max(0, t - 3) : t]), sid_map.text(seq[t]))
        for seq in train
        for t in range(1, len(seq))
    }
    for example in build_examples(catalog, sid_map, train, config):
        if example.task == "sequential":
            history = example.prompt.removeprefix("History: ").removesuffix("\nNext item?")
            shown = tuple(SID_BEGIN + part for part in history.split(SID_BEGIN)[1:])
            assert (shown, example.answer) in transitions
    held_out = {sid_map.text(target) for _, target in test} - {sid_map.text(i) for seq in train for i in seq}
    assert held_out, "the fixture should hold out items never seen in training"
    mentioned = " ".join(e.prompt + e.answer for e in build_examples(catalog, sid_map, train, config))
    assert not any(sid in mentioned for sid in held_out)


def test_captions_start_with_the_category_path(catalog, sid_map, split):
    train, _ = split
    config = MidtrainConfig(
        num_examples=100,
        tasks=TaskMixture(sequential=0, captioning=1, inverse_captioning=0, grounding=0, general_text=0),
    )
    example = build_examples(catalog, sid_map, train, config)[0]
    item = catalog[first_sid_item(example.prompt, sid_map)]
    assert example.answer.splitlines()[0] == f"Categories: {item.category_path}"


def test_examples_are_deterministic_given_the_seed(catalog, sid_map, split):
    train, _ = split
    config = MidtrainConfig(num_examples=50)
    assert build_examples(catalog, sid_map, train, config) == build_examples(catalog, sid_map, train, config)
    assert build_examples(catalog, sid_map, train, config) != build_examples(
        catalog, sid_map, train, config.model_copy(update={"seed": 1})
    )


def test_item_without_sid_is_an_error_naming_it(catalog, sid_map, split):
    train, _ = split
    with pytest.raises(ValueError, match="1 items are not in the SID map, e.g. 'ghost'"):
        build_examples(catalog, sid_map, [*train, ["ghost"]], MidtrainConfig(num_examples=10))
