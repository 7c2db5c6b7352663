"""The `gr2` command line.

The library never imports kfp; the commands that run or compile the pipeline import `pipelines`
lazily, so `gr2 datasets` and friends work without it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from gr2.config import ConfigError, load_preset
from gr2.data.errors import DatasetError

console = Console(stderr=True)


def preset_with_data(args: argparse.Namespace, workspace: Path):
    overrides = [f"workspace={workspace}", *(args.set or [])]
    if args.data:
        overrides.append(f"data.dataset={Path(args.data).resolve()}")
    return load_preset(args.preset, overrides)


def print_metrics(metrics: dict[str, float], title: str) -> None:
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, f"{value:.4f}" if isinstance(value, float) and not value.is_integer() else f"{value:g}")
    console.print(table)


def check_data_argument(args: argparse.Namespace, config) -> None:
    """`--data DIR` is read and validated as the data stage reads it, before the pipeline starts."""
    from gr2.data.stage import load_dataset
    from pipelines.progress import StageFailed

    if args.data:
        try:
            load_dataset(config.data.dataset, config.data)
        except DatasetError as error:
            raise StageFailed("data", str(error)) from None


def command_run(args: argparse.Namespace) -> int:
    from pipelines.local import run_locally
    from pipelines.progress import StageFailed

    out_dir = Path(args.out or f"runs/{Path(args.preset).stem}").resolve()
    config = preset_with_data(args, out_dir / "workspace")
    console.print(f"[bold]gr2 run[/bold] preset={config.name} dataset={config.data.dataset} out={out_dir}")
    try:
        check_data_argument(args, config)
        run_dir, metrics = run_locally(config, out_dir, args.until, verbose=args.verbose, runner=args.runner)
    except StageFailed as failure:
        console.print(str(failure), style="bold red", markup=False, highlight=False, soft_wrap=True)
        return 1
    print_run_summary(run_dir, metrics, out_dir)
    return 0


def print_run_summary(run_dir: Path, metrics: dict[str, float], out_dir: Path) -> None:
    """The results table and the gate's verdict (or, for a run stopped before evaluate, the stages' metrics),
    then where everything is."""
    from gr2.eval.report import read_results
    from gr2.eval.summary import gate_verdict, results_path, results_table

    results = results_path(run_dir)
    if results:
        evaluation = read_results(results)
        console.print(results_table(evaluation))
        console.print(gate_verdict(evaluation), markup=False, highlight=False, soft_wrap=True)
    else:
        print_metrics(metrics, f"{out_dir.name}: stage metrics")
    console.print(f"metrics:   {out_dir / 'metrics.json'} (every stage's numbers)", soft_wrap=True)
    published = {"config": out_dir / "config.json", "results": results, "report": out_dir / "report.html"}
    for name, path in (published | {"log": out_dir / "run.log"}).items():
        if path and path.exists():
            console.print(f"{name + ':':<10} {path}", soft_wrap=True)
    console.print(f"artifacts: {run_dir}", soft_wrap=True)
    if (out_dir / "bundle").exists():
        print_serving_hint(out_dir)


def print_serving_hint(out_dir: Path) -> None:
    request = out_dir / "example_request.json"
    console.print(f"serve the model:  gr2 serve --model {out_dir} --port 8080")
    print(f"curl -s -H 'Content-Type: application/json' -d @{request} http://127.0.0.1:8080/v1/models/gr2:predict")


def command_compile(args: argparse.Namespace) -> int:
    from pipelines.gr2_pipeline import compile_pipeline
    from pipelines.placement import cluster_config

    config = cluster_config(load_preset(args.preset, args.set or []))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    compile_pipeline(config, args.output, args.until)
    console.print(f"compiled preset {config.name} -> {args.output}")
    return 0


def command_submit(args: argparse.Namespace) -> int:
    from pipelines.placement import cluster_config
    from pipelines.submit import parse_params, schedule_run, submit_run

    config = cluster_config(load_preset(args.preset, args.set or []))
    params = parse_params(args.param or [])
    common = {"token": args.token, "experiment": args.experiment, "namespace": args.namespace}
    if args.command == "schedule":
        submission = schedule_run(args.host, config, args.cron, params, **common)
        console.print(f"recurring run {submission.run_id} of {submission.version_name} ({args.cron})")
    else:
        submission = submit_run(args.host, config, params, retrain=args.retrain, **common)
        console.print(f"run {submission.run_id} of pipeline version {submission.version_name}")
    return 0


def add_submit_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="KFP API endpoint (default: in-cluster)")
    parser.add_argument("--preset", required=True)
    parser.add_argument("--param", action="append", metavar="NAME=VALUE", help="pipeline parameter for this run")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")
    parser.add_argument("--token", default=os.environ.get("GR2_KFP_TOKEN"), help="bearer token ($GR2_KFP_TOKEN)")
    parser.add_argument("--experiment", default="gr2")
    parser.add_argument("--namespace")
    parser.set_defaults(handler=command_submit)


def command_sid_ablation(args: argparse.Namespace) -> int:
    from gr2.data.loading import load_interactions
    from gr2.data.registry import resolve_dataset
    from gr2.data.split import LeaveOneOutSplit
    from gr2.sid.ablation import run_ablation

    config = load_preset(args.preset, args.set or [])
    data = load_interactions(resolve_dataset(args.data))
    train = [seq for seq in LeaveOneOutSplit(data.sequences, config.data.max_history).train_sequences().values() if seq]
    out = Path(args.out)
    rows = run_ablation(data.items, train, config.sid, out, Path(config.cache).expanduser() / "embeddings")
    console.print(f"{len(rows)} configurations: {out / 'ablation.md'}")
    return 0


def command_report(args: argparse.Namespace) -> int:
    import json

    from gr2.eval.report import read_results, write_figures, write_report

    out = Path(args.out)
    evaluations = sorted(out.glob("kfp/*/evaluate/results/results.json"), key=lambda p: p.stat().st_mtime)
    if not evaluations:
        raise ValueError(f"{out}: no finished evaluate stage (kfp/*/evaluate/results/results.json)")
    folder = evaluations[-1].parent
    results = read_results(evaluations[-1])
    paths = write_report(results, json.loads((folder / "manifest.json").read_text()), out)
    console.print(f"report: {paths['html']}")
    if args.figures:
        for path in write_figures(results, args.figures):
            console.print(f"figure: {path}")
    return 0


def command_datasets(args: argparse.Namespace) -> int:
    from gr2.data.catalog import dataset_summaries

    table = Table(title="Bundled datasets")
    for column in ("name", "users", "items", "interactions", "mean length", "item text", "cite"):
        table.add_column(column)
    for row in dataset_summaries():
        table.add_row(
            row.name,
            f"{row.users:,}",
            f"{row.items:,}",
            f"{row.interactions:,}",
            f"{row.mean_length:.2f}",
            row.text_fields,
            row.citation,
        )
    Console(width=200).print(table)
    return 0


def serve(argv: list[str]) -> int:
    """`gr2 serve ...`: every argument belongs to the server (gr2.serve.server), so it is not parsed here."""
    from gr2.serve.server import main as serve_main

    return serve_main(argv) or 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gr2", description="GR2 generative reasoning re-ranker on Kubeflow")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the pipeline locally through kfp.local")
    run.add_argument("--preset", default="demo", help="preset name in configs/ or a YAML path")
    run.add_argument("--data", help="dataset folder in the normalised format (overrides the preset's)")
    run.add_argument("--out", help="output folder (default runs/PRESET)")
    run.add_argument("--until", help="last stage to run (default: all)")
    run.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config key")
    run.add_argument("--verbose", action="store_true", help="print kfp's whole output (it is always in OUT/run.log)")
    run.add_argument(
        "--runner",
        choices=("subprocess", "docker"),
        default="subprocess",
        help="run each task in this Python environment, or in its component's image (`make images`)",
    )
    run.set_defaults(handler=command_run)

    compile_ = commands.add_parser("compile", help="compile the pipeline to KFP YAML")
    compile_.add_argument("--preset", default="beauty-gpu")
    compile_.add_argument("-o", "--output", required=True)
    compile_.add_argument("--until", help="last stage to include (default: all)")
    compile_.add_argument("--set", action="append", metavar="KEY=VALUE")
    compile_.set_defaults(handler=command_compile)

    submit = commands.add_parser("submit", help="upload the compiled pipeline and start a run on Kubeflow")
    add_submit_arguments(submit)
    submit.add_argument("--retrain", action="store_true", help="never reuse cached training stages")
    schedule = commands.add_parser("schedule", help="create a recurring retraining run on Kubeflow")
    add_submit_arguments(schedule)
    schedule.add_argument("--cron", required=True, help="six-field cron, seconds first, e.g. '0 0 3 * * 1'")

    commands.add_parser(
        "serve",
        help="serve a trained model on KServe's v1/v2 and OpenAI routes",
        add_help=False,
        description="All arguments go to the server: --model RUN_OR_DIR [--port N] [--name NAME] ...",
    )

    ablation = commands.add_parser("sid-ablation", help="the semantic-ID ablation table (uniqueness, reconstruction)")
    ablation.add_argument("--data", default="amazon-beauty-2014", help="bundled dataset name or folder")
    ablation.add_argument("--out", required=True)
    ablation.add_argument("--preset", default="beauty-cpu", help="preset whose `sid` section is the base config")
    ablation.add_argument("--set", action="append", metavar="KEY=VALUE")
    ablation.set_defaults(handler=command_sid_ablation)

    report = commands.add_parser("report", help="rebuild OUT/report.html from a finished run, without retraining")
    report.add_argument("out", help="the run's output folder (gr2 run --out)")
    report.add_argument("--figures", metavar="DIR", help="also write each figure as a PNG file into DIR")
    report.set_defaults(handler=command_report)

    datasets = commands.add_parser("datasets", help="list bundled datasets with their statistics")
    datasets.set_defaults(handler=command_datasets)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        return serve(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ConfigError, DatasetError, ValueError) as error:
        console.print(f"[red]error:[/red] {error}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
