"""Generators behind the re-ranker: transformers in this process, or a remote OpenAI-compatible server.

Both answer a batch of rendered prompts with the two-phase constrained decoding of `gr2.rank.constrained`
and both serve raw chat. They are synchronous (the predictor runs them in a worker thread) and honour a
deadline (time.monotonic seconds): past it they raise `DeadlineExceeded` instead of returning late.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import httpx
import torch
from transformers import AutoTokenizer, StoppingCriteriaList

from gr2.lm.models import load_model_and_tokenizer
from gr2.rank.constrained import (
    ANSWER_OPEN,
    CLOSING,
    SEPARATOR,
    ExplanationEnded,
    PermutationLogitsProcessor,
    RankingGrammar,
    explanation_text,
    ranking_prefix,
)
from gr2.rank.direct import DirectPrompt, label_logits
from gr2.sid.sidmap import SID_BEGIN, SID_END, sid_text

Codes = tuple[int, ...]


class DeadlineExceeded(TimeoutError):
    pass


class GeneratorError(RuntimeError):
    """The generator failed or answered something unusable (never the client's fault)."""


@dataclass(frozen=True)
class Answer:
    text: str
    reasoning_tokens: int
    ranking_tokens: int


@dataclass(frozen=True)
class ChatAnswer:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class Backend(Protocol):
    tokenizer: object

    def answer(
        self, prompts: Sequence[str], options: Sequence[Sequence[Codes]], reasoning_tokens: int, deadline: float
    ) -> list[Answer]: ...

    def chat(
        self, messages: list[dict], max_tokens: int, temperature: float, seed: int | None, deadline: float
    ) -> ChatAnswer: ...


def seconds_left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise DeadlineExceeded("the request's time ran out")
    return left


def render_chat(tokenizer, messages: list[dict]) -> str:
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, enable_thinking=False)


def sampling_arguments(temperature: float) -> dict:
    return {"do_sample": True, "temperature": temperature, "top_k": 0} if temperature > 0 else {"do_sample": False}


