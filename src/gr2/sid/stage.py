"""Stage 1a entry point: catalogue -> text embeddings -> RQ-VAE -> one unique SID per item, and its files."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from gr2.data.schema import Item
from gr2.sid.assign import draw_random_last_codes, resolve_collisions
from gr2.sid.config import SidConfig
from gr2.sid.embed import embed_texts
from gr2.sid.metrics import colliding_items, level_metrics, uniqueness
from gr2.sid.rqvae import RQVAE, save_quantizer
from gr2.sid.sidmap import SidMap
from gr2.sid.text import item_text
from gr2.sid.train import Partners, co_interaction_partners, train_rqvae
from gr2.sid.trie import PrefixTrie
from gr2.storage.atomic import write_json_atomic

EVAL_CHUNK = 8192


def catalog_texts(catalog: Mapping[str, Item], config: SidConfig) -> tuple[list[str], list[str], int]:
    """(item ids in sorted order, their texts, how many fell back to the item id for lack of text)."""
    mismatched = [(key, item.item_id) for key, item in catalog.items() if key != item.item_id]
    if mismatched:
        key, item_id = mismatched[0]
        raise ValueError(
            f"catalog key {key!r} holds item {item_id!r}: keys must be the items' own ids "
            f"({len(mismatched)} mismatched; duplicate item ids are not allowed)"
        )
    item_ids = sorted(catalog)
    texts = [item_text(catalog[item], config.text_fields) for item in item_ids]
    empty = [item for item, text in zip(item_ids, texts, strict=True) if not text]
    if empty and config.on_empty_text == "error":
        raise ValueError(
            f"{len(empty)} items have no text in fields {list(config.text_fields)}, e.g. {empty[:3]}; "
            "set on_empty_text='item_id' to embed their ids instead"
        )
    texts = [text or item for item, text in zip(item_ids, texts, strict=True)]
    return item_ids, texts, len(empty)


def duplicate_text_items(texts: Sequence[str]) -> int:
    """Items whose text another item has too: their embeddings, hence their learned codes, coincide."""
    counts = Counter(texts)
    return sum(count for count in counts.values() if count > 1)


def check_catalog_size(items: int, config: SidConfig) -> None:
    if items < config.codebook_size:
        raise ValueError(
            f"the catalogue has {items} items, fewer than codebook_size={config.codebook_size} codes per "
            "level: lower codebook_size to at most the number of items"
        )
    if items > config.codebook_size**config.levels:
        raise ValueError(
            f"{items} items do not fit in {config.levels} levels of {config.codebook_size} codes: "
            "raise codebook_size or levels"
        )


def require_finite(item_ids: Sequence[str], vectors: np.ndarray) -> None:
    bad = np.flatnonzero(~np.isfinite(vectors).all(1))
    if len(bad):
        raise ValueError(
            f"{len(bad)} item embeddings contain NaN or inf, e.g. item {item_ids[bad[0]]!r}: "
            "no SID is assigned from a broken embedding"
        )


@dataclass(frozen=True)
class EmbeddedCatalog:
    item_ids: list[str]
    vectors: np.ndarray
    metrics: dict[str, float]


def embed_catalog(catalog: Mapping[str, Item], config: SidConfig, cache_dir: Path | None) -> EmbeddedCatalog:
    item_ids, texts, empty = catalog_texts(catalog, config)
    check_catalog_size(len(item_ids), config)
    start = time.perf_counter()
    embeddings = embed_texts(texts, config.encoder, config.embed_batch_size, config.device, cache_dir)
    seconds = time.perf_counter() - start
    require_finite(item_ids, embeddings.vectors)
    metrics = {
        "items": len(item_ids),
        "empty_text_items": empty,
        "duplicate_text_items": duplicate_text_items(texts),
        "embedded_texts": embeddings.embedded,
        "cached_texts": embeddings.cached,
        "embedding_dim": embeddings.vectors.shape[1],
        "embed_seconds": seconds,
    }
    return EmbeddedCatalog(item_ids, embeddings.vectors, metrics)


@dataclass(frozen=True)
class Encoded:
    latents: np.ndarray  # (items, latent_dim)
    codes: np.ndarray  # (items, learned levels)
    quantisation_error: np.ndarray  # (items,) ||z - z_q||^2
    reconstruction_mse: float  # mean over items and dimensions
    reconstruction_cosine: float  # mean cosine(x, decoder(z_q))


@torch.no_grad()
def encode_catalog(model: RQVAE, vectors: np.ndarray) -> Encoded:
    device = next(model.parameters()).device
    latents, codes, errors, squared, cosines = [], [], [], [], []
    for chunk in torch.from_numpy(vectors).split(EVAL_CHUNK):
        inputs = chunk.to(device)
        out = model(inputs)
        latents.append(out.latent.cpu())
        codes.append(out.quantised.codes.cpu())
        errors.append((out.latent - out.quantised.latent).pow(2).sum(1).cpu())
        squared.append((out.output - inputs).pow(2).mean(1).cpu())
        cosines.append(torch.cosine_similarity(out.output, inputs, dim=1).cpu())
    return Encoded(
        latents=torch.cat(latents).numpy(),
        codes=torch.cat(codes).numpy(),
        quantisation_error=torch.cat(errors).numpy(),
        reconstruction_mse=float(torch.cat(squared).mean()),
        reconstruction_cosine=float(torch.cat(cosines).mean()),
    )


@dataclass(frozen=True)
class SemanticIds:
    sid_map: SidMap
    model: RQVAE
    metrics: dict[str, float]


def semantic_ids_from_embeddings(
    item_ids: Sequence[str], vectors: np.ndarray, config: SidConfig, partners: Partners | None = None
) -> SemanticIds:
    """Train the quantiser, assign codes, resolve collisions; metrics describe the codes before the rule."""
    check_catalog_size(len(item_ids), config)
    trained = train_rqvae(vectors, config, partners)
    encoded = encode_catalog(trained.model, vectors)
    rng = np.random.default_rng((config.seed, 1))
    if config.random_last_level:
        last, priority = draw_random_last_codes(encoded.codes, config.codebook_size, rng)
        codes = np.column_stack([encoded.codes, last])
    else:
        codes, priority = encoded.codes, encoded.quantisation_error
    codebooks = [codebook.cpu().numpy() for codebook in trained.model.codebooks()]
    resolution = resolve_collisions(codes, priority, encoded.latents, codebooks, config.codebook_size, rng, item_ids)
    sid_map = SidMap(
        levels=config.levels,
        codebook_size=config.codebook_size,
        codes={item: tuple(row) for item, row in zip(item_ids, resolution.codes.tolist(), strict=True)},
    )
    metrics = {
        "learned_levels": config.learned_levels,
        "train_seconds": trained.seconds,
        "dead_codes_reset": trained.dead_codes_reset,
        "contrastive_pairs": partners.pairs if partners is not None else 0,
        **{f"loss_{name}": value for name, value in trained.final_losses.items()},
        "reconstruction_mse": encoded.reconstruction_mse,
        "reconstruction_cosine": encoded.reconstruction_cosine,
        "uniqueness": uniqueness(codes),
        "collisions_before_resolution": colliding_items(codes),
        "collisions_resolved": int((resolution.changed_level >= 0).sum()),
        **{
            f"collisions_resolved_level_{level}": int((resolution.changed_level == level).sum())
            for level in range(config.levels)
        },
        "uniqueness_after_resolution": uniqueness(resolution.codes),
        **level_metrics(codes, config.codebook_size),
    }
    return SemanticIds(sid_map, trained.model, metrics)


def write_outputs(out_dir: Path, result: SemanticIds, metrics: dict[str, float]) -> None:
    out_dir = Path(out_dir)
    result.sid_map.save(out_dir / "sid_map.json")
    save_quantizer(result.model, out_dir / "quantizer.pt")
    write_json_atomic(out_dir / "vocabulary.json", result.sid_map.vocabulary())
    PrefixTrie.from_sid_map(result.sid_map).save(out_dir / "trie.json")
    write_json_atomic(out_dir / "metrics.json", metrics)


def build_semantic_ids(
    catalog: dict[str, Item],
    train_sequences: list[list[str]],
    config: SidConfig,
    out_dir: Path,
    cache_dir: Path | None = None,
) -> dict[str, float]:
    """Give every catalogue item a unique SID and write sid_map.json, quantizer.pt, vocabulary.json,
    trie.json and metrics.json into out_dir. train_sequences (train split only) feed the contrastive
    loss and nothing else. Returns flat metrics without a stage prefix.
    """
    embedded = embed_catalog(catalog, config, cache_dir)
    partners = co_interaction_partners(train_sequences, embedded.item_ids) if config.contrastive else None
    result = semantic_ids_from_embeddings(embedded.item_ids, embedded.vectors, config, partners)
    metrics = {name: float(value) for name, value in {**embedded.metrics, **result.metrics}.items()}
    write_outputs(out_dir, result, metrics)
    return metrics
