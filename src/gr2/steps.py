"""One function per pipeline stage: what a KFP component body calls.

Each takes the run configuration as JSON, input artifact paths and output artifact paths (as plain
strings, so no kfp import is needed here) and a `log_metric(name, value)` callback (KFP's
`Metrics.log_metric`), and calls the stage's library function.
The training steps run on the processes and nodes their config section asks for (`distributed_step`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gr2.config import config_from_json
from gr2.distributed.launch import distributed_step

LogMetric = Callable[[str, float], None]


def log_all(metrics: dict[str, float], log_metric: LogMetric) -> None:
    for name, value in sorted(metrics.items()):
        log_metric(name, float(value))


def data_step(config_json: str, dataset: str, dataset_out: str, log_metric: LogMetric) -> None:
    from gr2.data.stage import prepare_dataset

    config = config_from_json(config_json)
    log_all(prepare_dataset(dataset, config.data, config.seed, Path(dataset_out)), log_metric)


def prerank_step(config_json: str, dataset: str, examples_out: str, model_out: str, log_metric: LogMetric) -> None:
    from gr2.prerank.stage import run_prerank

    config = config_from_json(config_json)
    metrics = run_prerank(
        Path(dataset), config.prerank, config.data, config.seed, Path(examples_out), Path(model_out), config.midtrain
    )
    log_all(metrics, log_metric)


def sid_step(config_json: str, dataset: str, sid_out: str, log_metric: LogMetric) -> None:
    from gr2.data.artifact import read_interactions
    from gr2.data.split import training_split
    from gr2.sid.stage import build_semantic_ids

    config = config_from_json(config_json)
    data = read_interactions(dataset)
    train = [seq for seq in training_split(data, config.data.max_history).train_sequences().values() if seq]
    cache = Path(config.cache).expanduser() / "embeddings"
    log_all(build_semantic_ids(data.items, train, config.sid, Path(sid_out), cache), log_metric)


def base_model_step(config_json: str, sid: str, model_out: str, log_metric: LogMetric) -> None:
    from gr2.inputs import read_sid_map
    from gr2.lm.base import prepare_base_model

    config = config_from_json(config_json)
    log_all(prepare_base_model(config.base_model, read_sid_map(sid), Path(model_out)), log_metric)


def stage_inputs(config, dataset: str, examples: str, sid: str):
    from gr2.inputs import load_inputs

    return load_inputs(dataset, examples, sid, config.data.max_history)


@distributed_step("midtrain", inputs=("dataset", "examples", "sid", "base_model"), outputs=("model_out",))
def midtrain_step(
    config_json: str, dataset: str, examples: str, sid: str, base_model: str, model_out: str, log_metric: LogMetric
) -> None:
    from gr2.lm.midtrain import run_midtraining

    config = config_from_json(config_json)
    inputs = stage_inputs(config, dataset, examples, sid)
    test = [(list(e.history), e.target) for e in inputs.examples_of("test")]
    metrics = run_midtraining(
        Path(base_model),
        inputs.catalog,
        inputs.sids,
        inputs.train_sequences(),
        test,
        config.midtrain,
        Path(model_out),
        config.stage_workspace("midtrain"),
    )
    log_all(metrics, log_metric)


def traces_step(
    config_json: str, dataset: str, examples: str, sid: str, traces_out: str, log_metric: LogMetric
) -> None:
    from gr2.traces.stage import run_traces

    config = config_from_json(config_json)
    inputs = stage_inputs(config, dataset, examples, sid)
    metrics = run_traces(
        inputs, config.teacher, config.prompt, config.seed, config.stage_workspace("traces"), Path(traces_out)
    )
    log_all(metrics, log_metric)


def filter_step(config_json: str, traces: str, base_model: str, filtered_out: str, log_metric: LogMetric) -> None:
    from transformers import AutoTokenizer

    from gr2.traces.stage import filter_traces

    config = config_from_json(config_json)
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    metrics = filter_traces(Path(traces), tokenizer, config.prompt, config.sft.max_length, Path(filtered_out))
    log_all(metrics, log_metric)


@distributed_step("sft", inputs=("dataset", "examples", "sid", "model", "traces"), outputs=("model_out",))
def sft_step(
    config_json: str,
    dataset: str,
    examples: str,
    sid: str,
    model: str,
    traces: str,
    model_out: str,
    log_metric: LogMetric,
) -> None:
    from gr2.train.stage import run_sft

    config = config_from_json(config_json)
    inputs = stage_inputs(config, dataset, examples, sid)
    metrics = run_sft(
        inputs,
        Path(model),
        Path(traces),
        config.sft,
        config.prompt,
        config.seed,
        config.stage_workspace("sft"),
        Path(model_out),
        config.evaluate.decoding == "constrained",
    )
    log_all(metrics, log_metric)


def opd_step(
    config_json: str, dataset: str, examples: str, sid: str, model: str, model_out: str, log_metric: LogMetric
) -> None:
    """On-policy distillation of the SFT policy (`opd` section), between SFT and DAPO. One process: `train_opd`
    has no world to split over, so the task's other GPUs hold the teacher (`gr2.train.opd.load_teacher`)."""
    from gr2.train.stage import run_opd

    config = config_from_json(config_json)
    inputs = stage_inputs(config, dataset, examples, sid)
    metrics = run_opd(
        inputs,
        Path(model),
        config.opd,
        config.prompt,
        config.seed,
        config.stage_workspace("opd"),
        Path(model_out),
        config.evaluate.decoding == "constrained",
    )
    log_all(metrics, log_metric)


