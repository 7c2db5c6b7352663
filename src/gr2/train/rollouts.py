"""Constrained rollouts for DAPO: the same two-phase decoding the server uses (free reasoning, then a
ranking that can only be a permutation of the candidates), sampled at the rollout temperature.

Training under the decoding that serving applies keeps train and serve aligned, and it gives a small
student verifiable rewards from its first step: an unconstrained 135M model rarely writes a valid
permutation of ten SIDs, and groups of invalid answers all score the same penalty, so dynamic sampling
would starve. With `dapo.constrained_rollouts: false` rollouts are plain sampling, as in the paper.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gr2.rank.generation import chat_prompt
from gr2.sid.sidmap import SidMap


@dataclass
class ConstrainedRollout:
    """A TRL `rollout_func`: prompts (chat messages) -> prompt ids, completion ids (each ending in EOS)."""

    sids: SidMap
    candidates_by_prompt: dict[str, tuple[str, ...]]
    reasoning_tokens: int
    temperature: float

    def candidates_of(self, messages: list[dict[str, str]]) -> tuple[str, ...]:
        return self.candidates_by_prompt[messages[-1]["content"]]

    def __call__(self, prompts: list[list[dict[str, str]]], trainer) -> dict:
        from gr2.serve.backends import LocalBackend

        tokenizer = trainer.processing_class
        backend = LocalBackend(trainer.model, tokenizer)
        texts = [chat_prompt(tokenizer, messages) for messages in prompts]
        options = [[self.sids.codes[item] for item in self.candidates_of(messages)] for messages in prompts]
        answers = backend.answer(texts, options, self.reasoning_tokens, math.inf, temperature=self.temperature)
        trainer.model.train()
        prompt_ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        completion_ids = [
            tokenizer(answer.text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
            for answer in answers
        ]
        return {"prompt_ids": prompt_ids, "completion_ids": completion_ids, "logprobs": None}
