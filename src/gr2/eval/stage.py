"""The `evaluate` stage: judge every row, decide the deployment gate, write results, report and manifest."""

from __future__ import annotations

import json
from pathlib import Path

from gr2.config import RunConfig
from gr2.eval.evaluate import (
    Ranker,
    direct_rankers,
    evaluate_rows,
    likelihood_ranker,
    llm_ranker,
    load_curve,
    teacher_ranker,
)
from gr2.eval.gate import FUSED
from gr2.eval.manifest import build_manifest
from gr2.inputs import StageInputs
from gr2.rank.direct import stage_prompt_context
from gr2.rank.frozen import CachedDirectScorer
from gr2.storage.atomic import write_json_atomic
from gr2.train.direct_stage import read_direct_file

# {start}: what DAPO started from, "SFT + OPD" after the report's RL-OPD order, else "SFT"
MODEL_ROWS = {
    "sft": "SFT on rejection-sampled traces",
    "opd": "SFT + on-policy distillation (OPD)",
    "dapo": "{start} + DAPO, conditional reward (GR2)",
    "dapo_naive": "{start} + DAPO, naive reward (ablation)",
}
DIRECT_ROWS = {
    "direct_sft": "Direct SFT (one prefill, no reasoning)",
    "direct_dapo": "Direct SFT + DAPO, conditional reward",
    "direct_dapo_naive": "Direct SFT + DAPO, naive reward (ablation)",
}
CURVES = ("sft", "opd", "dapo", "dapo_naive", *DIRECT_ROWS)
# rows that generate text or score every candidate's SID: too slow on CPU for every test example
SAMPLED_ROWS = frozenset({"midtrain", *MODEL_ROWS})
TIMING_KEYS = ("train_seconds", "embed_seconds", "load_seconds")


def model_row_label(name: str, model_dirs: dict[str, Path]) -> str:
    """A reasoning row's label; DAPO trained after OPD says so."""
    return MODEL_ROWS[name].format(start="SFT + OPD" if "opd" in model_dirs else "SFT")


def teacher_label(config: RunConfig) -> str:
    if config.teacher.backend == "evidence":
        return "Teacher: evidence analyst (not an LLM)"
    return f"Teacher: {config.teacher.backend} {config.teacher.model}"


def model_rankers(
    config: RunConfig, inputs: StageInputs, model_dirs: dict[str, Path], direct_cache: Path | None
) -> dict[str, tuple[str, str, Ranker]]:
    """The model and teacher rows. The direct rows run their top layers on the lower layers' output cached in
    `direct_cache`: models trained from the same frozen weights compute it once for all of them."""
    from gr2.lm.models import load_on_device
    from gr2.traces.stage import build_teacher

    teacher = build_teacher(config.teacher.model_copy(update={"temperature": 0.0}), inputs, config.seed)
    rankers = {
        "teacher": (teacher_label(config), "teacher", teacher_ranker(teacher, inputs, config.prompt, config.seed))
    }
    if "midtrain" in model_dirs:
        model, tokenizer = load_on_device(model_dirs["midtrain"])
        ranker = likelihood_ranker(
            model, tokenizer, inputs, config.midtrain.system_prompt, config.midtrain.history_length
        )
        rankers["midtrain"] = ("Mid-trained (SID likelihood)", "model", ranker)
    for name in MODEL_ROWS:
        if name in model_dirs:
            model, tokenizer = load_on_device(model_dirs[name])
            ranker = llm_ranker(model, tokenizer, inputs, config.prompt, config.evaluate)
            rankers[name] = (model_row_label(name, model_dirs), "model", ranker)
    context = stage_prompt_context(inputs, config.prompt)
    for name, label in DIRECT_ROWS.items():
        if name in model_dirs:
            model, tokenizer = load_on_device(model_dirs[name])
            stored = read_direct_file(model_dirs[name])
            scorer = CachedDirectScorer(model, tokenizer, context, stored["trainable_layers"], direct_cache)
            fusion = stored["fusion_lambda"]
            alone, fused = direct_rankers(scorer, fusion)
            rankers[name] = (label, "model", alone)
            rankers[f"{name}{FUSED}"] = (f"{label}, fused with the incoming order (lambda {fusion:g})", "model", fused)
    return rankers


def flat_metrics(results: dict) -> dict[str, float]:
    """`<row>.<metric>` for every row, intervals as `<row>.<metric>_ci_low/high`, and `gate_passed`."""
    flat: dict[str, float] = {"examples": results["examples"], "gate_passed": float(results["gate"]["passed"])}
    for row, body in results["rows"].items():
        flat |= {f"{row}.{metric}": value for metric, value in body["metrics"].items()}
        for metric, (low, high) in body["ci95"].items():
            flat |= {f"{row}.{metric}_ci_low": low, f"{row}.{metric}_ci_high": high}
        for metric, test in body.get("vs_prerank", {}).items():
            flat[f"{row}.{metric}_p_value_vs_prerank"] = test["p_value"]
        flat |= {f"{row}.{name}": value for name, value in body.get("position_bias", {}).items()}
    return flat


def run_evaluate(
    config: RunConfig,
    inputs: StageInputs,
    model_dirs: dict[str, Path],
    stage_metrics: dict[str, dict],
    dataset_summary: dict,
    upstream: dict[str, str],
    image: str,
    out_dir: Path,
    direct_cache: Path | None = None,
) -> tuple[dict[str, float], bool]:
    rankers = model_rankers(config, inputs, model_dirs, direct_cache)
    results = evaluate_rows(inputs, rankers, config.evaluate, config.seed, SAMPLED_ROWS)
    results |= {
        "preset": config.name,
        "dataset": dataset_summary.get("name"),
        "curves": {name: load_curve(model_dirs.get(name)) for name in CURVES},
        "sid": stage_metrics.get("sid", {}),
        "stages": stage_metrics,
        "row_order": list(results["rows"]),  # JSON objects are unordered; the report lists rows in this order
    }
    timings = {f"{stage}.{key}": m[key] for stage, m in stage_metrics.items() for key in TIMING_KEYS if key in m}
    manifest = build_manifest(
        json.loads(config.model_dump_json()), config.config_hash(), dataset_summary, upstream, timings, image
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out_dir / "results.json", results)
    write_json_atomic(out_dir / "manifest.json", manifest)
    write_report_files(results, manifest, out_dir)
    return flat_metrics(results), results["gate"]["passed"]


def write_report_files(results: dict, manifest: dict, out_dir: Path) -> None:
    from gr2.eval.report import write_report

    write_report(results, manifest, out_dir)
