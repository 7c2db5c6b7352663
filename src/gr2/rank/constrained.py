"""Constrained decoding of the answer `{"explanation": "...", "recommendations": ["<sid>", ...]}`.

Two phases, so that the model reasons freely and still cannot produce an invalid order:
1. reasoning: the answer is opened with `{"explanation": "` and the model writes freely until the JSON string
   ends (an unescaped quote), the reasoning budget is spent, or it stops;
2. ranking: the explanation is closed canonically (json.dumps), `, "recommendations": ["` is appended, and a
   logits processor lets the model emit only the request's candidate SIDs, each exactly once, with the
   separators and the closing `"]}` forced between and after them.
The text forms equal `gr2.traces.prompt.format_answer`, so serving decodes what training taught.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor, StoppingCriteria

ANSWER_OPEN = '{"explanation": "'
SEPARATOR = '", "'
CLOSING = '"]}'


def ranking_prefix(explanation: str) -> str:
    """The answer up to the first candidate SID, with the explanation as a canonical JSON string."""
    return '{"explanation": ' + json.dumps(explanation) + ', "recommendations": ["'


def explanation_end(text: str) -> int | None:
    """Index of the quote that ends a JSON string body (the first one not escaped), None if it has not ended."""
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return index
    return None


def explanation_text(generated: str) -> str:
    """The reasoning as plain text from the generated JSON string body (cut at its end, if it has one);
    broken escapes, e.g. from a cut at the budget, are kept as they were written."""
    end = explanation_end(generated)
    body = generated if end is None else generated[:end]
    for candidate in (body, body[:-1] if body.endswith("\\") else body):
        try:
            return json.loads(f'"{candidate}"', strict=False)
        except json.JSONDecodeError:
            continue
    return body


@dataclass(frozen=True)
class RankingGrammar:
    """The token sequences the ranking phase may produce for one request: every option (a candidate's SID
    token ids) exactly once, `separator` between two options, `closing` (ending with end-of-sequence) last."""

    options: tuple[tuple[int, ...], ...]
    separator: tuple[int, ...]
    closing: tuple[int, ...]

    def __post_init__(self) -> None:
        if len({len(option) for option in self.options}) != 1 or len(set(self.options)) != len(self.options):
            raise ValueError("RankingGrammar: options must be distinct token sequences of one length")

    @property
    def length(self) -> int:
        """Tokens of a complete ranking."""
        n = len(self.options)
        return n * len(self.options[0]) + (n - 1) * len(self.separator) + len(self.closing)

    def walk(self, generated: Sequence[int]) -> tuple[list[int], set[int] | None]:
        """Options chosen so far (in order) and the tokens allowed next (None once the ranking is complete).

        A token the grammar does not allow is a bug of the caller (the processor masks everything else)."""
        remaining = list(range(len(self.options)))
        chosen: list[int] = []
        position = 0
        while remaining:
            matching = remaining
            for offset in range(len(self.options[0])):
                if position == len(generated):
                    return chosen, {self.options[o][offset] for o in matching}
                matching = [o for o in matching if self.options[o][offset] == generated[position]]
                if not matching:
                    raise ValueError(f"token {generated[position]} at ranking position {position} is not allowed")
                position += 1
            chosen.append(matching[0])
            remaining.remove(matching[0])
            for token in self.separator if remaining else self.closing:
                if position == len(generated):
                    return chosen, {token}
                position += 1
        return chosen, None


class PermutationLogitsProcessor(LogitsProcessor):
    """Masks every token a row's `RankingGrammar` does not allow next; rows that are complete are left alone
    (generate pads them)."""

    def __init__(self, grammars: Sequence[RankingGrammar], prompt_length: int):
        self.grammars = list(grammars)
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        masked = torch.full_like(scores, float("-inf"))
        for row, grammar in enumerate(self.grammars):
            _, allowed = grammar.walk(input_ids[row, self.prompt_length :].tolist())
            if allowed is None:
                masked[row] = scores[row]
            else:
                index = torch.tensor(sorted(allowed), device=scores.device)
                masked[row, index] = scores[row, index]
        return masked


class ExplanationEnded(StoppingCriteria):
    """Per row: has the generated explanation string ended (an unescaped quote)?"""

    def __init__(self, tokenizer, prompt_length: int):
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length :], skip_special_tokens=True)
        return torch.tensor([explanation_end(text) is not None for text in texts], device=input_ids.device)
