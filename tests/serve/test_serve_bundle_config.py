"""The model bundle format, its resolution from --model, and the serving configuration and command line."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import fsspec
import pytest
from pydantic import ValidationError

from gr2.serve.bundle import MANIFEST_FILE, fetch_bundle, load_bundle, resolve_bundle, write_bundle
from gr2.serve.config import DecodingConfig, ServeConfig
from gr2.serve.server import serve_config
from gr2.sid.sidmap import SidMap
from gr2.traces.config import PromptConfig


def test_bundle_round_trip(bundle_dir, bundle, sid_map, catalog):
    assert bundle.sid_map.codes == sid_map.codes
    assert bundle.catalog.keys() == sid_map.codes.keys()
    assert bundle.catalog[next(iter(catalog))] == catalog[next(iter(catalog))]
    assert bundle.manifest.decoding == DecodingConfig(reasoning_tokens=8, max_candidates=10)
    assert bundle.manifest.prompt.history_items == 20
    assert bundle.manifest.source == {"test": "tiny-random"}
    assert (bundle_dir / "config.json").is_file() and (bundle_dir / "tokenizer.json").is_file()


def test_bundle_from_a_model_and_tokenizer(tmp_path, bundle_dir, bundle, catalog):
    from gr2.lm.models import load_model_and_tokenizer

    pair = load_model_and_tokenizer(bundle_dir)
    written = write_bundle(tmp_path / "b", pair, bundle.sid_map, catalog, PromptConfig())
    assert load_bundle(written).sid_map.codes == bundle.sid_map.codes
    assert (written / "model.safetensors").is_file()


def test_bundle_needs_text_for_every_sid_item(tmp_path, bundle_dir, sid_map, catalog):
    extra = SidMap(sid_map.levels, sid_map.codebook_size, {**sid_map.codes, "ghost": (15, 15, 15, 15)})
    with pytest.raises(ValueError, match="no catalogue entry, e.g. 'ghost'"):
        write_bundle(tmp_path / "b", bundle_dir, extra, catalog, PromptConfig())


def test_bundle_needs_the_sid_vocabulary(tmp_path, bundle_dir, catalog):
    wider = SidMap(5, 16, {item: (0, 0, 0, 0, n) for n, item in enumerate(list(catalog)[:16])})
    with pytest.raises(ValueError, match="not in the tokenizer's vocabulary"):
        write_bundle(tmp_path / "b", bundle_dir, wider, catalog, PromptConfig())
    assert not (tmp_path / "b").exists()


def test_manifest_rejects_unknown_fields(tmp_path, bundle_dir):
    broken = tmp_path / "broken"
    broken.mkdir()
    manifest = json.loads((bundle_dir / MANIFEST_FILE).read_text()) | {"surprise": 1}
    (broken / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(ValidationError, match="surprise"):
        load_bundle(broken)


def test_resolve_bundle_from_a_run_directory_takes_the_newest(tmp_path, bundle_dir):
    run = tmp_path / "run"
    old, new = run / "kfp" / "a" / "model", run / "kfp" / "b" / "model"
    for folder in (old, new):
        folder.mkdir(parents=True)
        (folder / MANIFEST_FILE).write_text("{}")
    os.utime(old / MANIFEST_FILE, (time.time() - 60, time.time() - 60))
    assert resolve_bundle(str(run)) == new
    assert resolve_bundle(str(bundle_dir)) == bundle_dir
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no GR2 model bundle"):
        resolve_bundle(str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match="no such directory"):
        resolve_bundle(str(tmp_path / "missing"))


def test_fetch_bundle_without_weights(tmp_path, bundle_dir):
    fs = fsspec.filesystem("memory")
    for path in bundle_dir.iterdir():
        fs.pipe(f"/bundles/run1/{path.name}", path.read_bytes())
    light = fetch_bundle("memory://bundles/run1", tmp_path / "cache", weights=False)
    assert (light / MANIFEST_FILE).is_file() and (light / "tokenizer.json").is_file()
    assert not list(light.glob("*.safetensors"))
    assert load_bundle(light).sid_map.codes.keys() == load_bundle(bundle_dir).sid_map.codes.keys()
    with pytest.raises(FileNotFoundError, match="not a GR2 model bundle"):
        fetch_bundle("memory://bundles/none", tmp_path / "cache")


def test_serve_config_validates_and_overrides_decoding():
    with pytest.raises(ValidationError, match="remote_url"):
        ServeConfig(model="m", backend="remote")
    with pytest.raises(ValidationError, match="extra_forbidden"):
        ServeConfig(model="m", colour="red")
    with pytest.raises(ValidationError, match="name"):
        ServeConfig(model="m", name="Bad_Name")
    config = ServeConfig(model="m", reasoning_tokens=0)
    assert config.decoding(DecodingConfig(reasoning_tokens=64, max_candidates=20)) == DecodingConfig(
        reasoning_tokens=0, max_candidates=20
    )


def test_command_line(tmp_path):
    file = tmp_path / "serve.yaml"
    file.write_text("timeout_seconds: 5\nunknown_items: keep\nport: 9000\n")
    config = serve_config(["--model", "m", "--config", str(file), "--set", "threads=1", "--port", "9100"])
    assert (config.timeout_seconds, config.unknown_items, config.threads, config.port) == (5, "keep", 1, 9100)
    assert config.host == "127.0.0.1" and config.name == "gr2"
    kserve_style = serve_config(
        ["--model", "m", "--backend", "remote", "--model_name", "rr", "--http_port", "8081", "--predictor_host", "p.ns"]
    )
    assert (kserve_style.name, kserve_style.port, kserve_style.remote_url) == ("rr", 8081, "http://p.ns/openai/v1")
    with pytest.raises(SystemExit, match="timeout_seconds"):
        serve_config(["--model", "m", "--set", "timeout_seconds=-1"])
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        serve_config(["--model", "m", "--set", "threads"])


def test_every_config_field_is_documented():
    docs = (Path(__file__).resolve().parents[2] / "docs" / "serving.md").read_text()
    for model in (ServeConfig, DecodingConfig):
        for field in model.model_fields:
            assert f"`{field}`" in docs, f"{model.__name__}.{field} is not in docs/serving.md"
