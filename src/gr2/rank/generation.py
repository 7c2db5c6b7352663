"""Re-rank examples with a causal LM: the prompt builder, batched generation, the parser.

Shared by SFT validation, DAPO validation and the evaluation stage, so every model row is produced the
same way. Invalid outputs stay None here; `gr2.eval.metrics.rerank_metrics` counts them and falls back
to the incoming order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from gr2.data.schema import Item
from gr2.prerank.candidates import RerankExample
from gr2.sid.sidmap import SidMap
from gr2.traces.config import PromptConfig
from gr2.traces.parse import ParsedRanking, parse_ranking
from gr2.traces.prompt import build_messages


def chat_prompt(tokenizer, messages: list[dict[str, str]]) -> str:
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, enable_thinking=False)


@torch.no_grad()
def generate_texts(
    model, tokenizer, prompts: Sequence[str], max_new_tokens: int, temperature: float = 0.0, seed: int = 0
) -> tuple[list[str], int]:
    """Completions of rendered prompts (greedy when temperature is 0) and the number of new tokens."""
    tokenizer.padding_side = "left"
    batch = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    torch.manual_seed(seed)
    sampling = (
        {"do_sample": True, "temperature": temperature, "top_p": 1.0} if temperature > 0 else {"do_sample": False}
    )
    output = model.generate(**batch, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, **sampling)
    new_tokens = output[:, batch["input_ids"].shape[1] :]
    lengths = (new_tokens != tokenizer.pad_token_id).sum().item()
    return tokenizer.batch_decode(new_tokens, skip_special_tokens=False), int(lengths)


def strip_end_markers(text: str, tokenizer) -> str:
    for marker in {tokenizer.eos_token, tokenizer.pad_token} - {None}:
        text = text.replace(marker, "")
    return text.strip()


@dataclass
class GenerationRun:
    texts: list[str]
    parsed: list[ParsedRanking]
    new_tokens: int
    seconds: float

    @property
    def rankings(self) -> list[tuple[str, ...] | None]:
        return [p.ranking for p in self.parsed]

    def speed_metrics(self) -> dict[str, float]:
        return {
            "tokens_per_second": self.new_tokens / self.seconds if self.seconds else 0.0,
            "examples_per_second": len(self.texts) / self.seconds if self.seconds else 0.0,
            "mean_completion_tokens": self.new_tokens / max(len(self.texts), 1),
        }


def free_answers(model, tokenizer, prompts: list[str], max_new_tokens: int) -> tuple[list[str], int]:
    outputs, produced = generate_texts(model, tokenizer, prompts, max_new_tokens)
    return [strip_end_markers(text, tokenizer) for text in outputs], produced


def constrained_answers(
    model, tokenizer, prompts: list[str], candidates: list[tuple[str, ...]], sids: SidMap, reasoning_tokens: int
) -> tuple[list[str], int]:
    """The serving decoder's answers: free reasoning, then a ranking that can only be a permutation."""
    from gr2.serve.backends import LocalBackend

    options = [[sids.codes[item] for item in row] for row in candidates]
    answers = LocalBackend(model, tokenizer).answer(prompts, options, reasoning_tokens, math.inf)
    return [a.text for a in answers], sum(a.reasoning_tokens + a.ranking_tokens for a in answers)


def rerank_with_model(
    model,
    tokenizer,
    examples: Sequence[RerankExample],
    catalog: dict[str, Item],
    sids: SidMap,
    prompt: PromptConfig,
    max_new_tokens: int,
    batch_size: int = 8,
    constrained: bool = False,
) -> GenerationRun:
    """Greedy re-rankings of `examples`, parsed against each example's candidates. `constrained` decodes as
    the server does (max_new_tokens is then the reasoning budget); otherwise free generation, where an
    answer may be invalid."""
    model.eval()
    texts: list[str] = []
    new_tokens, started = 0, time.monotonic()
    for start in tqdm(range(0, len(examples), batch_size), desc="re-rank", unit="batch"):
        chunk = examples[start : start + batch_size]
        prompts = [
            chat_prompt(tokenizer, build_messages(e.history, e.candidates, catalog, sids, prompt)) for e in chunk
        ]
        if constrained:
            answers, produced = constrained_answers(
                model, tokenizer, prompts, [e.candidates for e in chunk], sids, max_new_tokens
            )
        else:
            answers, produced = free_answers(model, tokenizer, prompts, max_new_tokens)
        texts.extend(answers)
        new_tokens += produced
    parsed = [parse_ranking(text, e.candidates, sids) for text, e in zip(texts, examples, strict=True)]
    return GenerationRun(texts, parsed, new_tokens, time.monotonic() - started)
