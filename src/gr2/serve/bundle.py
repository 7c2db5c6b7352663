"""The model bundle: everything a server needs to answer re-ranking requests, in one directory.

Layout (the directory is also a plain Hugging Face checkpoint, so vLLM and KServe's huggingface runtime
load it as it is and ignore the GR2 files):

    config.json, *.safetensors, tokenizer files   the LLM with the SID vocabulary
    sid_map.json                                  item id <-> semantic ID (gr2.sid.sidmap.SidMap)
    items.jsonl.gz                                the catalogue of the items that have a SID (data-artifact format)
    gr2.json                                      {"format", "prompt": PromptConfig, "decoding": DecodingConfig,
                                                   "source": provenance}
    collaborative_counts.json.gz                  only when prompt.direct_evidence: the train split's counts the
                                                   prompts cite (gr2.traces.collaborative), saved by the direct stage
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gr2.data.artifact import gzip_text, item_record
from gr2.data.loading import load_items
from gr2.data.schema import Item, LoadReport
from gr2.serve.config import DecodingConfig
from gr2.sid.sidmap import SidMap
from gr2.storage.atomic import materialise_once, write_dir_atomic
from gr2.traces.collaborative import CollaborativeCounts
from gr2.traces.config import PromptConfig

MANIFEST_FILE = "gr2.json"
SID_MAP_FILE = "sid_map.json"
CATALOG_FILE = "items.jsonl.gz"
BUNDLE_FORMAT = "gr2-bundle/1"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".h5", ".msgpack")


class BundleManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["gr2-bundle/1"] = Field(default=BUNDLE_FORMAT, description="Bundle layout version.")
    prompt: PromptConfig = Field(default_factory=PromptConfig, description="The prompt the model was trained on.")
    decoding: DecodingConfig = Field(default_factory=DecodingConfig, description="How the model is decoded.")
    source: dict[str, str] = Field(default_factory=dict, description="Provenance, e.g. run and stage names.")


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: BundleManifest
    sid_map: SidMap
    catalog: dict[str, Item]
    evidence: CollaborativeCounts | None = None

    def rankable(self, item_id: str) -> bool:
        return item_id in self.sid_map.codes


def items_without_text(sid_map: SidMap, catalog: Mapping[str, Item]) -> list[str]:
    return sorted(item for item in sid_map.codes if item not in catalog)


def save_checkpoint(checkpoint: str | Path | tuple, out_dir: Path) -> None:
    """Copy a checkpoint directory, or save a (model, tokenizer) pair, into `out_dir`."""
    if isinstance(checkpoint, tuple):
        model, tokenizer = checkpoint
        model.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
    else:
        shutil.copytree(checkpoint, out_dir, dirs_exist_ok=True)


def check_sid_vocabulary(out_dir: Path, sid_map: SidMap) -> None:
    from transformers import AutoTokenizer

    from gr2.lm.vocab import sid_token_ids

    sid_token_ids(AutoTokenizer.from_pretrained(out_dir), sid_map)


def write_bundle(
    out_dir: str | Path,
    checkpoint: str | Path | tuple,
    sid_map: SidMap,
    catalog: Mapping[str, Item],
    prompt: PromptConfig,
    decoding: DecodingConfig | None = None,
    source: Mapping[str, str] | None = None,
) -> Path:
    """Write a bundle atomically. `checkpoint`: a saved HF checkpoint directory (model and tokenizer with the
    SID vocabulary) or a (model, tokenizer) pair. Every SID item needs a catalogue entry (its prompt text)."""
    missing = items_without_text(sid_map, catalog)
    if missing:
        raise ValueError(
            f"write_bundle: {len(missing)} items of the SID map have no catalogue entry, e.g. {missing[0]!r}"
        )
    manifest = BundleManifest(prompt=prompt, decoding=decoding or DecodingConfig(), source=dict(source or {}))
    items_text = "".join(json.dumps(item_record(catalog[i]), ensure_ascii=False) + "\n" for i in sid_map.codes)

    def build(staging: Path) -> None:
        save_checkpoint(checkpoint, staging)
        check_sid_vocabulary(staging, sid_map)
        sid_map.save(staging / SID_MAP_FILE)
        (staging / CATALOG_FILE).write_bytes(gzip_text(items_text))
        (staging / MANIFEST_FILE).write_text(manifest.model_dump_json(indent=2) + "\n")

    return write_dir_atomic(Path(out_dir), build)


def load_bundle(path: str | Path) -> Bundle:
    path = Path(path)
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{path}: not a GR2 model bundle (no {MANIFEST_FILE})")
    manifest = BundleManifest.model_validate_json(manifest_path.read_text())
    sid_map = SidMap.load(path / SID_MAP_FILE)
    catalog = load_items(path / CATALOG_FILE, LoadReport())
    missing = items_without_text(sid_map, catalog)
    if missing:
        raise ValueError(f"{path}: {len(missing)} SID items have no catalogue entry, e.g. {missing[0]!r}")
    evidence = CollaborativeCounts.load(path) if manifest.prompt.direct_evidence else None
    return Bundle(path=path, manifest=manifest, sid_map=sid_map, catalog=catalog, evidence=evidence)


def newest_bundle_under(folder: Path) -> Path:
    """The most recently written bundle below a run directory."""
    manifests = sorted(folder.rglob(MANIFEST_FILE), key=lambda p: p.stat().st_mtime)
    if not manifests:
        raise FileNotFoundError(
            f"{folder}: no GR2 model bundle in it or below it (a bundle is a directory with {MANIFEST_FILE})"
        )
    return manifests[-1].parent


def is_weight_file(name: str) -> bool:
    return name.endswith(WEIGHT_SUFFIXES)


def fetch_bundle(uri: str, cache_dir: Path, weights: bool = True) -> Path:
    """Copy a bundle from an fsspec URI (gs://, s3://, memory://) into the cache once. Without `weights`
    only the tokenizer, SID map, catalogue and manifest come (enough for the remote backend)."""
    import fsspec

    scheme, _, rest = uri.partition("://")

    def build(out_dir: Path) -> None:
        fs, root = fsspec.core.url_to_fs(uri)
        if not fs.isfile(f"{root.rstrip('/')}/{MANIFEST_FILE}"):
            raise FileNotFoundError(f"{uri}: not a GR2 model bundle (no {MANIFEST_FILE})")
        for remote in fs.find(root):
            if weights or not is_weight_file(remote):
                local = out_dir / os.path.relpath(remote, root)
                local.parent.mkdir(parents=True, exist_ok=True)
                fs.get_file(remote, str(local))

    kind = "full" if weights else "light"
    return materialise_once(cache_dir / "bundles" / kind / scheme / rest.strip("/"), build)


def resolve_bundle(model: str, cache_dir: Path | None = None, weights: bool = True) -> Path:
    """The local bundle directory for `--model`: a bundle, a run directory, or a remote URI."""
    from gr2.lm.models import default_cache_dir

    if "://" in model:
        return fetch_bundle(model, Path(cache_dir) if cache_dir else default_cache_dir(), weights)
    path = Path(model)
    if not path.is_dir():
        raise FileNotFoundError(f"--model {model!r}: no such directory (expected a bundle, a run dir or a URI)")
    return path if (path / MANIFEST_FILE).is_file() else newest_bundle_under(path)
