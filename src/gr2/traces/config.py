"""Configuration of the one prompt builder that training, evaluation and serving share."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_DOMAIN_KNOWLEDGE = (
    "Purchases follow routines: people restock what they use up, buy complements of what they just bought "
    "(shampoo, then conditioner, then styling products; a printer, then its ink), and stay within a brand "
    "or category they like. A recent purchase says more than an old one."
)


class PromptConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: str = Field("gr2-v1", description="Recorded with every trace, so a prompt change is visible.")
    domain_knowledge: str = Field(
        DEFAULT_DOMAIN_KNOWLEDGE, description="Priming text on purchase-sequence heuristics for the domain."
    )
    history_items: int = Field(
        10, ge=1, description="Most recent history items shown in the prompt (the data keeps up to 50)."
    )
    title_chars: int = Field(60, ge=8, description="Titles are cut to this many characters.")
    category_levels: int = Field(3, ge=0, description="Deepest category levels shown (0 hides categories).")
    direct_show_sids: bool = Field(
        True,
        description="Direct answer mode: write each item's semantic ID before its title (False: compact prompts, "
        "text only). The reasoning mode always shows them: its answer cites items by SID.",
    )
    direct_labels: list[str] = Field(
        default_factory=lambda: list("ABCDEFGHIJ"),
        min_length=2,
        description="Direct answer mode: the label of each candidate slot, in order. Each must be one token of "
        "the model's tokenizer (checked at start-up); a request may have at most this many candidates.",
    )
    direct_shuffle: bool = Field(
        False,
        description="Direct answer mode: show the candidates in a shuffled order (seeded by the candidate list, "
        "so a request always gets the same order) instead of the incoming order, so the label letter carries no "
        "position; pair with direct_show_ranks to keep the upstream ranker's opinion visible.",
    )
    direct_show_ranks: bool = Field(
        False, description="Direct answer mode: write each candidate's upstream (incoming) rank beside it."
    )
    direct_evidence: bool = Field(
        False,
        description="Direct answer mode: write beside each candidate how often other shoppers bought it right "
        "after the user's latest items and near any of their items (the train split's collaborative counts, "
        "saved with the model so serving writes the same).",
    )
    direct_readout: Literal["answer", "candidate"] = Field(
        "answer",
        description="Direct answer mode: where the scores are read. `answer`: the label tokens' logits at the "
        "first answer position (FIRST). `candidate`: the logit of `direct_score_token` at the end of each "
        "candidate's line, so each score is read where its candidate was written (still one prefill).",
    )
    direct_score_token: str = Field(
        " yes",
        description="Direct answer mode with the `candidate` readout: the one token whose logit scores a "
        "candidate (checked at start-up like the labels).",
    )
    max_prompt_tokens: int = Field(
        1024, ge=64, description="Prompts longer than this (measured with the model's tokenizer) are an error."
    )


class TeacherConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backend: Literal["evidence", "openai", "hf", "vllm"] = Field(
        "evidence",
        description="`evidence`: the deterministic evidence analyst (no LLM; for machines without a teacher "
        "model); `openai`: any OpenAI-compatible chat endpoint; `hf`: a local transformers model; `vllm`: "
        "vLLM's offline engine (GPU image only).",
    )
    mode: Literal["rejection", "targeted"] = Field(
        "rejection",
        description="`rejection`: the teacher is not told the answer; keep the first of `max_tries` samples "
        "whose top-1 is the held-out item, else drop the example. `targeted`: the teacher is told the answer "
        "and explains it (always yields a trace, but rationalises).",
    )
    max_tries: int = Field(8, ge=1, description="Samples per example in rejection mode.")
    temperature: float = Field(0.7, ge=0.0, description="Sampling temperature of the teacher.")
    max_new_tokens: int = Field(512, ge=16, description="Token budget of one teacher answer (LLM backends).")
    model: str = Field("", description="`openai`: the served model name; `hf`/`vllm`: a model path or id.")
    base_url: str = Field("", description="`openai`: base URL ending in /v1, e.g. http://teacher:8000/v1.")
    api_key_env: str = Field(
        "GR2_TEACHER_API_KEY",
        description="`openai`: environment variable holding the API key (on a cluster, mounted from a secret).",
    )
    timeout_seconds: float = Field(120.0, gt=0, description="`openai`: per-request timeout.")
    max_retries: int = Field(4, ge=0, description="`openai`: retries with exponential backoff on errors.")
    concurrency: int = Field(8, ge=1, description="`openai`: requests in flight at once.")
    batch_size: int = Field(16, ge=1, description="Examples per round; output is appended after each round.")
    max_examples: int | None = Field(
        None, ge=1, description="Generate for at most this many train examples (small presets); None for all."
    )
