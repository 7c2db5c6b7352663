import pytest
import torch
from tokenizers import AddedToken
from transformers import AutoTokenizer

from gr2.lm.base import prepare_base_model
from gr2.lm.config import BaseModelConfig
from gr2.lm.models import load_base_model, resolve_checkpoint
from gr2.lm.vocab import extend_vocabulary, first_sid_item, sid_roundtrip_failures, sid_token_ids
from gr2.sid.sidmap import SID_BEGIN, SID_END, SidMap


@pytest.fixture
def plain(model_cache):
    model, tokenizer, _ = load_base_model("tiny-random", model_cache)
    return model, tokenizer


def test_extension_adds_markers_and_one_token_per_code_per_level_once(plain, sid_map):
    model, tokenizer = plain
    before = len(tokenizer)
    assert extend_vocabulary(model, tokenizer, sid_map, pad_to_multiple_of=64) == 2 + 4 * 16
    assert len(tokenizer) == before + 66
    assert model.get_input_embeddings().weight.shape[0] % 64 == 0
    assert model.get_input_embeddings().weight.shape[0] >= len(tokenizer)
    assert extend_vocabulary(model, tokenizer, sid_map) == 0


def test_extension_is_the_same_whatever_the_global_rng_state_padding_rows_included(model_cache, sid_map):
    weights = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        model, tokenizer, _ = load_base_model("tiny-random", model_cache)
        extend_vocabulary(model, tokenizer, sid_map, pad_to_multiple_of=64, seed=0)
        weights.append(model.get_input_embeddings().weight.detach().clone())
    assert weights[0].shape[0] > len(tokenizer)  # there are padding rows
    assert torch.equal(weights[0], weights[1])


def test_new_embeddings_look_like_pretrained_ones_and_do_not_dominate_the_softmax(plain, sid_map):
    model, tokenizer = plain
    pretrained = len(tokenizer)
    extend_vocabulary(model, tokenizer, sid_map)
    weight = model.get_input_embeddings().weight.detach()
    new = weight[list(sid_token_ids(tokenizer, sid_map).values())]
    old = weight[:pretrained]
    assert (new.mean(0) - old.mean(0)).abs().max() < 4 * old.std(0).max() / len(new) ** 0.5
    assert new.std(0).mean() == pytest.approx(old.std(0).mean().item(), rel=0.2)
    assert torch.unique(new, dim=0).shape[0] == len(new)
    ids = tokenizer("A short product description for testing.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        probs = model(ids).logits.softmax(-1)
    share = len(new) / len(tokenizer)
    assert probs[..., len(tokenizer) - len(new) : len(tokenizer)].sum(-1).max() < 2 * share


def test_every_catalogue_sid_round_trips_to_its_six_tokens(tiny, sid_map):
    _, tokenizer = tiny
    assert sid_roundtrip_failures(tokenizer, sid_map) == []
    item = next(iter(sid_map.codes))
    ids = tokenizer(f"Bought {sid_map.text(item)} today", add_special_tokens=False)["input_ids"]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    begin = tokens.index(SID_BEGIN)
    assert tokens[begin : begin + 6] == [
        SID_BEGIN,
        *[f"<s_{letter}_{code}>" for letter, code in zip("abcd", sid_map.codes[item], strict=True)],
        SID_END,
    ]
    assert tokenizer.decode(ids, skip_special_tokens=True) == f"Bought {sid_map.text(item)} today"


def test_round_trip_check_catches_a_token_that_swallows_its_neighbour(tiny, sid_map):
    _, tokenizer = tiny
    tokenizer.add_tokens([AddedToken(f"{SID_END}n", normalized=False)])
    assert len(sid_roundtrip_failures(tokenizer, sid_map)) == len(sid_map.codes)


def test_chat_template_still_renders_sids_inside_turns(tiny, sid_map):
    _, tokenizer = tiny
    sid = sid_map.text(next(iter(sid_map.codes)))
    chat = [{"role": "user", "content": f"Next after {sid}?"}, {"role": "assistant", "content": sid}]
    ids = tokenizer.apply_chat_template(chat, tokenize=True, return_dict=False)
    assert tokenizer.decode(ids).count(sid) == 2


def test_tokenizer_without_sid_tokens_is_an_error_naming_the_token(model_cache, sid_map):
    tokenizer = AutoTokenizer.from_pretrained(resolve_checkpoint("tiny-random", model_cache))
    with pytest.raises(ValueError, match=r"SID token '<\|sid_begin\|>' \(and 65 more\) not in"):
        sid_token_ids(tokenizer, sid_map)


def test_first_sid_item_parses_only_complete_catalogue_sids(sid_map):
    item = next(iter(sid_map.codes))
    assert first_sid_item(f"text {sid_map.text(item)} more", sid_map) == item
    assert first_sid_item(sid_map.text(item).replace(SID_END, ""), sid_map) is None
    unused = next(c for c in range(16) if sid_map.item_for((*sid_map.codes[item][:3], c)) is None)
    invalid = SidMap(4, 16, {"x": (*sid_map.codes[item][:3], unused)}).text("x")
    assert first_sid_item(invalid, sid_map) is None


def test_prepare_base_model_saves_an_extended_model_and_reports(tmp_path, model_cache, sid_map):
    metrics = prepare_base_model(BaseModelConfig(name="tiny-random", cache_dir=model_cache), sid_map, tmp_path / "m")
    assert metrics["vocab_added"] == 66
    assert metrics["roundtrip_ok_rate"] == 1.0
    assert metrics["parameters"] > 0 and metrics["load_seconds"] >= 0
    saved = AutoTokenizer.from_pretrained(tmp_path / "m")
    assert sid_roundtrip_failures(saved, sid_map) == []


def test_prepare_base_model_refuses_a_tokenizer_that_breaks_sids(tmp_path, model_cache, sid_map, monkeypatch):
    from gr2.lm import base

    monkeypatch.setattr(base, "sid_roundtrip_failures", lambda tokenizer, sids: [next(iter(sids.codes))])
    with pytest.raises(ValueError, match="1 of .* SIDs do not tokenise to their 6 tokens"):
        prepare_base_model(BaseModelConfig(name="tiny-random", cache_dir=model_cache), sid_map, tmp_path / "m")
    assert not (tmp_path / "m").exists()
