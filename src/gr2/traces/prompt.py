"""The one prompt builder: teacher, SFT, RL, evaluation and serving all call `build_messages`, so what
a model is trained on and what it is asked in production never drift apart."""

from __future__ import annotations

import json
from collections.abc import Sequence

from gr2.data.schema import Item
from gr2.sid.sidmap import SidMap
from gr2.traces.config import PromptConfig

SYSTEM_PROMPT = (
    "You are a recommendation analyst. You re-rank the candidate items an upstream recommender proposed "
    "for a user, from most to least likely to be the user's next purchase. Items are written as semantic "
    "IDs (<|sid_begin|>...<|sid_end|>) followed by title and category; always cite items by their semantic ID."
)

TASK_STEPS = (
    "Think in three steps: 1) broad patterns in the history (categories, brands, needs); "
    "2) products or categories that complement or follow what the user bought; "
    "3) match each candidate against those patterns.\n"
    'Answer with JSON only: {"explanation": "<your three steps>", "recommendations": [<all candidate '
    "semantic IDs, best first, each exactly once>]}"
)


def describe_item(item: Item, sid: str, config: PromptConfig) -> str:
    title = item.display_title[: config.title_chars]
    levels = item.categories[-config.category_levels :] if config.category_levels else ()
    return f"{sid} {title}" + (f" ({' > '.join(levels)})" if levels else "")


def user_prompt(
    history: Sequence[str], candidates: Sequence[str], catalog: dict[str, Item], sids: SidMap, config: PromptConfig
) -> str:
    shown = history[-config.history_items :]
    history_lines = [describe_item(catalog[i], sids.text(i), config) for i in shown]
    candidate_lines = [describe_item(catalog[i], sids.text(i), config) for i in candidates]
    return "\n".join(
        [
            f"Domain knowledge: {config.domain_knowledge}",
            f"Purchase history, oldest first ({len(shown)} most recent):",
            *(f"- {line}" for line in history_lines),
            f"Candidates ({len(candidates)}):",
            *(f"- {line}" for line in candidate_lines),
            TASK_STEPS,
        ]
    )


def build_messages(
    history: Sequence[str], candidates: Sequence[str], catalog: dict[str, Item], sids: SidMap, config: PromptConfig
) -> list[dict[str, str]]:
    """Chat messages (system, user) asking to re-rank `candidates` for a user with `history`."""
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_prompt(history, candidates, catalog, sids, config)},
    ]


def format_answer(explanation: str, ranking: Sequence[str], sids: SidMap) -> str:
    """The assistant turn for a trace: the JSON object the parser accepts."""
    return json.dumps({"explanation": explanation, "recommendations": [sids.text(i) for i in ranking]})
