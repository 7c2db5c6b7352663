"""Evaluation of a mid-trained model: generative retrieval, SID validity, and the captioning probe."""

from __future__ import annotations

import math
import random

import torch
from tqdm.auto import tqdm

from gr2.data.schema import Item
from gr2.lm.chat import attention_mask_for, pad_sequences, render_prompt
from gr2.lm.config import MidtrainConfig
from gr2.lm.retrieval import generate_candidates, retrieval_prompt_ids
from gr2.lm.tasks import CAPTION_CATEGORY_PREFIX, caption_prompt
from gr2.lm.vocab import first_sid_item
from gr2.sid.sidmap import SID_BEGIN, SidMap


def ranking_metrics(ranked: list[list[str]], targets: list[str], k: int) -> dict[str, float]:
    """Recall@k and NDCG@k with one relevant item per list (log2 discount, rank 1 -> gain 1)."""
    ranks = [
        items[:k].index(target) + 1 if target in items[:k] else None
        for items, target in zip(ranked, targets, strict=True)
    ]
    return {
        f"recall@{k}": sum(rank is not None for rank in ranks) / len(ranks),
        f"ndcg@{k}": sum(1 / math.log2(rank + 1) for rank in ranks if rank is not None) / len(ranks),
    }


@torch.no_grad()
def greedy_continuations(
    model, tokenizer, prompt_ids: list[list[int]], max_new_tokens: int, batch_size: int, desc: str
) -> list[str]:
    """Unconstrained greedy continuation of each prompt, decoded with special tokens kept."""
    model.eval()
    texts: list[str] = []
    for start in tqdm(range(0, len(prompt_ids), batch_size), desc=desc, unit="batch"):
        batch = prompt_ids[start : start + batch_size]
        input_ids = pad_sequences(batch, tokenizer.pad_token_id, left=True).to(model.device)
        output = model.generate(
            input_ids=input_ids,
            attention_mask=attention_mask_for(batch, left=True).to(model.device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
        texts += tokenizer.batch_decode(output[:, input_ids.shape[1] :], skip_special_tokens=False)
    return texts


def sid_valid_rate(model, tokenizer, sid_map: SidMap, histories: list[list[str]], config: MidtrainConfig) -> float:
    """Share of unconstrained greedy next-item answers that are the SID of a catalogue item: whether the
    model learned the SID grammar and catalogue by itself (the constrained decoder always is valid)."""
    prompts = retrieval_prompt_ids(tokenizer, sid_map, histories, config.system_prompt, config.history_length)
    # prompts end in <|sid_begin|>; put it back in front of the continuation before parsing.
    answers = greedy_continuations(
        model, tokenizer, prompts, sid_map.levels + 1, config.eval_batch_size, "free SID decoding"
    )
    return sum(first_sid_item(SID_BEGIN + answer, sid_map) is not None for answer in answers) / len(answers)


def caption_accuracy(model, tokenizer, sid_map: SidMap, items: list[Item], config: MidtrainConfig) -> float:
    """Share of items whose greedily generated caption names exactly their category path."""
    prompts = [render_prompt(tokenizer, config.system_prompt, caption_prompt(sid_map, i.item_id)) for i in items]
    prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
    expected = [f"{CAPTION_CATEGORY_PREFIX}{item.category_path}" for item in items]
    longest = max(len(ids) for ids in tokenizer(expected, add_special_tokens=False)["input_ids"])
    answers = greedy_continuations(model, tokenizer, prompt_ids, longest + 1, config.eval_batch_size, "caption probe")
    first_lines = [answer.split("\n", 1)[0].strip() for answer in answers]
    return sum(line == want for line, want in zip(first_lines, expected, strict=True)) / len(items)


def evaluate_midtrained(
    model,
    tokenizer,
    catalog: dict[str, Item],
    sid_map: SidMap,
    eval_examples: list[tuple[list[str], str]],
    caption_items: list[str],
    config: MidtrainConfig,
) -> dict[str, float]:
    """Retrieval metrics and SID validity on a seeded sample of `eval_examples`, and the captioning
    probe on a seeded sample of `caption_items` (those with a category path)."""
    rng = random.Random(config.seed)
    sample = rng.sample(eval_examples, min(config.eval_sample_size, len(eval_examples)))
    histories = [history for history, _ in sample]
    ranked = generate_candidates(
        model,
        tokenizer,
        sid_map,
        histories,
        config.eval_k,
        beam_width=config.beam_width,
        system_prompt=config.system_prompt,
        history_length=config.history_length,
        batch_size=config.eval_batch_size,
    )
    described = [catalog[item] for item in caption_items if catalog[item].categories]
    probe = rng.sample(described, min(config.caption_eval_size, len(described)))
    return {
        **ranking_metrics(ranked, [target for _, target in sample], config.eval_k),
        "sid_valid_rate": sid_valid_rate(model, tokenizer, sid_map, histories, config),
        "caption_accuracy": caption_accuracy(model, tokenizer, sid_map, probe, config) if probe else 0.0,
        "eval_examples": float(len(sample)),
        "caption_items": float(len(probe)),
    }
