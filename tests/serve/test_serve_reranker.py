"""The serving logic on tiny-random: constrained answers are valid permutations, unknown items, fallbacks by
reason, the remote (OpenAI-compatible) backend against a fake vLLM, and raw chat."""

from __future__ import annotations

import asyncio
import dataclasses
import json

import httpx
import pytest
import torch
from prometheus_client import REGISTRY

from gr2.rank.constrained import ranking_prefix
from gr2.serve.backends import Answer, DeadlineExceeded, LocalBackend, RemoteBackend
from gr2.serve.config import ServeConfig
from gr2.serve.reranker import Reranker, merge_ranking
from gr2.serve.validation import RankRequest
from gr2.traces.config import PromptConfig


@pytest.fixture(scope="module")
def local_backend(bundle_dir):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # far faster than oversubscribed threads on a shared CPU
    yield LocalBackend.from_checkpoint(bundle_dir, device="cpu")
    torch.set_num_threads(threads)


def make_reranker(bundle, backend, **config) -> Reranker:
    return Reranker(bundle, backend, ServeConfig(model=str(bundle.path), **config))


def rank(reranker: Reranker, *requests: RankRequest):
    return asyncio.run(reranker.rank(requests))


def fallback_count(reason: str) -> float:
    return REGISTRY.get_sample_value("gr2_fallbacks_total", {"reason": reason}) or 0.0


class ScriptedBackend:
    """Stands in for a model: answers with `outcome` (a text or an exception)."""

    def __init__(self, tokenizer, outcome):
        self.tokenizer = tokenizer
        self.outcome = outcome

    def answer(self, prompts, options, reasoning_tokens, deadline):
        if isinstance(self.outcome, Exception):
            raise self.outcome
        return [Answer(self.outcome, 0, 0) for _ in prompts]


def test_constrained_answers_are_permutations(bundle, local_backend, sequences):
    reranker = make_reranker(bundle, local_backend)
    requests = []
    for user, sequence in enumerate(sequences[:6]):
        others = [item for other in sequences[user + 1 :] for item in other if item not in sequence]
        candidates = tuple(dict.fromkeys([sequence[-1], *others]))[: 4 + user]
        requests.append(RankRequest(tuple(sequence[:-1][-20:]), candidates, explain=user % 2 == 0))
    results = rank(reranker, *requests)
    for request, result in zip(requests, results, strict=True):
        assert not result.fallback and result.fallback_reason is None
        assert sorted(result.ranking) == sorted(request.candidates)
        assert (result.explanation is not None) == request.explain


def test_reasoning_free_decoding(bundle, local_backend, example):
    history, candidates = example
    reranker = make_reranker(bundle, local_backend, reasoning_tokens=0)
    (result,) = rank(reranker, RankRequest(tuple(history), tuple(candidates), explain=True))
    assert not result.fallback and result.explanation == ""


def test_unknown_candidates_keep_their_slots(bundle, local_backend, example):
    history, candidates = example
    incoming = (candidates[0], "unknown-1", *candidates[1:4], "unknown-2")
    reranker = make_reranker(bundle, local_backend, unknown_items="keep")
    (result,) = rank(reranker, RankRequest(("unknown-3", *history), incoming))
    assert not result.fallback
    assert result.ranking[1] == "unknown-1" and result.ranking[5] == "unknown-2"
    assert sorted(result.ranking) == sorted(incoming)
    assert "unknown-3" not in reranker.prompt(RankRequest(("unknown-3", *history), incoming), candidates[:4])


def test_merge_ranking():
    assert merge_ranking(["a", "x", "b", "c"], ["c", "a", "b"]) == ("c", "x", "a", "b")


def test_too_few_known_candidates_fall_back(bundle, local_backend, example):
    reranker = make_reranker(bundle, local_backend, unknown_items="keep")
    before = fallback_count("nothing_to_rank")
    (result,) = rank(reranker, RankRequest((), (example[1][0], "unknown")))
    assert result.ranking == (example[1][0], "unknown")
    assert (result.fallback, result.fallback_reason) == (True, "nothing_to_rank")
    assert fallback_count("nothing_to_rank") == before + 1


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        (DeadlineExceeded("slow"), "timeout"),
        (RuntimeError("CUDA out of memory"), "generator_error"),
        ("I cannot rank these.", "no_json"),
        (ranking_prefix("fine") + '<|sid_begin|><s_a_0><|sid_end|>"]}', "unknown_sid"),
    ],
)
def test_model_problems_fall_back_to_the_incoming_order(bundle, local_backend, example, outcome, reason):
    history, candidates = example
    reranker = make_reranker(bundle, ScriptedBackend(local_backend.tokenizer, outcome))
    before = fallback_count(reason)
    (result,) = rank(reranker, RankRequest(tuple(history), tuple(candidates), explain=True))
    assert (result.ranking, result.fallback, result.fallback_reason) == (tuple(candidates), True, reason)
    assert fallback_count(reason) == before + 1


