import json

import numpy as np
import pytest

from gr2.data.schema import Item
from gr2.sid import embed
from gr2.sid.ablation import ABLATION_ROWS, run_ablation
from gr2.sid.rqvae import load_quantizer
from gr2.sid.sidmap import SID_BEGIN, SidMap
from gr2.sid.stage import build_semantic_ids
from gr2.sid.trie import PrefixTrie


def test_stage_writes_every_output_and_assigns_unique_sids(fake_encoder, small_catalog, small_config, tmp_path):
    metrics = build_semantic_ids(small_catalog, [], small_config, tmp_path / "out", tmp_path / "cache")
    out = tmp_path / "out"
    sid_map = SidMap.load(out / "sid_map.json")
    assert set(sid_map.codes) == set(small_catalog)
    assert all(len(codes) == 4 and max(codes) < 16 for codes in sid_map.codes.values())
    trie = PrefixTrie.load(out / "trie.json")
    assert all(
        trie.allowed_next(codes[:3]) and codes[3] in trie.allowed_next(codes[:3]) for codes in sid_map.codes.values()
    )
    vocabulary = json.loads((out / "vocabulary.json").read_text())
    assert vocabulary[0] == SID_BEGIN and len(vocabulary) == 2 + 4 * 16
    assert load_quantizer(out / "quantizer.pt").config == small_config
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["items"] == 300 and metrics["uniqueness_after_resolution"] == 1.0
    assert metrics["collisions_resolved"] == sum(metrics[f"collisions_resolved_level_{k}"] for k in range(4))
    for key in (
        "uniqueness",
        "collisions_before_resolution",
        "utilisation_level_0",
        "perplexity_level_3",
        "reconstruction_mse",
        "train_seconds",
        "embed_seconds",
        "empty_text_items",
    ):
        assert isinstance(metrics[key], float), key
    assert not any(key.startswith("sid.") for key in metrics)


def test_rerun_reads_embeddings_from_the_cache_and_gives_the_same_sids(
    fake_encoder, small_catalog, small_config, tmp_path
):
    first = build_semantic_ids(small_catalog, [], small_config, tmp_path / "a", tmp_path / "cache")
    second = build_semantic_ids(small_catalog, [], small_config, tmp_path / "b", tmp_path / "cache")
    assert (first["embedded_texts"], second["embedded_texts"], second["cached_texts"]) == (300, 0, 300)
    assert SidMap.load(tmp_path / "a" / "sid_map.json").codes == SidMap.load(tmp_path / "b" / "sid_map.json").codes


def test_without_random_last_level_collisions_are_counted_then_resolved(
    fake_encoder, catalog_of, small_config, tmp_path
):
    catalog = catalog_of(300)
    catalog.update({f"dup{i}": Item(f"dup{i}", title="Same", categories=("Shop",)) for i in range(5)})
    config = small_config.model_copy(update={"random_last_level": False})
    metrics = build_semantic_ids(catalog, [], config, tmp_path, None)
    assert metrics["duplicate_text_items"] == 5
    assert metrics["collisions_before_resolution"] >= 5 and metrics["uniqueness"] < 1.0
    assert metrics["collisions_resolved"] >= 4 and metrics["uniqueness_after_resolution"] == 1.0


def test_nan_embedding_is_an_error_naming_the_item(monkeypatch, small_catalog, small_config, tmp_path):
    def broken(texts, *args):
        vectors = np.ones((len(texts), 4), np.float32)
        vectors[[i for i, t in enumerate(texts) if "Product 7;" in t]] = np.nan
        return vectors

    monkeypatch.setattr(embed, "encode_texts", broken)
    with pytest.raises(ValueError, match="'i0007'"):
        build_semantic_ids(small_catalog, [], small_config, tmp_path, None)
    assert not (tmp_path / "sid_map.json").exists()


def test_fewer_items_than_codes_is_an_error(fake_encoder, catalog_of, small_config, tmp_path):
    with pytest.raises(ValueError, match="10 items, fewer than codebook_size=16"):
        build_semantic_ids(catalog_of(10), [], small_config, tmp_path, None)


def test_contrastive_uses_train_sequences(fake_encoder, small_catalog, small_config, tmp_path):
    config = small_config.model_copy(update={"contrastive": True})
    sequences = [["i0001", "i0002", "i0003"], ["i0003", "i0001"]]
    assert build_semantic_ids(small_catalog, sequences, config, tmp_path, None)["contrastive_pairs"] == 6


def test_ablation_writes_one_row_per_configuration(fake_encoder, small_catalog, small_config, tmp_path):
    rows = run_ablation(small_catalog, [["i0001", "i0002"]], small_config, tmp_path)
    assert [row["configuration"] for row in rows] == list(ABLATION_ROWS)
    baseline, *_, contrastive = rows
    assert not baseline["ema"] and not baseline["random_last_level"]
    assert contrastive["ema"] and contrastive["contrastive"] and not contrastive["random_last_level"]
    assert json.loads((tmp_path / "ablation.json").read_text())["rows"] == rows
    table = (tmp_path / "ablation.md").read_text()
    assert table.count("\n") == 2 + len(ABLATION_ROWS) and "| +EMA +random last level |" in table
