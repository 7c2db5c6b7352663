from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components.image import GPU_IMAGE


@dsl.component(base_image=GPU_IMAGE, install_kfp_package=False)
def evaluate(
    config_json: str,
    image: str,
    dataset: Input[Dataset],
    examples: Input[Dataset],
    semantic_ids: Input[Artifact],
    sid_metrics: Input[Metrics],
    results: Output[Artifact],
    report: Output[HTML],
    summary: Output[Markdown],
    manifest: Output[Artifact],
    metrics: Output[Metrics],
    midtrain_model: Input[Model] | None = None,
    sft_model: Input[Model] | None = None,
    opd_model: Input[Model] | None = None,
    dapo_model: Input[Model] | None = None,
    dapo_naive_model: Input[Model] | None = None,
    direct_sft_model: Input[Model] | None = None,
    direct_dapo_model: Input[Model] | None = None,
    direct_dapo_naive_model: Input[Model] | None = None,
    midtrain_metrics: Input[Metrics] | None = None,
    sft_metrics: Input[Metrics] | None = None,
    opd_metrics: Input[Metrics] | None = None,
    dapo_metrics: Input[Metrics] | None = None,
    dapo_naive_metrics: Input[Metrics] | None = None,
    direct_sft_metrics: Input[Metrics] | None = None,
    direct_dapo_metrics: Input[Metrics] | None = None,
    direct_dapo_naive_metrics: Input[Metrics] | None = None,
) -> bool:
    """Judge every row on the test examples, decide the deployment gate, write the report and manifest."""
    from gr2.steps import evaluate_step

    models = {
        "midtrain": midtrain_model,
        "sft": sft_model,
        "opd": opd_model,
        "dapo": dapo_model,
        "dapo_naive": dapo_naive_model,
        "direct_sft": direct_sft_model,
        "direct_dapo": direct_dapo_model,
        "direct_dapo_naive": direct_dapo_naive_model,
    }
    stage_metrics = {
        "sid": sid_metrics,
        "midtrain": midtrain_metrics,
        "sft": sft_metrics,
        "opd": opd_metrics,
        "dapo": dapo_metrics,
        "dapo_naive": dapo_naive_metrics,
        "direct_sft": direct_sft_metrics,
        "direct_dapo": direct_dapo_metrics,
        "direct_dapo_naive": direct_dapo_naive_metrics,
    }
    inputs = {"dataset": dataset, "examples": examples, "semantic_ids": semantic_ids, **models}
    return evaluate_step(
        config_json,
        dataset.path,
        examples.path,
        semantic_ids.path,
        {name: model.path if model else None for name, model in models.items()},
        {name: dict(m.metadata) for name, m in stage_metrics.items() if m},
        {name: artifact.uri for name, artifact in inputs.items() if artifact},
        image,
        results.path,
        report.path,
        summary.path,
        manifest.path,
        metrics.log_metric,
    )
