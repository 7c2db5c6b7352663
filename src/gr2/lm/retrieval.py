"""Generative retrieval: trie-constrained beam search over the catalogue's semantic IDs.

After the prompt and a forced <|sid_begin|>, level l may only take codes that extend a prefix of some
catalogue SID, so every finished beam is the SID of an existing item; <|sid_end|> is implied. Scores are
the model's log-probabilities over its whole vocabulary, restricted to the allowed codes.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from gr2.lm.chat import attention_mask_for, pad_sequences, render_prompt
from gr2.lm.config import MidtrainConfig
from gr2.lm.tasks import sequential_prompt
from gr2.lm.vocab import sid_token_ids
from gr2.sid.sidmap import SID_BEGIN, SidMap, code_token
from gr2.sid.trie import PrefixTrie

_DEFAULTS = MidtrainConfig()


class SidConstraint:
    """Which codes may follow each SID prefix, as boolean masks over a level's codes (from the
    catalogue's prefix trie), and the token id of every code at every level."""

    def __init__(self, sid_map: SidMap, token_ids: dict[str, int]):
        self.sid_map = sid_map
        self.levels = sid_map.levels
        self.trie = PrefixTrie.from_sid_map(sid_map)
        self.level_token_ids = torch.tensor(
            [
                [token_ids[code_token(level, code)] for code in range(sid_map.codebook_size)]
                for level in range(sid_map.levels)
            ]
        )
        self._masks: dict[tuple[int, ...], torch.Tensor] = {}

    def mask(self, prefix: tuple[int, ...]) -> torch.Tensor:
        if prefix not in self._masks:
            allowed = torch.zeros(self.sid_map.codebook_size, dtype=torch.bool)
            allowed[self.trie.allowed_next(prefix)] = True
            self._masks[prefix] = allowed
        return self._masks[prefix]

    def allowed(self, prefixes: list[tuple[int, ...]]) -> torch.Tensor:
        """(len(prefixes), codebook_size) mask of the codes that may follow each prefix."""
        return torch.stack([self.mask(prefix) for prefix in prefixes])


def position_ids_for(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that start at 0 on each row's first real token (rows are left-padded)."""
    return (attention_mask.cumsum(dim=-1) - 1).clamp(min=0)


@torch.no_grad()
def constrained_beam_search(
    model, prompt_ids: list[list[int]], constraint: SidConstraint, beam_width: int, pad_token_id: int
) -> list[list[tuple[str, float]]]:
    """For each prompt (token ids ending in <|sid_begin|>), up to `beam_width` (item, log-probability)
    pairs, best first; every item exists in the catalogue."""
    device = model.device
    input_ids = pad_sequences(prompt_ids, pad_token_id, left=True).to(device)
    attention_mask = attention_mask_for(prompt_ids, left=True).to(device)
    batch = len(prompt_ids)
    codebook = constraint.sid_map.codebook_size
    scores = torch.zeros(batch, 1, device=device)
    prefixes: list[tuple[int, ...]] = [()] * batch
    step_input = {"input_ids": input_ids, "position_ids": position_ids_for(attention_mask)}
    cache = None
    for level in range(constraint.levels):
        output = model(**step_input, attention_mask=attention_mask, past_key_values=cache, use_cache=True)
        cache = output.past_key_values
        log_probs = torch.log_softmax(output.logits[:, -1].float(), dim=-1)
        code_scores = log_probs[:, constraint.level_token_ids[level].to(device)]
        code_scores = code_scores.masked_fill(~constraint.allowed(prefixes).to(device), float("-inf"))
        beams = scores.shape[1]
        total = (scores.reshape(-1, 1) + code_scores).reshape(batch, beams * codebook)
        scores, flat = total.topk(min(beam_width, beams * codebook), dim=-1)
        parent = (torch.arange(batch, device=device).unsqueeze(1) * beams + flat // codebook).reshape(-1)
        codes = (flat % codebook).reshape(-1)
        prefixes = [prefixes[p] + (c,) for p, c in zip(parent.tolist(), codes.tolist(), strict=True)]
        cache.reorder_cache(parent)
        attention_mask = torch.cat([attention_mask[parent], attention_mask.new_ones(len(parent), 1)], dim=1)
        next_token = constraint.level_token_ids[level].to(device)[codes].unsqueeze(1)
        step_input = {"input_ids": next_token, "position_ids": position_ids_for(attention_mask)[:, -1:]}
    width = scores.shape[1]
    return [
        [
            (constraint.sid_map.item_for(prefixes[row * width + beam]), score)
            for beam, score in enumerate(scores[row].tolist())
            if score != float("-inf")
        ]
        for row in range(batch)
    ]


def retrieval_prompt_ids(
    tokenizer, sid_map: SidMap, histories: list[list[str]], system_prompt: str, history_length: int
) -> list[list[int]]:
    texts = [
        render_prompt(tokenizer, system_prompt, sequential_prompt(sid_map, history, history_length)) + SID_BEGIN
        for history in histories
    ]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def generate_candidates(
    model,
    tokenizer,
    sid_map: SidMap,
    histories: list[list[str]],
    k: int,
    *,
    beam_width: int | None = None,
    system_prompt: str = _DEFAULTS.system_prompt,
    history_length: int = _DEFAULTS.history_length,
    batch_size: int = _DEFAULTS.eval_batch_size,
    show_progress: bool = True,
) -> list[list[str]]:
    """The `k` most likely next items per history (oldest item first), distinct and all in the catalogue.

    The prompt is the sequential-preference prompt of mid-training, so `system_prompt` and
    `history_length` must be those the model was mid-trained with. `beam_width` defaults to 2k."""
    beam_width = beam_width or 2 * k
    if beam_width < k:
        raise ValueError(f"generate_candidates: beam_width={beam_width} must be >= k={k}")
    if len(sid_map.codes) < k:
        raise ValueError(f"generate_candidates: k={k} but the SID map has only {len(sid_map.codes)} items")
    unknown = next((item for history in histories for item in history if item not in sid_map.codes), None)
    if unknown is not None:
        raise ValueError(f"generate_candidates: history item {unknown!r} has no SID in the SID map")
    constraint = SidConstraint(sid_map, sid_token_ids(tokenizer, sid_map))
    model.eval()
    candidates: list[list[str]] = []
    batches = range(0, len(histories), batch_size)
    for start in tqdm(batches, desc="sid-beam retrieval", unit="batch", disable=not show_progress):
        prompts = retrieval_prompt_ids(
            tokenizer, sid_map, histories[start : start + batch_size], system_prompt, history_length
        )
        for ranked in constrained_beam_search(model, prompts, constraint, beam_width, tokenizer.pad_token_id):
            candidates.append([item for item, _ in ranked[:k]])
    return candidates
