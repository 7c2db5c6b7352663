"""The mid-training tasks, each a chat example that interleaves semantic IDs and language.

All examples come from the training split: its sequences, and the catalogue entries of the items in them.
The prompts are short on purpose: on CPU every token costs training time.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

from gr2.data.schema import Item
from gr2.lm.chat import ChatExample
from gr2.lm.config import MidtrainConfig
from gr2.sid.sidmap import SidMap


def short_title(item: Item, max_words: int) -> str:
    return " ".join(item.display_title.split()[:max_words])


def leaf_category(item: Item) -> str:
    return item.categories[-1] if item.categories else "unknown"


def sequential_prompt(sid_map: SidMap, history: Sequence[str], history_length: int) -> str:
    """History SIDs (oldest first, the most recent `history_length`) -> which item comes next."""
    sids = "".join(sid_map.text(item) for item in history[-history_length:])
    return f"History: {sids}\nNext item?"


def caption_prompt(sid_map: SidMap, item_id: str) -> str:
    return f"Describe item {sid_map.text(item_id)}"


CAPTION_CATEGORY_PREFIX = "Categories: "


def caption_answer(item: Item, title_max_words: int) -> str:
    """Category path first: the captioning probe then only needs to decode the first line."""
    return f"{CAPTION_CATEGORY_PREFIX}{item.category_path}\nTitle: {short_title(item, title_max_words)}"


def sequential_example(sid_map: SidMap, sequence: Sequence[str], cut: int, history_length: int) -> ChatExample:
    return ChatExample(
        "sequential", sequential_prompt(sid_map, sequence[:cut], history_length), sid_map.text(sequence[cut])
    )


def captioning_example(sid_map: SidMap, item: Item, title_max_words: int) -> ChatExample:
    return ChatExample("captioning", caption_prompt(sid_map, item.item_id), caption_answer(item, title_max_words))


def inverse_captioning_example(sid_map: SidMap, item: Item, title_max_words: int) -> ChatExample:
    prompt = f'Which item is "{short_title(item, title_max_words)}" in {item.category_path}?'
    return ChatExample("inverse_captioning", prompt, sid_map.text(item.item_id))


def grounding_example(sid_map: SidMap, history: Sequence[Item], title_max_words: int) -> ChatExample:
    """A user's purchases as bare SIDs -> each SID with its title, then the user's main interests."""
    sids = "".join(sid_map.text(item.item_id) for item in history)
    lines = [f"{sid_map.text(item.item_id)} {short_title(item, title_max_words)}" for item in history]
    interests = [category for category, _ in Counter(leaf_category(item) for item in history).most_common(2)]
    lines.append(f"Interests: {', '.join(interests)}")
    return ChatExample("grounding", f"A user bought {sids}. What are these?", "\n".join(lines))


def general_text_example(item: Item, title_max_words: int, description_max_words: int) -> ChatExample:
    title = short_title(item, title_max_words)
    brand = f" by {item.brand}" if item.brand else ""
    text = f"{title} is a {leaf_category(item)} product{brand}. Category: {item.category_path or 'unknown'}."
    if item.description and description_max_words:
        text += " " + " ".join(item.description.split()[:description_max_words])
    return ChatExample("general_text", f'Tell me about "{title}".', text)


def cycle_sample(rng: random.Random, pool: Sequence, n: int) -> list:
    """`n` draws from `pool` that go through it in shuffled passes, so each element is used once before
    any is used twice."""
    if not pool:
        return []
    drawn: list = []
    while len(drawn) < n:
        drawn.extend(rng.sample(list(pool), len(pool)))
    return drawn[:n]


def task_counts(weights: dict[str, float], total: int) -> dict[str, int]:
    """Split `total` examples by the normalised weights (largest remainder, so they sum to `total`)."""
    norm = sum(weights.values())
    exact = {task: total * weight / norm for task, weight in weights.items()}
    counts = {task: int(value) for task, value in exact.items()}
    by_remainder = sorted(exact, key=lambda task: exact[task] - counts[task], reverse=True)
    for task in by_remainder[: total - sum(counts.values())]:
        counts[task] += 1
    return counts


def default_total(weights: dict[str, float], train_sequences: int) -> int:
    """One sequential example per training sequence, the other tasks in proportion."""
    share = weights["sequential"] / sum(weights.values())
    return round(train_sequences / share) if share > 0 else train_sequences


def require_known_items(items: Sequence[str], sid_map: SidMap, catalog: dict[str, Item]) -> None:
    for known, name in ((sid_map.codes, "SID map"), (catalog, "catalogue")):
        missing = [item for item in items if item not in known]
        if missing:
            raise ValueError(f"{len(missing)} items are not in the {name}, e.g. {missing[0]!r}")


def build_examples(
    catalog: dict[str, Item], sid_map: SidMap, train_sequences: list[list[str]], config: MidtrainConfig
) -> list[ChatExample]:
    """The shuffled task mixture of one epoch, from the training sequences and their items only."""
    items = sorted({item for sequence in train_sequences for item in sequence})
    require_known_items(items, sid_map, catalog)
    rng = random.Random(config.seed)
    weights = config.tasks.weights()
    total = config.num_examples or default_total(weights, len(train_sequences))
    counts = task_counts(weights, total)
    with_next = [sequence for sequence in train_sequences if len(sequence) >= 2]
    width = config.grounding_history_length

    examples = [
        sequential_example(sid_map, sequence, rng.randrange(1, len(sequence)), config.history_length)
        for sequence in cycle_sample(rng, with_next, counts["sequential"])
    ]
    examples += [
        captioning_example(sid_map, catalog[item], config.title_max_words)
        for item in cycle_sample(rng, items, counts["captioning"])
    ]
    examples += [
        inverse_captioning_example(sid_map, catalog[item], config.title_max_words)
        for item in cycle_sample(rng, items, counts["inverse_captioning"])
    ]
    for sequence in cycle_sample(rng, [sequence for sequence in train_sequences if sequence], counts["grounding"]):
        end = rng.randrange(1, len(sequence) + 1)
        history = [catalog[item] for item in sequence[max(0, end - width) : end]]
        examples.append(grounding_example(sid_map, history, config.title_max_words))
    examples += [
        general_text_example(catalog[item], config.title_max_words, config.description_max_words)
        for item in cycle_sample(rng, items, counts["general_text"])
    ]
    rng.shuffle(examples)
    return examples
