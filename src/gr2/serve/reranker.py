"""The serving logic between validated requests and a backend: prompts from the one prompt builder,
answers judged by the one parser, and a fallback to the incoming order whenever a model answer cannot be
used. A model problem never becomes an HTTP error.

Fallback reasons: `nothing_to_rank` (fewer than two candidates the model knows), `prompt_too_long`,
`timeout`, `generator_error`, or a parser failure (`gr2.traces.parse.FAILURE_REASONS`).

A bundle decoded in `direct` mode answers from one batched prefill (the label logits, fused with the
incoming order as the bundle says); its explanation is the empty string when one is asked for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from gr2.lm.chat import render_prompt
from gr2.rank.direct import (
    DirectPrompt,
    PromptContext,
    direct_prompt,
    fused_scores,
    head_token_ids,
    ranking_from_scores,
)
from gr2.serve.backends import Answer, Backend, ChatAnswer, DeadlineExceeded, GeneratorError
from gr2.serve.bundle import Bundle
from gr2.serve.config import MIN_CANDIDATES, ServeConfig
from gr2.serve.metrics import FALLBACKS, GENERATED_TOKENS, RANKED_INSTANCES
from gr2.serve.validation import RankRequest
from gr2.traces.parse import parse_ranking
from gr2.traces.prompt import build_messages

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RankResult:
    ranking: tuple[str, ...]
    explanation: str | None
    fallback: bool
    fallback_reason: str | None

    def to_json(self) -> dict:
        body = {"ranking": list(self.ranking), "fallback": self.fallback, "fallback_reason": self.fallback_reason}
        return body if self.explanation is None else body | {"explanation": self.explanation}


def fallback(request: RankRequest, reason: str, explanation: str = "") -> RankResult:
    return RankResult(request.candidates, explanation if request.explain else None, True, reason)


def request_prompt(tokenizer, bundle: Bundle, history: Sequence[str], candidates: Sequence[str]) -> str:
    """The rendered chat prompt, assistant turn opened, asking to re-rank `candidates` after `history`."""
    system, user = build_messages(history, candidates, bundle.catalog, bundle.sid_map, bundle.manifest.prompt)
    return render_prompt(tokenizer, system["content"], user["content"])


def merge_ranking(candidates: Sequence[str], ranked: Sequence[str]) -> tuple[str, ...]:
    """The candidates with the ranked (known) ones re-ordered into their slots; unknown ones stay put."""
    slots = set(ranked)
    reordered = iter(ranked)
    return tuple(next(reordered) if item in slots else item for item in candidates)


class Reranker:
    def __init__(self, bundle: Bundle, backend: Backend, config: ServeConfig):
        self.bundle = bundle
        self.backend = backend
        self.config = config
        self.decoding = config.decoding(bundle.manifest.decoding)
        self.prompt_config = bundle.manifest.prompt
        self.slots = asyncio.Semaphore(config.concurrency)
        self.head_ids = self.direct_head_ids() if self.decoding.mode == "direct" else []
        self.context = PromptContext(bundle.catalog, bundle.sid_map, self.prompt_config, bundle.evidence)

    def direct_head_ids(self) -> list[int]:
        if not hasattr(self.backend, "label_logits"):
            raise ValueError(f"decoding mode 'direct' needs the local backend; {type(self.backend).__name__} has none")
        if self.decoding.max_candidates > len(self.prompt_config.direct_labels):
            raise ValueError(
                f"decoding.max_candidates={self.decoding.max_candidates} but the bundle's prompt has only "
                f"{len(self.prompt_config.direct_labels)} direct_labels"
            )
        return head_token_ids(self.backend.tokenizer, self.prompt_config)

    def rankable(self, item_id: str) -> bool:
        return self.bundle.rankable(item_id)

    def prompt(self, request: RankRequest, candidates: Sequence[str]) -> str | DirectPrompt:
        """The reasoning prompt's text, or in direct mode the labelled prompt with its candidate order."""
        history = [item for item in request.history if self.rankable(item)]
        if self.decoding.mode == "direct":
            return direct_prompt(self.backend.tokenizer, history, candidates, self.context)
        return request_prompt(self.backend.tokenizer, self.bundle, history, candidates)

    def prompt_tokens(self, prompt: str) -> int:
        return len(self.backend.tokenizer.encode(prompt, add_special_tokens=False))

    async def in_slot(self, deadline: float, work, *args):
        """Run blocking `work(*args)` in a thread once a generation slot is free, within the deadline."""
        try:
            await asyncio.wait_for(self.slots.acquire(), timeout=max(deadline - time.monotonic(), 0))
        except (TimeoutError, asyncio.TimeoutError) as error:
            raise DeadlineExceeded("no generation slot became free in time") from error
        try:
            return await asyncio.to_thread(work, *args)
        finally:
            self.slots.release()

    async def answers(self, prompts: list[str], options: list[list[tuple[int, ...]]], deadline: float):
        """The backend's answers, or one fallback reason for all of them."""
        try:
            budget = self.decoding.reasoning_tokens
            return await self.in_slot(deadline, self.backend.answer, prompts, options, budget, deadline)
        except DeadlineExceeded:
            return "timeout"
        except GeneratorError as error:
            log.warning("generator failed: %s", error)
            return "generator_error"
        except Exception:  # a model problem is answered with a fallback, never a 500
            log.exception("generator raised")
            return "generator_error"

    def judge(self, request: RankRequest, ranked: Sequence[str], answer: Answer) -> RankResult:
        GENERATED_TOKENS.labels("reasoning").inc(answer.reasoning_tokens)
        GENERATED_TOKENS.labels("ranking").inc(answer.ranking_tokens)
        parsed = parse_ranking(answer.text, ranked, self.bundle.sid_map)
        if not parsed.valid:
            return fallback(request, parsed.failure, parsed.explanation)
        explanation = parsed.explanation if request.explain else None
        return RankResult(merge_ranking(request.candidates, parsed.ranking), explanation, False, None)

    def prepare(self, request: RankRequest) -> RankResult | tuple[list[str], str | DirectPrompt]:
        """A fallback decided before any generation, or the rankable candidates and the prompt."""
        known = [item for item in request.candidates if self.rankable(item)]
        if len(known) < MIN_CANDIDATES:
            return fallback(request, "nothing_to_rank")
        prompt = self.prompt(request, known)
        length = len(prompt.token_ids) if isinstance(prompt, DirectPrompt) else self.prompt_tokens(prompt)
        if length > self.prompt_config.max_prompt_tokens:
            return fallback(request, "prompt_too_long")
        return known, prompt

    async def direct_results(
        self, requests: Sequence[RankRequest], prepared: dict[int, tuple[list[str], DirectPrompt]], deadline: float
    ) -> dict[int, RankResult]:
        """Direct mode: one batched prefill ranks every prepared request."""
        prompts = [prompt for _, prompt in prepared.values()]
        try:
            logits = await self.in_slot(deadline, self.backend.label_logits, prompts, self.head_ids, deadline)
        except DeadlineExceeded:
            return {index: fallback(requests[index], "timeout") for index in prepared}
        except Exception:  # a model problem is answered with a fallback, never a 500
            log.exception("direct scoring raised")
            return {index: fallback(requests[index], "generator_error") for index in prepared}
        results = {}
        for (index, (known, prompt)), row in zip(prepared.items(), logits, strict=True):
            scores = fused_scores(prompt.incoming_order(row), self.decoding.fusion_lambda)
            ranking = ranking_from_scores(known, scores)
            explanation = "" if requests[index].explain else None
            results[index] = RankResult(merge_ranking(requests[index].candidates, ranking), explanation, False, None)
        return results

    async def generated_results(
        self, requests: Sequence[RankRequest], prepared: dict[int, tuple[list[str], str]], deadline: float
    ) -> dict[int, RankResult]:
        """Reasoning mode: constrained generation, judged by the one parser."""
        codes = [[self.bundle.sid_map.codes[item] for item in known] for known, _ in prepared.values()]
        answers = await self.answers([prompt for _, prompt in prepared.values()], codes, deadline)
        if isinstance(answers, str):
            return {index: fallback(requests[index], answers) for index in prepared}
        return {
            index: self.judge(requests[index], known, answer)
            for (index, (known, _)), answer in zip(prepared.items(), answers, strict=True)
        }

    async def rank(self, requests: Sequence[RankRequest]) -> list[RankResult]:
        deadline = time.monotonic() + self.config.timeout_seconds
        results = [self.prepare(request) for request in requests]
        prepared = {index: result for index, result in enumerate(results) if not isinstance(result, RankResult)}
        if prepared:
            decode = self.direct_results if self.decoding.mode == "direct" else self.generated_results
            for index, result in (await decode(requests, prepared, deadline)).items():
                results[index] = result
        RANKED_INSTANCES.inc(len(results))
        for result in results:
            if result.fallback:
                FALLBACKS.labels(result.fallback_reason).inc()
        return results

    async def chat(self, messages: list[dict], max_tokens: int, temperature: float, seed: int | None) -> ChatAnswer:
        deadline = time.monotonic() + self.config.timeout_seconds
        answer = await self.in_slot(deadline, self.backend.chat, messages, max_tokens, temperature, seed, deadline)
        GENERATED_TOKENS.labels("chat").inc(answer.completion_tokens)
        return answer
