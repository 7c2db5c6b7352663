"""Chat-format examples: rendering through the tokenizer's chat template, loss on the assistant turn only.

Later stages (SFT, RL) use the same format, so a prompt renders identically at training and decoding time.
`enable_thinking=False` is passed to every template: templates that know it (Qwen3) then render the same
empty reasoning block in the generation prompt and in a finished assistant turn; the others ignore it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

IGNORE_INDEX = -100


@dataclass(frozen=True)
class ChatExample:
    task: str
    prompt: str
    answer: str


def messages(system_prompt: str, prompt: str, answer: str | None = None) -> list[dict[str, str]]:
    turns = [{"role": "system", "content": system_prompt}, {"role": "user", "content": prompt}]
    if answer is not None:
        turns.append({"role": "assistant", "content": answer})
    return turns


def render_prompt(tokenizer, system_prompt: str, prompt: str) -> str:
    """The text a model continues to answer `prompt` (ends with the assistant turn's opening)."""
    return tokenizer.apply_chat_template(
        messages(system_prompt, prompt), add_generation_prompt=True, tokenize=False, enable_thinking=False
    )


def render_conversation(tokenizer, system_prompt: str, example: ChatExample) -> str:
    return tokenizer.apply_chat_template(
        messages(system_prompt, example.prompt, example.answer), tokenize=False, enable_thinking=False
    )


def common_prefix_length(a: list[int], b: list[int]) -> int:
    length = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        length += 1
    return length


def encode_examples(
    tokenizer, system_prompt: str, examples: list[ChatExample], max_length: int, batch_size: int = 512
) -> tuple[list[dict[str, list[int]]], int]:
    """Token ids and labels (IGNORE_INDEX outside the assistant turn) of each example, and how many
    examples were dropped for being longer than `max_length` (cutting them would cut the answer)."""
    encoded, dropped = [], 0
    for start in tqdm(range(0, len(examples), batch_size), desc="encode examples", unit="batch"):
        batch = examples[start : start + batch_size]
        prompts = [render_prompt(tokenizer, system_prompt, example.prompt) for example in batch]
        full = [render_conversation(tokenizer, system_prompt, example) for example in batch]
        prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
        full_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
        for prompt, ids in zip(prompt_ids, full_ids, strict=True):
            if len(ids) > max_length:
                dropped += 1
                continue
            answer_start = common_prefix_length(prompt, ids)
            encoded.append({"input_ids": ids, "labels": [IGNORE_INDEX] * answer_start + ids[answer_start:]})
    return encoded, dropped


def pad_sequences(sequences: list[list[int]], value: int, left: bool = False) -> torch.Tensor:
    width = max(len(sequence) for sequence in sequences)
    rows = [[value] * (width - len(s)) + s if left else s + [value] * (width - len(s)) for s in sequences]
    return torch.tensor(rows, dtype=torch.long)


def attention_mask_for(sequences: list[list[int]], left: bool = False) -> torch.Tensor:
    return pad_sequences([[1] * len(sequence) for sequence in sequences], 0, left)


class ChatCollator:
    """Right-pads a batch of encoded examples for the Trainer."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        ids = [feature["input_ids"] for feature in features]
        return {
            "input_ids": pad_sequences(ids, self.pad_token_id),
            "attention_mask": attention_mask_for(ids),
            "labels": pad_sequences([feature["labels"] for feature in features], IGNORE_INDEX),
        }
