"""The paper's codebook-utilisation ablation: one RQ-VAE per configuration on the same embeddings.

The three single-technique rows after "+EMA +random last level" are added on top of "+EMA" (no random
last level): with the random last level almost every configuration is unique, which would hide them.
"""

from __future__ import annotations

from pathlib import Path

from gr2.data.schema import Item
from gr2.sid.config import SidConfig
from gr2.sid.stage import embed_catalog, semantic_ids_from_embeddings
from gr2.sid.train import co_interaction_partners
from gr2.storage.atomic import write_json_atomic, write_text_atomic

TECHNIQUES = ("ema", "random_last_level", "diversity_loss", "dead_code_reset", "contrastive")

ABLATION_ROWS: dict[str, tuple[str, ...]] = {
    "baseline": (),
    "+EMA": ("ema",),
    "+random last level": ("random_last_level",),
    "+EMA +random last level": ("ema", "random_last_level"),
    "+EMA +diversity loss": ("ema", "diversity_loss"),
    "+EMA +dead-code reset": ("ema", "dead_code_reset"),
    "+EMA +contrastive": ("ema", "contrastive"),
}

REPORTED_METRICS = (
    "uniqueness",
    "collisions_before_resolution",
    "reconstruction_mse",
    "reconstruction_cosine",
    "train_seconds",
)


def row_config(base: SidConfig, techniques: tuple[str, ...]) -> SidConfig:
    """The base configuration with exactly the given techniques switched on (k-means init as in base)."""
    return base.model_copy(update={name: name in techniques for name in TECHNIQUES})


def ablation_markdown(rows: list[dict], levels: int) -> str:
    level_columns = [f"util. L{level}" for level in range(levels)]
    header = [
        "configuration",
        "uniqueness",
        "colliding items",
        "recon. MSE",
        "recon. cosine",
        *level_columns,
        "train s",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for row in rows:
        cells = [
            row["configuration"],
            f"{100 * row['uniqueness']:.2f}%",
            f"{row['collisions_before_resolution']:,}",
            f"{row['reconstruction_mse']:.6f}",
            f"{row['reconstruction_cosine']:.4f}",
            *(f"{100 * row[f'utilisation_level_{level}']:.1f}%" for level in range(levels)),
            f"{row['train_seconds']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_ablation(
    catalog: dict[str, Item],
    train_sequences: list[list[str]],
    base_config: SidConfig,
    out_dir: Path,
    cache_dir: Path | None = None,
) -> list[dict]:
    """Train every ABLATION_ROWS configuration on one set of embeddings; write ablation.md and
    ablation.json into out_dir; return the rows (configuration, switches, metrics)."""
    embedded = embed_catalog(catalog, base_config, cache_dir)
    partners = co_interaction_partners(train_sequences, embedded.item_ids)
    rows = []
    for name, techniques in ABLATION_ROWS.items():
        config = row_config(base_config, techniques)
        result = semantic_ids_from_embeddings(
            embedded.item_ids, embedded.vectors, config, partners if config.contrastive else None
        )
        switches = {technique: technique in techniques for technique in TECHNIQUES}
        levels = {k: v for k, v in result.metrics.items() if k.startswith(("utilisation_level_", "perplexity_level_"))}
        rows.append({"configuration": name, **switches, **{k: result.metrics[k] for k in REPORTED_METRICS}, **levels})
    out_dir = Path(out_dir)
    write_json_atomic(
        out_dir / "ablation.json",
        {"base_config": base_config.model_dump(mode="json"), "catalog": embedded.metrics, "rows": rows},
    )
    write_text_atomic(out_dir / "ablation.md", ablation_markdown(rows, base_config.levels))
    return rows
