"""The evaluation report's figures: one pure function per figure, each returning PNG bytes or None.

Figures are built on `matplotlib.figure.Figure` directly, never through pyplot, so nothing registers in
pyplot's global figure list or touches rcParams: each call leaves no state behind. None means the
results hold no data for that figure.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence

from matplotlib.figure import Figure

KIND_COLOURS = {"baseline": "#8c8c8c", "teacher": "#d98c1f", "model": "#2b6cb0"}
REFERENCE_ROW = "prerank"
DAPO_RUNS = ("dapo", "dapo_naive")
DIRECT_DAPO_RUNS = ("direct_dapo", "direct_dapo_naive")
RUN_COLOURS = {
    "sft": "#7b5ea7",
    "dapo": KIND_COLOURS["model"],
    "dapo_naive": "#d1495b",
    "direct_sft": "#2a9d8f",
    "direct_dapo": "#264653",
    "direct_dapo_naive": "#e9c46a",
}
CURVE_PANELS = (  # (title, metric, curve keys drawn in the panel)
    ("SFT loss", "loss", ("sft",)),
    ("DAPO reward", "reward", DAPO_RUNS),
    ("DAPO valid-output share", "gr2/valid_share", DAPO_RUNS),
    ("DAPO order-copy rate", "gr2/order_copy_rate", DAPO_RUNS),
    ("Direct SFT loss", "loss", ("direct_sft",)),
    ("Direct DAPO reward", "reward_mean", DIRECT_DAPO_RUNS),
    ("Direct DAPO order-copy rate", "order_copy_rate", DIRECT_DAPO_RUNS),
)
INTERVAL_METRICS = (("recall@5", "Recall@5"), ("ndcg@5", "NDCG@5"))
PANEL_COLUMNS = 4


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # No "Software" stamp: identical inputs give identical bytes.
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def kind_colour(row: Mapping) -> str:
    return KIND_COLOURS.get(row.get("kind", "model"), KIND_COLOURS["model"])


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def hit_positions_png(rows: Mapping[str, Mapping]) -> bytes | None:
    """One panel per row: how many examples have the target at each re-ranked position, with the incoming
    order's histogram outlined in every panel so a shift towards position 1 is visible at a glance."""
    histograms = {key: row["hit_positions"] for key, row in rows.items() if row.get("hit_positions")}
    if not histograms:
        return None
    reference = histograms.get(REFERENCE_ROW)
    panel_rows = math.ceil(len(histograms) / PANEL_COLUMNS)
    columns = min(len(histograms), PANEL_COLUMNS)
    figure = Figure(figsize=(3.2 * columns, 2.4 * panel_rows), layout="constrained")
    axes = figure.subplots(panel_rows, columns, sharex=True, sharey=True, squeeze=False).ravel()
    for axis, (key, counts) in zip(axes, histograms.items(), strict=False):
        positions = range(1, len(counts) + 1)
        axis.bar(positions, counts, color=kind_colour(rows[key]), width=0.8)
        if reference is not None and key != REFERENCE_ROW:
            edges = [position - 0.5 for position in range(1, len(reference) + 2)]
            axis.stairs(reference, edges, baseline=None, color="black", linewidth=1.2)
        axis.set_title(rows[key].get("label", key), fontsize=9)
        axis.set_xticks(list(positions))
        axis.tick_params(labelsize=8)
    for axis in axes[len(histograms) :]:
        axis.set_visible(False)
    figure.supxlabel("position of the target after re-ranking", fontsize=9)
    figure.supylabel("examples", fontsize=9)
    return png_bytes(figure)