@distributed_step("dapo", inputs=("dataset", "examples", "sid", "model"), outputs=("model_out",))
def dapo_step(
    config_json: str,
    reward_kind: str,
    dataset: str,
    examples: str,
    sid: str,
    model: str,
    model_out: str,
    log_metric: LogMetric,
) -> None:
    from gr2.train.stage import run_dapo

    config = config_from_json(config_json)
    inputs = stage_inputs(config, dataset, examples, sid)
    reward = config.dapo.reward.model_copy(update={"kind": reward_kind})
    metrics = run_dapo(
        inputs,
        Path(model),
        config.dapo,
        reward,
        config.prompt,
        config.seed,
        config.stage_workspace(f"dapo-{reward_kind}"),
        Path(model_out),
        config.evaluate.decoding == "constrained",
    )
    log_all(metrics, log_metric)


def direct_states_cache(config) -> Path:
    """Frozen-layer activations of direct training and evaluation, keyed by the frozen weights and prompts."""
    return Path(config.cache).expanduser() / "direct-states"


@distributed_step("direct_sft", inputs=("dataset", "examples", "sid", "model"), outputs=("model_out",))
def direct_sft_step(
    config_json: str,
    dataset: str,
    examples: str,
    sid: str,
    model: str,
    model_out: str,
    log_metric: LogMetric,
) -> None:
    from gr2.train.direct_stage import run_direct_sft

    config = config_from_json(config_json)
    inputs = stage_inputs(config, dataset, examples, sid)
    metrics = run_direct_sft(
        inputs,
        Path(model),
        config.direct_sft,
        config.prompt,
        config.evaluate.fusion_lambdas,
        config.seed,
        config.stage_workspace("direct_sft"),
        Path(model_out),
        direct_states_cache(config),
    )
    log_all(metrics, log_metric)


@distributed_step("direct_dapo", inputs=("dataset", "examples", "sid", "model"), outputs=("model_out",))
def direct_dapo_step(
    config_json: str,
    reward_kind: str,
    dataset: str,
    examples: str,
    sid: str,
    model: str,
    model_out: str,
    log_metric: LogMetric,
) -> None:
    from gr2.train.direct_stage import run_direct_dapo

    config = config_from_json(config_json)
    inputs = stage_inputs(config, dataset, examples, sid)
    metrics = run_direct_dapo(
        inputs,
        Path(model),
        config.direct_dapo,
        config.direct_dapo.reward.model_copy(update={"kind": reward_kind}),
        config.prompt,
        config.evaluate.fusion_lambdas,
        config.seed,
        config.stage_workspace(f"direct_dapo-{reward_kind}"),
        Path(model_out),
        direct_states_cache(config),
    )
    log_all(metrics, log_metric)


def evaluate_step(
    config_json: str,
    dataset: str,
    examples: str,
    sid: str,
    models: dict[str, str | None],
    stage_metrics: dict[str, dict],
    upstream: dict[str, str],
    image: str,
    results_out: str,
    report_out: str,
    summary_out: str,
    manifest_out: str,
    log_metric: LogMetric,
) -> bool:
    """Evaluate every row; returns whether the deployment gate passed."""
    import json
    import shutil

    from gr2.eval.stage import run_evaluate

    config = config_from_json(config_json)
    inputs = stage_inputs(config, dataset, examples, sid)
    model_dirs = {name: Path(path) for name, path in models.items() if path}
    summary = json.loads((Path(dataset) / "dataset.json").read_text())
    out = Path(results_out)
    metrics, passed = run_evaluate(
        config, inputs, model_dirs, stage_metrics, summary, upstream, image, out, direct_states_cache(config)
    )
    for name, target in (("report.html", report_out), ("report.md", summary_out), ("manifest.json", manifest_out)):
        shutil.copyfile(out / name, target)
    log_all(metrics, log_metric)
    return passed


def deploy_step(
    config_json: str,
    dataset: str,
    sid: str,
    model: str,
    bundle_out: str,
    bundle_uri: str,
    manifest_out: str,
    namespace: str,
    apply_to_cluster: bool,
    candidate_row: str,
) -> None:
    """Package the gated model (the gate's `candidate_row`) as a serving bundle, decoded as that row was
    evaluated, and render (on a cluster: apply) its InferenceService."""
    from gr2.data.artifact import read_interactions
    from gr2.inputs import read_sid_map
    from gr2.serve.bundle import write_bundle
    from gr2.serve.deploy import deploy

    config = config_from_json(config_json)
    catalog = read_interactions(dataset).items
    from gr2.train.direct_stage import serving_decoding

    source = {"model": model, "preset": config.name, "config_hash": config.config_hash(), "row": candidate_row}
    decoding = serving_decoding(candidate_row, Path(model))
    write_bundle(bundle_out, model, read_sid_map(sid), catalog, config.prompt, decoding, source=source)
    deploy(bundle_uri, manifest_out, name="gr2", namespace=namespace, apply_to_cluster=apply_to_cluster)
