from pathlib import Path

import numpy as np

from gr2.sid.embed import embed_texts, resolve_encoder


def test_cache_embeds_each_distinct_text_once_across_runs(fake_encoder, tmp_path):
    first = embed_texts(["a", "b", "a"], "fake", cache_dir=tmp_path)
    assert (first.embedded, first.cached) == (2, 0)
    assert np.array_equal(first.vectors[0], first.vectors[2])
    second = embed_texts(["b", "c", "a"], "fake", cache_dir=tmp_path)
    assert (second.embedded, second.cached) == (1, 2)
    assert fake_encoder.calls == [["a", "b"], ["c"]]
    assert np.array_equal(second.vectors[2], first.vectors[0])


def test_cache_is_per_encoder(fake_encoder, tmp_path):
    embed_texts(["a"], "model-1", cache_dir=tmp_path)
    assert embed_texts(["a"], "model-2", cache_dir=tmp_path).embedded == 1


def test_non_finite_vectors_are_never_cached(fake_encoder, tmp_path, monkeypatch):
    from gr2.sid import embed

    monkeypatch.setattr(embed, "encode_texts", lambda texts, *args: np.full((len(texts), 3), np.nan, np.float32))
    assert np.isnan(embed_texts(["a"], "m", cache_dir=tmp_path).vectors).all()
    monkeypatch.setattr(embed, "encode_texts", fake_encoder)
    assert embed_texts(["a"], "m", cache_dir=tmp_path).embedded == 1


def test_default_encoder_is_the_bundled_offline_minilm():
    path = Path(resolve_encoder("sentence-transformers/all-MiniLM-L6-v2"))
    assert (path / "model.safetensors").exists()
    assert resolve_encoder("/some/local/model") == "/some/local/model"


def test_bundled_minilm_embeds_offline(tmp_path):
    vectors = embed_texts(["red lipstick", "red lipstick matte", "tennis racket"], "all-MiniLM-L6-v2").vectors
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
