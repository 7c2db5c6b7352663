"""Stage 1b, part 1: the base LLM with the semantic-ID vocabulary, saved for mid-training."""

from __future__ import annotations

from pathlib import Path

from gr2.lm.config import BaseModelConfig
from gr2.lm.models import load_base_model
from gr2.lm.training import save_pretrained_atomic
from gr2.lm.vocab import extend_vocabulary, sid_roundtrip_failures
from gr2.sid.sidmap import SidMap


def prepare_base_model(config: BaseModelConfig, sid_map: SidMap, out_dir: Path) -> dict[str, float]:
    """Resolve and load the base model, add the SID tokens, check that every SID of the catalogue
    tokenises to exactly its levels + 2 tokens, and save model and tokenizer to `out_dir`."""
    model, tokenizer, load_seconds = load_base_model(config.name, config.cache_dir, config.dtype, config.seed)
    vocab_added = extend_vocabulary(model, tokenizer, sid_map, config.pad_vocab_to_multiple_of, config.seed)
    failures = sid_roundtrip_failures(tokenizer, sid_map)
    if failures:
        raise ValueError(
            f"base model {config.name!r}: {len(failures)} of {len(sid_map.codes)} SIDs do not tokenise to "
            f"their {sid_map.levels + 2} tokens, e.g. item {failures[0]!r}: {sid_map.text(failures[0])}"
        )
    save_pretrained_atomic(model, tokenizer, Path(out_dir))
    return {
        "vocab_added": float(vocab_added),
        "vocab_size": float(len(tokenizer)),
        "embedding_rows": float(model.get_input_embeddings().weight.shape[0]),
        "roundtrip_ok_rate": 1.0 - len(failures) / len(sid_map.codes),
        "parameters": float(model.num_parameters()),
        "load_seconds": load_seconds,
    }