def test_a_real_timeout_falls_back(bundle, local_backend, example):
    history, candidates = example
    reranker = make_reranker(bundle, local_backend, timeout_seconds=0.001)
    (result,) = rank(reranker, RankRequest(tuple(history), tuple(candidates)))
    assert (result.fallback, result.fallback_reason) == (True, "timeout")


def test_overlong_prompts_fall_back(bundle, local_backend, example):
    short = dataclasses.replace(
        bundle, manifest=bundle.manifest.model_copy(update={"prompt": PromptConfig(max_prompt_tokens=64)})
    )
    (result,) = rank(make_reranker(short, local_backend), RankRequest(tuple(example[0]), tuple(example[1])))
    assert result.fallback_reason == "prompt_too_long"


def test_queued_requests_share_one_slot(bundle, local_backend, example):
    history, candidates = example

    async def two_at_once():
        reranker = make_reranker(bundle, local_backend, concurrency=1)
        request = RankRequest(tuple(history), tuple(candidates))
        return await asyncio.gather(reranker.rank([request]), reranker.rank([request]))

    first, second = asyncio.run(two_at_once())
    assert not first[0].fallback and first[0].ranking == second[0].ranking


def test_local_chat(local_backend):
    import time

    answer = local_backend.chat([{"role": "user", "content": "hello"}], 3, 0.7, 1, time.monotonic() + 30)
    assert answer.completion_tokens <= 3 and answer.prompt_tokens > 0
    assert answer.finish_reason in {"stop", "length"}


class FakeVLLM:
    """An OpenAI-compatible /completions that picks the last choice it is offered."""

    def __init__(self, honour_choices: bool = True):
        self.bodies: list[dict] = []
        self.honour_choices = honour_choices

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.bodies.append(body)
        if request.url.path.endswith("/chat/completions"):
            choice = {"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
            usage = {"prompt_tokens": 5, "completion_tokens": 1}
            return httpx.Response(200, json={"choices": [choice], "usage": usage})
        choices = body.get("structured_outputs", {}).get("choice")
        text = (choices[-1] if self.honour_choices else "<|sid_begin|>") if choices else 'Office "stuff'
        return httpx.Response(200, json={"choices": [{"text": text}], "usage": {"completion_tokens": 6}})


def remote(local_backend, fake: FakeVLLM) -> RemoteBackend:
    client = httpx.Client(base_url="http://vllm/v1", transport=httpx.MockTransport(fake))
    return RemoteBackend(local_backend.tokenizer, "http://vllm/v1", "gr2-llm", client=client)


def test_remote_backend_ranks_one_choice_at_a_time(bundle, local_backend, example):
    history, candidates = example
    fake = FakeVLLM()
    reranker = make_reranker(bundle, remote(local_backend, fake))
    (result,) = rank(reranker, RankRequest(tuple(history), tuple(candidates[:4]), explain=True))
    assert (result.fallback, result.ranking, result.explanation) == (False, tuple(reversed(candidates[:4])), "Office ")
    explain_call, *choice_calls = fake.bodies
    assert explain_call["prompt"].endswith('<|im_start|>assistant\n{"explanation": "')
    assert explain_call["stop"] == ['"'] and explain_call["max_tokens"] == 8
    assert all(body["model"] == "gr2-llm" and body["add_special_tokens"] is False for body in fake.bodies)
    assert [len(body["structured_outputs"]["choice"]) for body in choice_calls] == [4, 3, 2]
    asked = json.loads(choice_calls[-1]["prompt"].split("<|im_start|>assistant\n")[-1] + '"]}')
    assert len(asked["recommendations"]) == 3  # two chosen, one empty string before the next choice


def test_remote_backend_that_ignores_choices_falls_back(bundle, local_backend, example):
    reranker = make_reranker(bundle, remote(local_backend, FakeVLLM(honour_choices=False)))
    (result,) = rank(reranker, RankRequest(tuple(example[0]), tuple(example[1])))
    assert (result.fallback, result.fallback_reason) == (True, "generator_error")


def test_remote_chat_passes_through(local_backend):
    import time

    answer = remote(local_backend, FakeVLLM()).chat([{"role": "user", "content": "x"}], 4, 0.0, 3, time.monotonic() + 5)
    assert (answer.text, answer.prompt_tokens, answer.completion_tokens) == ("hi", 5, 1)
