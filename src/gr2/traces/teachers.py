"""Teachers: one interface, several backends. Each turns chat requests into raw answer texts; the one
parser (`gr2.traces.parse`) judges them, whatever wrote them."""

from __future__ import annotations

import os
import random
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from gr2.traces.config import TeacherConfig


@dataclass(frozen=True)
class TeacherRequest:
    messages: list[dict[str, str]]
    history: tuple[str, ...]
    candidates: tuple[str, ...]
    seed: int
    hint_target: str | None = None


class Teacher(Protocol):
    name: str

    def generate(self, requests: Sequence[TeacherRequest]) -> list[str]: ...


def targeted_hint(target_sid: str) -> str:
    """Appended to the user turn in targeted mode: the teacher is told the answer."""
    return f"\nThe user's actual next purchase was {target_sid}. Explain why, and rank it first."


class EvidenceBackend:
    """Wraps the evidence analyst (`gr2.traces.evidence`); it reads the structured request, not the text."""

    def __init__(self, analyst):
        self.analyst = analyst
        self.name = analyst.name

    def generate(self, requests: Sequence[TeacherRequest]) -> list[str]:
        return [
            self.analyst.answer(r.history, r.candidates, random.Random(r.seed), forced_first=r.hint_target)
            for r in requests
        ]


class OpenAIChatBackend:
    """Any OpenAI-compatible /chat/completions endpoint, with retries, backoff and bounded concurrency."""

    def __init__(self, config: TeacherConfig):
        import httpx

        if not config.base_url or not config.model:
            raise ValueError("teacher.backend=openai needs teacher.base_url and teacher.model")
        self.config = config
        self.name = f"openai:{config.model}"
        api_key = os.environ.get(config.api_key_env, "")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(
            base_url=config.base_url.rstrip("/"), headers=headers, timeout=config.timeout_seconds
        )

    def complete(self, request: TeacherRequest) -> str:
        import httpx

        body = {
            "model": self.config.model,
            "messages": request.messages,
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_new_tokens,
            "seed": request.seed,
        }
        for attempt in range(self.config.max_retries + 1):
            try:
                response = self.client.post("/chat/completions", json=body)
                if response.status_code < 500 and response.status_code != 429:
                    response.raise_for_status()
                    return response.json()["choices"][0]["message"]["content"] or ""
                error: Exception = RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
            except (httpx.TransportError, httpx.TimeoutException) as transport_error:
                error = transport_error
            if attempt < self.config.max_retries:
                time.sleep(min(2**attempt * 0.5, 30))
        raise RuntimeError(
            f"teacher {self.config.base_url}: gave up after {self.config.max_retries + 1} tries: {error}"
        )

    def generate(self, requests: Sequence[TeacherRequest]) -> list[str]:
        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            return list(pool.map(self.complete, requests))


class HFBackend:
    """A local transformers model, sampled with its chat template."""

    def __init__(self, config: TeacherConfig, model=None, tokenizer=None):
        from gr2.lm.generate import load_for_generation

        self.config = config
        self.name = f"hf:{config.model}"
        self.model, self.tokenizer = (model, tokenizer) if model is not None else load_for_generation(config.model)

    def generate(self, requests: Sequence[TeacherRequest]) -> list[str]:
        from gr2.lm.generate import sample_chat

        return [
            sample_chat(
                self.model, self.tokenizer, r.messages, self.config.max_new_tokens, self.config.temperature, r.seed
            )
            for r in requests
        ]


class VLLMBackend:
    """vLLM's offline engine; vllm exists only in the GPU image, so it is imported only when chosen."""

    def __init__(self, config: TeacherConfig):
        try:
            from vllm import LLM, SamplingParams
        except ImportError as error:
            raise RuntimeError("teacher.backend=vllm needs the GPU image (vllm is not installed here)") from error
        self.config = config
        self.name = f"vllm:{config.model}"
        self.engine = LLM(model=config.model)
        self.sampling = SamplingParams

    def generate(self, requests: Sequence[TeacherRequest]) -> list[str]:
        params = [
            self.sampling(temperature=self.config.temperature, max_tokens=self.config.max_new_tokens, seed=r.seed)
            for r in requests
        ]
        outputs = self.engine.chat([r.messages for r in requests], params, use_tqdm=True)
        return [output.outputs[0].text for output in outputs]