def metric_intervals_png(rows: Mapping[str, Mapping]) -> bytes | None:
    """Recall@5 and NDCG@5 per row with their 95% intervals; the dashed line is the incoming order."""
    keys = [key for key, row in rows.items() if any(is_number(row["metrics"].get(m)) for m, _ in INTERVAL_METRICS)]
    if not keys:
        return None
    figure = Figure(figsize=(11, 0.42 * len(keys) + 1.2), layout="constrained")
    axes = figure.subplots(1, len(INTERVAL_METRICS), sharey=True)
    labels = [rows[key].get("label", key) for key in keys]
    for axis, (metric, title) in zip(axes, INTERVAL_METRICS, strict=True):
        for y, key in enumerate(keys):
            value = rows[key]["metrics"].get(metric)
            if not is_number(value):
                continue
            low, high = rows[key].get("ci95", {}).get(metric, (value, value))
            axis.errorbar(
                value,
                y,
                xerr=[[value - low], [high - value]],
                fmt="o",
                color=kind_colour(rows[key]),
                capsize=3,
                markersize=6,
            )
        reference = rows.get(REFERENCE_ROW, {}).get("metrics", {}).get(metric)
        if is_number(reference):
            axis.axvline(reference, color="black", linestyle="--", linewidth=1)
        axis.set_title(f"{title} (95% interval)", fontsize=10)
        axis.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(keys)), labels, fontsize=9)
    axes[0].invert_yaxis()  # first row on top; the y axis is shared, so once for both panels
    return png_bytes(figure)


def curve_series(curves: Mapping[str, Sequence[Mapping]], metric: str, runs: Sequence[str]) -> dict[str, tuple]:
    """(steps, values) of `metric` for each run in `runs` that logged it."""
    series = {}
    for run in runs:
        points = [(point["step"], point[metric]) for point in curves.get(run) or () if is_number(point.get(metric))]
        if points:
            series[run] = tuple(zip(*points, strict=True))
    return series


def training_curves_png(curves: Mapping[str, Sequence[Mapping]], labels: Mapping[str, str]) -> bytes | None:
    """SFT loss and the DAPO reward, valid share and order-copy rate per step; the conditional and the naive
    reward runs share each DAPO panel. `labels` names each run (curve key -> row label); one legend below all
    panels, each run in one colour throughout."""
    panels = [(title, curve_series(curves, metric, runs)) for title, metric, runs in CURVE_PANELS]
    panels = [(title, series) for title, series in panels if series]
    if not panels:
        return None
    figure = Figure(figsize=(3.3 * len(panels), 2.8), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False).ravel()
    legend = {}
    for axis, (title, series) in zip(axes, panels, strict=True):
        for run, (steps, values) in series.items():
            (legend[run],) = axis.plot(
                steps,
                values,
                color=RUN_COLOURS.get(run),
                linewidth=1.3,
                markersize=3,
                marker="o" if len(steps) <= 30 else None,
            )
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("step", fontsize=9)
        axis.tick_params(labelsize=8)
        axis.grid(alpha=0.3)
    figure.legend(
        list(legend.values()),
        [labels.get(run, run) for run in legend],
        loc="outside lower center",
        ncols=len(legend),
        fontsize=9,
        frameon=False,
    )
    return png_bytes(figure)


def level_values(sid: Mapping[str, float], prefix: str) -> list[float]:
    """`prefix_level_0`, `prefix_level_1`, ... in level order, up to the first missing level."""
    values = []
    while is_number(sid.get(f"{prefix}_level_{len(values)}")):
        values.append(sid[f"{prefix}_level_{len(values)}"])
    return values


def sid_levels_png(sid: Mapping[str, float]) -> bytes | None:
    """Codebook utilisation and perplexity per residual level of the semantic-ID tokenizer."""
    panels = [
        (title, level_values(sid, prefix))
        for title, prefix in (("codebook utilisation", "utilisation"), ("codebook perplexity", "perplexity"))
    ]
    panels = [(title, values) for title, values in panels if values]
    if not panels:
        return None
    figure = Figure(figsize=(4 * len(panels), 2.8), layout="constrained")
    axes = figure.subplots(1, len(panels), squeeze=False).ravel()
    for axis, (title, values) in zip(axes, panels, strict=True):
        axis.bar(range(len(values)), values, color=KIND_COLOURS["model"])
        axis.set_xticks(range(len(values)), [f"level {level}" for level in range(len(values))])
        axis.set_title(title, fontsize=10)
        axis.tick_params(labelsize=8)
        axis.grid(axis="y", alpha=0.3)
    if is_number(sid.get("uniqueness")):
        figure.suptitle(f"semantic-ID uniqueness {sid['uniqueness']:.4f}", fontsize=10)
    return png_bytes(figure)
