"""Semantic-ID tokens in an LLM's vocabulary: adding them, initialising their embeddings, checking them."""

from __future__ import annotations

import re

import torch
from tokenizers import AddedToken
from transformers import PreTrainedModel

from gr2.sid.sidmap import SID_BEGIN, SID_END, SidMap, code_token, level_letter


def add_sid_tokens(tokenizer, sid_map: SidMap) -> list[int]:
    """Add <|sid_begin|>, <|sid_end|> and every code token; returns the ids of the tokens that were new.

    Plain (non-special) added tokens: they survive `decode(skip_special_tokens=True)`, so SIDs stay
    visible in generated text, and `normalized=False` keeps normalisers from rewriting them."""
    missing = [token for token in sid_map.vocabulary() if token not in tokenizer.get_vocab()]
    tokenizer.add_tokens([AddedToken(token, normalized=False, special=False) for token in missing])
    return tokenizer.convert_tokens_to_ids(missing)


def padded_size(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


@torch.no_grad()
def init_rows_like_pretrained(matrix: torch.Tensor, rows: list[int], reference_rows: int, seed: int) -> None:
    """Draw `rows` from a normal with the per-dimension mean and std of the first `reference_rows` rows.

    Centred on the mean, a new output row gets about the average logit, so the new tokens start with
    roughly their share of the probability mass instead of dominating the softmax (Hewitt, 2021); the
    spread makes them distinguishable as inputs from the first step, which identical rows are not."""
    reference = matrix[:reference_rows].float()
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(len(rows), matrix.shape[1], generator=generator)
    matrix[rows] = (reference.mean(dim=0) + noise * reference.std(dim=0)).to(matrix.dtype)


def extend_vocabulary(
    model: PreTrainedModel, tokenizer, sid_map: SidMap, pad_to_multiple_of: int = 1, seed: int = 0
) -> int:
    """Add the SID tokens to tokenizer and model; returns how many tokens were added (0 if all existed).

    The rows added only to pad the vocabulary to a multiple are drawn the same way, from their own seed:
    left to `resize_token_embeddings` they would come from the unseeded global RNG and, with tied
    embeddings, give every run different logits for them."""
    original_rows = model.get_input_embeddings().weight.shape[0]
    pretrained_rows = min(len(tokenizer), original_rows)
    new_ids = add_sid_tokens(tokenizer, sid_map)
    if not new_ids:
        return 0
    needed_rows = max(original_rows, len(tokenizer))
    rows = padded_size(needed_rows, pad_to_multiple_of)
    model.resize_token_embeddings(rows, mean_resizing=False)
    padding = list(range(needed_rows, rows))
    matrices = [model.get_input_embeddings().weight]
    output = model.get_output_embeddings()
    if output is not None and output.weight is not matrices[0]:
        matrices.append(output.weight)
    for offset, matrix in enumerate(matrices):
        init_rows_like_pretrained(matrix, new_ids, pretrained_rows, seed + offset)
        init_rows_like_pretrained(matrix, padding, pretrained_rows, seed + len(matrices) + offset)
    return len(new_ids)


def sid_token_ids(tokenizer, sid_map: SidMap) -> dict[str, int]:
    """Token -> id for the whole SID vocabulary; a clear error if the tokenizer lacks any of it."""
    vocab = tokenizer.get_vocab()
    missing = [token for token in sid_map.vocabulary() if token not in vocab]
    if missing:
        raise ValueError(
            f"SID token {missing[0]!r} (and {len(missing) - 1} more) not in the tokenizer's vocabulary: "
            "the model was not prepared with gr2.lm.base.prepare_base_model for this SID map "
            f"(levels={sid_map.levels}, codebook_size={sid_map.codebook_size})"
        )
    return {token: vocab[token] for token in sid_map.vocabulary()}


def sid_id_sequence(token_ids: dict[str, int], codes: tuple[int, ...]) -> list[int]:
    """The token ids of one SID: begin marker, one code token per level, end marker."""
    tokens = [SID_BEGIN, *(code_token(level, code) for level, code in enumerate(codes)), SID_END]
    return [token_ids[token] for token in tokens]


def sid_roundtrip_failures(tokenizer, sid_map: SidMap) -> list[str]:
    """Items whose SID text does not tokenise to exactly its levels + 2 tokens, alone and inside text
    (where a neighbouring character could merge with a marker in a badly added vocabulary)."""
    token_ids = sid_token_ids(tokenizer, sid_map)
    items = list(sid_map.codes)
    texts = [sid_map.text(item) for item in items]
    alone = tokenizer(texts, add_special_tokens=False)["input_ids"]
    in_text = tokenizer([f"item:{text}next" for text in texts], add_special_tokens=False)["input_ids"]
    prefix = len(tokenizer("item:", add_special_tokens=False)["input_ids"])
    failures = []
    for item, got_alone, got_in_text in zip(items, alone, in_text, strict=True):
        expected = sid_id_sequence(token_ids, sid_map.codes[item])
        if got_alone != expected or got_in_text[prefix : prefix + len(expected)] != expected:
            failures.append(item)
    return failures


def sid_pattern(sid_map: SidMap) -> re.Pattern[str]:
    """Matches one complete SID of this map's shape, capturing each level's code."""
    levels = "".join(rf"<s_{level_letter(level)}_(\d+)>" for level in range(sid_map.levels))
    return re.compile(re.escape(SID_BEGIN) + levels + re.escape(SID_END))


def first_sid_item(text: str, sid_map: SidMap) -> str | None:
    """The catalogue item named by the first well-formed SID in `text`, or None if there is none."""
    match = sid_pattern(sid_map).search(text)
    return sid_map.item_for(tuple(int(code) for code in match.groups())) if match else None
