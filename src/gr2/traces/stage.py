"""The `traces` and `filter` stages: teacher traces for the re-ranker's train examples, then the SFT set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from gr2.inputs import StageInputs
from gr2.storage.atomic import write_json_atomic, write_text_atomic
from gr2.traces.config import PromptConfig, TeacherConfig
from gr2.traces.evidence import EvidenceTeacher
from gr2.traces.sampling import generate_traces, read_traces, trace_metrics
from gr2.traces.teachers import EvidenceBackend, HFBackend, OpenAIChatBackend, Teacher, VLLMBackend
from gr2.train.sft import render

TRACES_FILE = "traces.jsonl"
SFT_FILE = "sft_traces.jsonl"


def build_teacher(config: TeacherConfig, inputs: StageInputs, seed: int) -> Teacher:
    if config.backend == "evidence":
        analyst = EvidenceTeacher(
            inputs.catalog, inputs.sids, inputs.split.train_sequences(), temperature=config.temperature
        )
        return EvidenceBackend(analyst)
    if config.backend == "openai":
        return OpenAIChatBackend(config)
    if config.backend == "hf":
        return HFBackend(config)
    return VLLMBackend(config)


def provenance(teacher: Teacher, config: TeacherConfig, prompt: PromptConfig, seed: int) -> dict:
    return {
        "teacher": teacher.name,
        "teacher_is_llm": config.backend != "evidence",
        "backend": config.backend,
        "mode": config.mode,
        "max_tries": config.max_tries,
        "temperature": config.temperature,
        "prompt_version": prompt.version,
        "seed": seed,
    }


def run_traces(
    inputs: StageInputs, config: TeacherConfig, prompt: PromptConfig, seed: int, work_dir: Path, out_dir: Path
) -> dict[str, float]:
    """Generate (or resume) traces in work_dir, then publish them with their provenance to out_dir."""
    examples = inputs.examples_of("train", config.max_examples, seed)
    teacher = build_teacher(config, inputs, seed)
    work_dir.mkdir(parents=True, exist_ok=True)
    generate_traces(examples, teacher, inputs.catalog, inputs.sids, prompt, config, seed, work_dir / TRACES_FILE)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(work_dir / TRACES_FILE, out_dir / TRACES_FILE)
    write_json_atomic(out_dir / "provenance.json", provenance(teacher, config, prompt, seed))
    records = read_traces(out_dir / TRACES_FILE)
    metrics = trace_metrics(records)
    write_json_atomic(out_dir / "metrics.json", metrics)
    return metrics


def token_count(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def filter_traces(
    traces_dir: Path, tokenizer, prompt: PromptConfig, max_length: int, out_dir: Path
) -> dict[str, float]:
    """Keep accepted traces whose prompt fits the prompt budget and whose whole conversation fits the SFT
    length; report the measured token budget."""
    records = read_traces(traces_dir / TRACES_FILE)
    accepted = [r for r in records if r["accepted"]]
    kept, too_long_prompt, too_long = [], 0, 0
    prompt_tokens, total_tokens = [], []
    for record in accepted:
        prompt_length = token_count(tokenizer, render(tokenizer, record["messages"], None))
        full_length = token_count(tokenizer, render(tokenizer, record["messages"], record["answer"]))
        prompt_tokens.append(prompt_length)
        total_tokens.append(full_length)
        if prompt_length > prompt.max_prompt_tokens:
            too_long_prompt += 1
        elif full_length > max_length:
            too_long += 1
        else:
            kept.append(record)
    if not kept:
        raise ValueError(
            f"filter: none of {len(records)} traces is usable ({len(accepted)} accepted, {too_long_prompt} over "
            f"prompt.max_prompt_tokens, {too_long} over sft.max_length)"
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "provenance.json", {"source": str(traces_dir), "kept": len(kept)})
    shutil.copyfile(traces_dir / "provenance.json", out_dir / "teacher_provenance.json")
    write_text_atomic(out_dir / SFT_FILE, "".join(json.dumps(r) + "\n" for r in kept))
    return {
        "kept": len(kept),
        "dropped_rejected": len(records) - len(accepted),
        "dropped_prompt_over_budget": too_long_prompt,
        "dropped_too_long": too_long,
        "prompt_tokens_mean": sum(prompt_tokens) / len(prompt_tokens),
        "prompt_tokens_max": max(prompt_tokens),
        "trace_tokens_mean": sum(total_tokens) / len(total_tokens),
    }
