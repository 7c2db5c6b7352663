"""The one output parser: model text -> a ranking of the request's candidates, or a named failure.

Accepted: a JSON object (optionally inside a ```json fence or after some text) with `recommendations`,
a list that is a permutation of exactly the candidates' semantic IDs. Anything else is a failure with a
reason from `FAILURE_REASONS`, so invalid outputs can be counted by cause.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

from gr2.sid.sidmap import SidMap

FAILURE_REASONS = (
    "no_json",
    "invalid_json",
    "missing_recommendations",
    "not_a_list",
    "unknown_sid",
    "not_a_candidate",
    "duplicate_item",
    "missing_candidates",
)

SID_PATTERN = re.compile(r"<\|sid_begin\|>((?:<s_[a-z]_\d+>)+)<\|sid_end\|>")
CODE_PATTERN = re.compile(r"<s_[a-z]_(\d+)>")


@dataclass(frozen=True)
class ParsedRanking:
    ranking: tuple[str, ...] | None
    explanation: str
    failure: str | None = None

    @property
    def valid(self) -> bool:
        return self.ranking is not None


def sid_codes(text: str) -> tuple[int, ...] | None:
    match = SID_PATTERN.fullmatch(text.strip())
    return tuple(int(code) for code in CODE_PATTERN.findall(match.group(1))) if match else None


def extract_json_object(text: str) -> str | None:
    """The outermost {...} of the text (models often wrap JSON in prose or code fences)."""
    start, end = text.find("{"), text.rfind("}")
    return text[start : end + 1] if start != -1 and end > start else None


def failure(reason: str, explanation: str = "") -> ParsedRanking:
    return ParsedRanking(ranking=None, explanation=explanation, failure=reason)


def parse_ranking(text: str, candidates: Sequence[str], sids: SidMap) -> ParsedRanking:
    """Parse a model's answer against the request's candidates (item ids, incoming order)."""
    raw = extract_json_object(text)
    if raw is None:
        return failure("no_json")
    try:
        payload = json.loads(raw)
    except json.JSONDecodeError:
        return failure("invalid_json")
    if not isinstance(payload, dict) or "recommendations" not in payload:
        return failure("missing_recommendations")
    explanation = str(payload.get("explanation", ""))
    listed = payload["recommendations"]
    if not isinstance(listed, list) or not all(isinstance(entry, str) for entry in listed):
        return failure("not_a_list", explanation)
    ranking = []
    for entry in listed:
        codes = sid_codes(entry)
        item = sids.item_for(codes) if codes else None
        if item is None:
            return failure("unknown_sid", explanation)
        if item not in candidates:
            return failure("not_a_candidate", explanation)
        if item in ranking:
            return failure("duplicate_item", explanation)
        ranking.append(item)
    if len(ranking) != len(candidates):
        return failure("missing_candidates", explanation)
    return ParsedRanking(ranking=tuple(ranking), explanation=explanation)
