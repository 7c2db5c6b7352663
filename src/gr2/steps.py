"""One function per pipeline stage: what a KFP component body calls.

Each takes the run configuration as JSON, input artifact paths and output artifact paths (as plain
strings, so no kfp import is needed here) and a `log_metric(name, value)` callback (KFP's
`Metrics.log_metric`), and calls the stage's library function.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from gr2.config import config_from_json

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
    metrics = run_prerank(Path(dataset), config.prerank, config.data, config.seed, Path(examples_out), Path(model_out))
    log_all(metrics, log_metric)
