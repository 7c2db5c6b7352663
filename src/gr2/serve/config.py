"""Configuration of serving: how the model decodes (stored in a bundle) and how the server behaves.

Every field documents itself through its description, so `ServeConfig.model_json_schema()` is the reference
of the options (docs/serving.md lists them).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MIN_CANDIDATES = 2


class DecodingConfig(BaseModel):
    """How a trained model is asked to answer; written into the bundle's gr2.json by training."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["reasoning", "direct"] = Field(
        default="reasoning",
        description=(
            "`direct`: one forward pass scores every candidate by its label's logit (`gr2.rank.direct`); the "
            "answer has no explanation. `reasoning`: free reasoning, then the constrained ranking."
        ),
    )
    fusion_lambda: float = Field(
        default=0.0,
        ge=0.0,
        description="`direct`: weight of the incoming order's prior fused with the model's scores (chosen on "
        "validation by direct training; 0 is the model alone).",
    )
    reasoning_tokens: int = Field(
        default=256,
        ge=0,
        description=(
            "Most tokens of free reasoning (the `explanation` string) before the ranking is forced; 0 is "
            "reasoning-free serving (the explanation is empty and only the constrained ranking is decoded)."
        ),
    )
    max_candidates: int = Field(
        default=10,
        ge=MIN_CANDIDATES,
        description="Most candidates per request (K); the model was trained on lists of this length or shorter.",
    )


class ServeConfig(BaseModel):
    """The GR2 model server (`gr2 serve`)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        description=(
            "The model bundle to serve: a bundle directory (it holds gr2.json), a run directory (its newest "
            "bundle is served), or a remote URI such as gs://bucket/bundles/run (copied once into the cache)."
        ),
    )
    name: str = Field(
        default="gr2",
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        description="Model name in the URLs: /v1/models/NAME:predict, /v2/models/NAME/infer, OpenAI `model`.",
    )
    host: str = Field(default="127.0.0.1", description="Address to listen on; 0.0.0.0 inside a container.")
    port: int = Field(default=8080, ge=1, le=65535, description="HTTP port.")
    backend: Literal["local", "remote"] = Field(
        default="local",
        description=(
            "`local`: transformers in this process (CPU or GPU). `remote`: an OpenAI-compatible generator "
            "(vLLM, KServe's huggingface runtime) serves the LLM and this server does the pre/post processing."
        ),
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="`local`: where the model runs; `auto` takes a GPU when there is one."
    )
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        default="auto", description="`local`: weight dtype; `auto` keeps the checkpoint's."
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        description=(
            "`local`: torch intra-op threads; None keeps torch's default (one per core). On a CPU shared with "
            "other processes 1 is often much faster: oversubscribed threads wait on each other."
        ),
    )
    remote_url: str = Field(
        default="",
        description=(
            "`remote`: base URL of the generator's OpenAI API, ending in /v1 "
            "(vLLM: http://HOST:8000/v1; KServe huggingface runtime: http://NAME-predictor.NAMESPACE/openai/v1)."
        ),
    )
    remote_model: str = Field(default="", description="`remote`: the model name the generator serves the LLM as.")
    remote_api_key_env: str = Field(
        default="GR2_GENERATOR_API_KEY",
        description="`remote`: environment variable with the generator's API key (unset: no Authorization header).",
    )
    reasoning_tokens: int | None = Field(
        default=None, ge=0, description="Overrides the bundle's reasoning budget (tokens); None keeps it."
    )
    max_candidates: int | None = Field(
        default=None, ge=MIN_CANDIDATES, description="Overrides the bundle's most candidates per request."
    )
    max_history: int = Field(
        default=50,
        ge=0,
        description="Most history items per request (the prompt shows the bundle's `history_items` most recent).",
    )
    max_instances: int = Field(default=16, ge=1, description="Most instances in one v1 request.")
    max_item_id_chars: int = Field(default=128, ge=1, description="Longest accepted item id.")
    max_body_bytes: int = Field(
        default=256 * 1024, ge=1024, description="Larger request bodies are refused with 413 before parsing."
    )
    unknown_items: Literal["reject", "keep"] = Field(
        default="reject",
        description=(
            "Item ids the bundle has no SID for. `reject`: the request fails with 400 naming them. `keep`: "
            "unknown candidates stay at their incoming positions (unrankable) and unknown history items are "
            "left out of the prompt."
        ),
    )
    timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description=(
            "Per request, waiting in the queue included; past it the response is the incoming order with "
            "fallback_reason `timeout`."
        ),
    )
    concurrency: int = Field(
        default=1,
        ge=1,
        description=(
            "Generations in flight at once. 1 for `local` (one model, and a batch per v1 request); the "
            "remote generator batches by itself, so `remote` can use 8 or more."
        ),
    )
    chat_max_tokens: int = Field(default=1024, ge=1, description="Cap of `max_tokens` on /openai/v1/chat/completions.")

    @model_validator(mode="after")
    def _remote_needs_url(self) -> ServeConfig:
        if self.backend == "remote" and not self.remote_url:
            raise ValueError("ServeConfig: backend='remote' needs remote_url (the generator's .../v1 URL)")
        return self

    def decoding(self, bundled: DecodingConfig) -> DecodingConfig:
        """The bundle's decoding settings with this config's overrides applied."""
        overrides = {"reasoning_tokens": self.reasoning_tokens, "max_candidates": self.max_candidates}
        return bundled.model_copy(update={key: value for key, value in overrides.items() if value is not None})