class LocalBackend:
    """A transformers causal LM with the SID vocabulary, greedy decoding, one batch at a time."""

    def __init__(self, model, tokenizer):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.tokenizer.padding_side = "left"
        self.separator = self.token_ids_between(SID_END, SEPARATOR, SID_BEGIN)
        self.closing = (*self.token_ids_between(SID_END, CLOSING, ""), tokenizer.eos_token_id)

    @classmethod
    def from_checkpoint(cls, path, device: str = "auto", dtype: str = "auto") -> LocalBackend:
        model, tokenizer = load_model_and_tokenizer(path, dtype)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        return cls(model.to(device), tokenizer)

    def token_ids_between(self, before: str, text: str, after: str) -> tuple[int, ...]:
        """Token ids of `text` as the tokenizer splits it between the added tokens `before` and `after`."""
        ids = self.tokenizer.encode(before + text + after, add_special_tokens=False)
        return tuple(ids[1 : len(ids) - (1 if after else 0)])

    def sid_ids(self, codes: Codes) -> tuple[int, ...]:
        return tuple(self.tokenizer.encode(sid_text(codes), add_special_tokens=False))

    def encode(self, texts: Sequence[str]):
        batch = self.tokenizer(list(texts), return_tensors="pt", padding=True, add_special_tokens=False)
        return batch.to(self.model.device)

    def generate(self, batch, deadline: float, **kwargs):
        """Generated token ids per row (prompt cut off) of a greedy or sampled continuation of `batch`."""
        with torch.inference_mode():
            output = self.model.generate(
                **batch, pad_token_id=self.tokenizer.pad_token_id, max_time=seconds_left(deadline), **kwargs
            )
        return output[:, batch["input_ids"].shape[1] :]

    def count_tokens(self, rows) -> list[int]:
        return [int((row != self.tokenizer.pad_token_id).sum()) for row in rows]

    def explain(
        self, prompts: Sequence[str], budget: int, deadline: float, temperature: float = 0.0
    ) -> tuple[list[str], list[int]]:
        if budget == 0:
            return [""] * len(prompts), [0] * len(prompts)
        batch = self.encode([prompt + ANSWER_OPEN for prompt in prompts])
        ended = ExplanationEnded(self.tokenizer, batch["input_ids"].shape[1])
        rows = self.generate(
            batch, deadline, max_new_tokens=budget, do_sample=False, stopping_criteria=StoppingCriteriaList([ended])
        )
        decoded = self.tokenizer.batch_decode(rows, skip_special_tokens=True)
        return [explanation_text(text) for text in decoded], self.count_tokens(rows)

    def rank(
        self, prefixes: Sequence[str], options: Sequence[Sequence[Codes]], deadline: float, temperature: float = 0.0
    ) -> tuple[list[str], list[int]]:
        """The ranking part of each answer (options' SIDs, each once, as the grammar forces them) and its
        length in tokens."""
        grammars = [
            RankingGrammar(tuple(self.sid_ids(codes) for codes in row), self.separator, self.closing) for row in options
        ]
        batch = self.encode(prefixes)
        rows = self.generate(
            batch,
            deadline,
            max_new_tokens=max(grammar.length for grammar in grammars),
            **sampling_arguments(temperature),
            eos_token_id=self.tokenizer.eos_token_id,  # the grammar's closing ends with this one
            logits_processor=[PermutationLogitsProcessor(grammars, batch["input_ids"].shape[1])],
        )
        for grammar, row in zip(grammars, rows, strict=True):
            if grammar.walk(row[: grammar.length].tolist())[1] is not None:
                seconds_left(deadline)
                raise GeneratorError("constrained ranking ended before every candidate was placed")
        lengths = [grammar.length for grammar in grammars]
        return self.tokenizer.batch_decode(rows, skip_special_tokens=True), lengths

    def answer(
        self,
        prompts: Sequence[str],
        options: Sequence[Sequence[Codes]],
        reasoning_tokens: int,
        deadline: float,
        temperature: float = 0.0,
    ) -> list[Answer]:
        """Greedy answers (serving), or sampled ones at `temperature` > 0 (RL rollouts)."""
        explanations, spent = self.explain(prompts, reasoning_tokens, deadline, temperature)
        prefixes = [prompt + ranking_prefix(text) for prompt, text in zip(prompts, explanations, strict=True)]
        rankings, lengths = self.rank(prefixes, options, deadline, temperature)
        return [
            Answer(ranking_prefix(text) + ranking, reasoning, length)
            for text, ranking, reasoning, length in zip(explanations, rankings, spent, lengths, strict=True)
        ]

    def label_logits(
        self, prompts: Sequence[DirectPrompt], head_ids: Sequence[int], deadline: float
    ) -> list[torch.Tensor]:
        """Direct mode: each prompt's per-label scores, one batched prefill."""
        seconds_left(deadline)
        return label_logits(self.model, self.tokenizer, prompts, head_ids)

    def chat(
        self, messages: list[dict], max_tokens: int, temperature: float, seed: int | None, deadline: float
    ) -> ChatAnswer:
        prompt = render_chat(self.tokenizer, messages)
        sampling = sampling_arguments(temperature)
        if seed is not None:
            torch.manual_seed(seed)
        row = self.generate(self.encode([prompt]), deadline, max_new_tokens=max_tokens, **sampling)[0]
        completion_tokens = self.count_tokens([row])[0]
        finished = completion_tokens < len(row) or int(row[-1]) == self.tokenizer.eos_token_id
        return ChatAnswer(
            text=self.tokenizer.decode(row, skip_special_tokens=True),
            prompt_tokens=len(self.tokenizer.encode(prompt, add_special_tokens=False)),
            completion_tokens=completion_tokens,
            finish_reason="stop" if finished else "length",
        )


