"""The one prompt builder: teacher, SFT, RL, evaluation and serving all call `build_messages`, so what
a model is trained on and what it is asked in production never drift apart.

Two answer modes share the item rendering:
- `reasoning`: the model writes `{"explanation": ..., "recommendations": [SIDs]}`;
- `direct`: each candidate carries a one-token label (`PromptConfig.direct_labels`) and the model's scores
  are the label tokens' logits at the first answer position (one prefill, `gr2.rank.direct`). The ranking
  is still written out as the reasoning mode's JSON (`format_answer` with an empty explanation).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Literal

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

DIRECT_SYSTEM_PROMPT = "Judge which labelled candidate product a shopper will buy next."
DIRECT_TASK = "Answer with one label."
DIRECT_CANDIDATES_HEADER = "Candidates:"  # the line before the candidate lines (gr2.rank.direct finds them by it)

AnswerMode = Literal["reasoning", "direct"]


def describe_item(item: Item, sid: str | None, config: PromptConfig) -> str:
    """`SID title (category)`; without the SID when `sid` is None."""
    title = item.display_title[: config.title_chars]
    levels = item.categories[-config.category_levels :] if config.category_levels else ()
    shown = f"{sid} {title}" if sid else title
    return shown + (f" ({' > '.join(levels)})" if levels else "")


def history_lines(
    history: Sequence[str], catalog: dict[str, Item], sid_of: Callable[[str], str | None], config: PromptConfig
) -> list[str]:
    shown = history[-config.history_items :]
    return [
        f"Purchase history, oldest first ({len(shown)} most recent):",
        *(f"- {describe_item(catalog[i], sid_of(i), config)}" for i in shown),
    ]


def user_prompt(
    history: Sequence[str], candidates: Sequence[str], catalog: dict[str, Item], sids: SidMap, config: PromptConfig
) -> str:
    candidate_lines = [describe_item(catalog[i], sids.text(i), config) for i in candidates]
    return "\n".join(
        [
            f"Domain knowledge: {config.domain_knowledge}",
            *history_lines(history, catalog, sids.text, config),
            f"Candidates ({len(candidates)}):",
            *(f"- {line}" for line in candidate_lines),
            TASK_STEPS,
        ]
    )


def direct_user_prompt(
    history: Sequence[str],
    candidates: Sequence[str],
    catalog: dict[str, Item],
    sids: SidMap,
    config: PromptConfig,
    notes: Sequence[str] | None = None,
) -> str:
    """The direct mode's question: labelled candidates, one per line, each with its note (an upstream rank,
    collaborative evidence) in brackets when `notes` are given."""
    if len(candidates) > len(config.direct_labels):
        raise ValueError(
            f"direct prompt: {len(candidates)} candidates but only {len(config.direct_labels)} direct_labels"
        )
    suffixes = [f" [{note}]" if note else "" for note in notes] if notes else [""] * len(candidates)
    sid_of = sids.text if config.direct_show_sids else lambda item: None
    candidate_lines = [
        f"{label}. {describe_item(catalog[i], sid_of(i), config)}{suffix}"
        for label, i, suffix in zip(config.direct_labels, candidates, suffixes, strict=False)
    ]
    history_part = history_lines(history, catalog, sid_of, config)
    return "\n".join([*history_part, DIRECT_CANDIDATES_HEADER, *candidate_lines, DIRECT_TASK])


def build_messages(
    history: Sequence[str],
    candidates: Sequence[str],
    catalog: dict[str, Item],
    sids: SidMap,
    config: PromptConfig,
    mode: AnswerMode = "reasoning",
    notes: Sequence[str] | None = None,
) -> list[dict[str, str]]:
    """Chat messages (system, user) asking to re-rank `candidates` for a user with `history`; `notes`
    (direct mode) are written beside the candidates."""
    if mode == "direct":
        user = direct_user_prompt(history, candidates, catalog, sids, config, notes)
        return [{"role": "system", "content": DIRECT_SYSTEM_PROMPT}, {"role": "user", "content": user}]
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_prompt(history, candidates, catalog, sids, config)},
    ]


def format_answer(explanation: str, ranking: Sequence[str], sids: SidMap) -> str:
    """The assistant turn for a trace: the JSON object the parser accepts."""
    return json.dumps({"explanation": explanation, "recommendations": [sids.text(i) for i in ranking]})
