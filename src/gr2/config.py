"""The run configuration: one typed schema composed of each stage's own config, and the presets.

Presets are YAML files in `configs/`; every key is validated against this schema and unknown keys are
rejected with the path of the offending key.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gr2.data.config import DataConfig
from gr2.eval.config import EvaluateConfig
from gr2.lm.config import BaseModelConfig, MidtrainConfig
from gr2.prerank.config import PrerankConfig
from gr2.sid.config import SidConfig
from gr2.storage.hashing import hash_json
from gr2.traces.config import PromptConfig, TeacherConfig
from gr2.train.config import DapoConfig, DirectDapoConfig, DirectSftConfig, OpdConfig, SftConfig

CONFIGS_ENV = "GR2_CONFIGS"


class ConfigError(ValueError):
    """A preset or override is invalid; the message names the key and the problem."""


class RunConfig(BaseModel):
    """Everything one GR2 run needs. Each section is the config of one stage."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., description="Preset name; recorded in outputs and the audit manifest.")
    description: str = Field("", description="What this preset is for.")
    seed: int = Field(0, description="Seed of every random choice in every stage (overrides the sections' own).")
    workspace: str = Field(
        "~/.cache/gr2/workspace",
        description="Folder for checkpoints and resumable outputs, keyed by stage and config hash, so an "
        "interrupted run resumes. `gr2 run` uses OUT/workspace; on a cluster, the mounted workspace PVC.",
    )
    cache: str = Field(
        "~/.cache/gr2",
        description="Content-addressed caches shared by runs (sentence embeddings): safe to share because an "
        "entry's key is the hash of its inputs.",
    )
    data: DataConfig = Field(default_factory=DataConfig, description="Dataset, split and sampling.")
    prerank: PrerankConfig = Field(default_factory=PrerankConfig, description="The K-candidate pre-ranker.")
    sid: SidConfig = Field(default_factory=SidConfig, description="Semantic-ID tokenizer (RQ-VAE).")
    base_model: BaseModelConfig = Field(default_factory=BaseModelConfig, description="The student LLM.")
    midtrain: MidtrainConfig = Field(default_factory=MidtrainConfig, description="Mid-training on SIDs.")
    prompt: PromptConfig = Field(default_factory=PromptConfig, description="The one re-ranking prompt.")
    teacher: TeacherConfig = Field(default_factory=TeacherConfig, description="Reasoning-trace teacher.")
    sft: SftConfig = Field(default_factory=SftConfig, description="SFT on accepted traces.")
    opd: OpdConfig = Field(
        default_factory=OpdConfig, description="On-policy distillation between SFT and DAPO (off unless enabled)."
    )
    dapo: DapoConfig = Field(default_factory=DapoConfig, description="DAPO with verifiable rewards.")
    direct_sft: DirectSftConfig = Field(
        default_factory=DirectSftConfig, description="Direct (reasoning-free) SFT on the label logits."
    )
    direct_dapo: DirectDapoConfig = Field(
        default_factory=DirectDapoConfig, description="DAPO without reasoning on the label scores."
    )
    evaluate: EvaluateConfig = Field(default_factory=EvaluateConfig, description="Evaluation and the deploy gate.")

    @model_validator(mode="after")
    def _one_seed(self) -> RunConfig:
        """The run's seed is the only seed: sections that carry their own get it."""
        self.sid = self.sid.model_copy(update={"seed": self.seed})
        self.base_model = self.base_model.model_copy(update={"seed": self.seed})
        self.midtrain = self.midtrain.model_copy(update={"seed": self.seed})
        return self

    def stage_workspace(self, stage: str) -> Path:
        """Where `stage` keeps checkpoints for this exact configuration."""
        return Path(self.workspace).expanduser() / f"{stage}-{self.config_hash()}"

    def config_hash(self) -> str:
        """Identifies what a run computes; workspace and cache are only where, so they are left out."""
        return hash_json(self.model_dump(mode="json", exclude={"workspace", "cache"}))[:16]


def configs_dir() -> Path:
    configured = os.environ.get(CONFIGS_ENV)
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "configs"


def available_presets() -> list[str]:
    return sorted(path.stem for path in configs_dir().glob("*.yaml"))


def format_validation_error(source: str, error: ValidationError) -> str:
    problems = [f"  {'.'.join(str(p) for p in e['loc']) or '(top level)'}: {e['msg']}" for e in error.errors()]
    return f"{source}: invalid configuration\n" + "\n".join(problems)


def parse_config(payload: dict[str, Any], source: str) -> RunConfig:
    try:
        return RunConfig.model_validate(payload)
    except ValidationError as error:
        raise ConfigError(format_validation_error(source, error)) from None


def apply_override(payload: dict[str, Any], assignment: str) -> None:
    """Apply `a.b.c=value` (value parsed as YAML) to a nested dict."""
    key, separator, raw_value = assignment.partition("=")
    if not separator or not key:
        raise ConfigError(f"override {assignment!r}: expected KEY=VALUE, e.g. prerank.sasrec.epochs=5")
    *parents, leaf = key.split(".")
    node = payload
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {assignment!r}: {part!r} is not a section")
    node[leaf] = yaml.safe_load(raw_value)


def load_preset(name: str, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """A preset by name (from `configs/`) or a path to a YAML file, with KEY=VALUE overrides applied."""
    path = Path(name) if name.endswith((".yaml", ".yml")) else configs_dir() / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"preset {name!r} not found; available: {', '.join(available_presets())}")
    try:
        payload = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({error})") from None
    if not isinstance(payload, dict):
        raise ConfigError(f"{path}: a preset must be a mapping of sections")
    for assignment in overrides:
        apply_override(payload, assignment)
    return parse_config(payload, str(path))


def config_from_json(text: str) -> RunConfig:
    return parse_config(json.loads(text), "config_json")