class RemoteBackend:
    """An OpenAI-compatible generator (vLLM, KServe's huggingface runtime with vLLM). The prompt is rendered
    here with the bundle's tokenizer and sent to /completions, so it is the one training saw. The reasoning
    phase stops at the first quote (a `\\"` inside the reasoning ends it early); the ranking is chosen one
    position at a time with vLLM's `structured_outputs.choice` among the candidates not yet placed."""

    def __init__(self, tokenizer, base_url: str, model: str, api_key: str = "", client=None):
        self.tokenizer = tokenizer
        self.model = model
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = client or httpx.Client(base_url=base_url.rstrip("/"), headers=headers)

    @classmethod
    def from_checkpoint(cls, path, base_url: str, model: str, api_key_env: str) -> RemoteBackend:
        return cls(AutoTokenizer.from_pretrained(path), base_url, model, os.environ.get(api_key_env, ""))

    def post(self, path: str, body: dict, deadline: float) -> dict:
        try:
            response = self.client.post(path, json={"model": self.model, **body}, timeout=seconds_left(deadline))
        except httpx.TimeoutException as error:
            raise DeadlineExceeded(f"generator {path}: {error}") from error
        except httpx.TransportError as error:
            raise GeneratorError(f"generator {path}: {error}") from error
        if response.status_code != 200:
            raise GeneratorError(f"generator {path}: HTTP {response.status_code}: {response.text[:300]}")
        return response.json()

    def complete(self, prompt: str, deadline: float, **body) -> tuple[str, int]:
        reply = self.post(
            "/completions",
            {"prompt": prompt, "temperature": 0.0, "add_special_tokens": False, **body},
            deadline,
        )
        return reply["choices"][0]["text"], int(reply.get("usage", {}).get("completion_tokens", 0))

    def explain(self, prompt: str, budget: int, deadline: float) -> tuple[str, int]:
        if budget == 0:
            return "", 0
        text, tokens = self.complete(prompt + ANSWER_OPEN, deadline, max_tokens=budget, stop=['"'])
        return explanation_text(text), tokens

    def rank(self, prefix: str, options: Sequence[Codes], deadline: float) -> tuple[str, int]:
        remaining = [sid_text(codes) for codes in options]
        ranking, tokens = "", 0
        while len(remaining) > 1:
            pick, spent = self.complete(
                prefix + ranking, deadline, max_tokens=64, structured_outputs={"choice": remaining}
            )
            if pick not in remaining:
                raise GeneratorError(
                    f"generator answered {pick[:80]!r}, not one of the candidates (does it support "
                    "structured_outputs.choice, vLLM >= 0.12?)"
                )
            remaining.remove(pick)
            ranking, tokens = ranking + pick + SEPARATOR, tokens + spent
        return ranking + remaining[0] + CLOSING, tokens

    def answer_one(self, prompt: str, options: Sequence[Codes], reasoning_tokens: int, deadline: float) -> Answer:
        explanation, reasoning_spent = self.explain(prompt, reasoning_tokens, deadline)
        prefix = ranking_prefix(explanation)
        ranking, ranking_spent = self.rank(prompt + prefix, options, deadline)
        return Answer(prefix + ranking, reasoning_spent, ranking_spent)

    def answer(
        self, prompts: Sequence[str], options: Sequence[Sequence[Codes]], reasoning_tokens: int, deadline: float
    ) -> list[Answer]:
        with ThreadPoolExecutor(max_workers=min(8, len(prompts))) as pool:
            return list(pool.map(lambda p, o: self.answer_one(p, o, reasoning_tokens, deadline), prompts, options))

    def chat(
        self, messages: list[dict], max_tokens: int, temperature: float, seed: int | None, deadline: float
    ) -> ChatAnswer:
        body = {"messages": messages, "max_tokens": max_tokens, "temperature": temperature}
        reply = self.post("/chat/completions", body | ({"seed": seed} if seed is not None else {}), deadline)
        choice, usage = reply["choices"][0], reply.get("usage", {})
        return ChatAnswer(
            text=choice["message"]["content"] or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=choice.get("finish_reason") or "stop",
        )
