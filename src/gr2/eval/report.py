"""The run report MLOps teams read in the Kubeflow UI to decide whether a retrained re-ranker ships.

`render_html` gives one self-contained page (inline CSS, figures as base64 PNG data URIs, no script and
no remote resource, so it renders offline in the UI's sandboxed iframe); `render_markdown` a compact
summary; `write_report` writes both. Every value taken from the results or the manifest passes through
`html.escape` (`esc`) before it reaches the page: example traces are model output and may hold markup.
"""

from __future__ import annotations

import base64
import html
import itertools
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from gr2.eval import plots
from gr2.eval.plots import is_number
from gr2.storage.atomic import write_bytes_atomic, write_text_atomic

SIGNIFICANCE = 0.05
CEILING_ROWS = frozenset({"oracle"})  # best by construction: never the bold "best" of a column
KIND_TITLES = {"baseline": "Baselines", "teacher": "Teacher", "model": "Models"}
MISSING = "—"


@dataclass(frozen=True)
class Cell:
    text: str
    detail: str = ""
    bold: bool = False
    tone: str = ""  # "better" or "worse": a significant difference to the incoming order


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def format_number(value: object, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if is_number(value) else MISSING


def format_p_value(p: float) -> str:
    return "p<0.0001" if p < 0.0001 else f"p={p:.4f}"


def format_value(value: object) -> str:
    """A manifest or stage value: floats to 4 decimals, everything else as written."""
    if isinstance(value, float):
        return format_number(value)
    return str(value)


@dataclass(frozen=True)
class MetricColumn:
    """One number per row, read from `row[source][metric]`; the best over the competing rows is bold."""

    metric: str
    header: str
    better: Callable[[Iterable[float]], float] | None = max
    generated_only: bool = False  # validity rates: baselines are valid by construction, only outputs compete
    interval: bool = False
    source: str = "metrics"
    digits: int = 4

    def value(self, row: Mapping) -> object:
        return row.get(self.source, {}).get(self.metric)

    def competes(self, key: str, row: Mapping) -> bool:
        return key not in CEILING_ROWS and not (self.generated_only and row.get("kind") == "baseline")

    def best(self, rows: Mapping[str, Mapping]) -> float | None:
        competing = [self.value(row) for key, row in rows.items() if self.competes(key, row)]
        competing = [value for value in competing if is_number(value)]
        return self.better(competing) if self.better and competing else None

    def cells(self, rows: Mapping[str, Mapping]) -> dict[str, Cell]:
        best = self.best(rows)
        return {
            key: self.cell(row, best is not None and self.competes(key, row) and self.value(row) == best)
            for key, row in rows.items()
        }

    def cell(self, row: Mapping, bold: bool) -> Cell:
        interval = row.get("ci95", {}).get(self.metric) if self.interval else None
        detail = f"[{format_number(interval[0])}, {format_number(interval[1])}]" if interval else ""
        return Cell(format_number(self.value(row), self.digits), detail, bold)


@dataclass(frozen=True)
class DeltaColumn:
    """A row's difference to the incoming order and the paired test's p-value; * marks p < 0.05."""

    metric: str
    header: str

    def cells(self, rows: Mapping[str, Mapping]) -> dict[str, Cell]:
        return {key: self.cell(row) for key, row in rows.items()}

    def cell(self, row: Mapping) -> Cell:
        test = row.get("vs_prerank", {}).get(self.metric)
        if not test or not is_number(test.get("diff")):
            return Cell(MISSING)
        diff, p = test["diff"], test.get("p_value")
        if not is_number(p):
            return Cell(f"{diff:+.4f}")
        significant = p < SIGNIFICANCE
        tone = ("better" if diff > 0 else "worse") if significant and diff != 0 else ""
        return Cell(f"{diff:+.4f}{'*' if significant else ''}", format_p_value(p), tone=tone)


Column = MetricColumn | DeltaColumn

RESULT_COLUMNS: tuple[Column, ...] = (
    MetricColumn("recall@1", "R@1"),
    MetricColumn("recall@3", "R@3"),
    MetricColumn("recall@5", "R@5", interval=True),
    MetricColumn("ndcg@3", "NDCG@3"),
    MetricColumn("ndcg@5", "NDCG@5", interval=True),
    MetricColumn("mrr", "MRR"),
    DeltaColumn("recall@5", "ΔR@5"),
    DeltaColumn("ndcg@5", "ΔNDCG@5"),
    MetricColumn("invalid_rate", "invalid", min, generated_only=True),
    MetricColumn("fallback_rate", "fallback", min, generated_only=True),
    MetricColumn("order_copy_rate", "order copy", min, generated_only=True),
    MetricColumn("kendall_tau", "Kendall τ", better=None),
)
SUMMARY_COLUMNS: tuple[Column, ...] = (
    MetricColumn("recall@1", "R@1"),
    MetricColumn("recall@5", "R@5 [95% CI]", interval=True),
    MetricColumn("ndcg@5", "NDCG@5 [95% CI]", interval=True),
    MetricColumn("mrr", "MRR"),
    DeltaColumn("recall@5", "ΔR@5 (p)"),
    DeltaColumn("ndcg@5", "ΔNDCG@5 (p)"),
    MetricColumn("invalid_rate", "invalid", min, generated_only=True),
    MetricColumn("order_copy_rate", "order copy", min, generated_only=True),
)
AUC_COLUMN = MetricColumn("auc", "AUC")
POSITION_BIAS_COLUMNS = (
    MetricColumn("ndcg@5_shuffled", "NDCG@5 shuffled", None, source="position_bias"),
    MetricColumn("ndcg@5_delta", "ΔNDCG@5", None, source="position_bias"),
    MetricColumn("recall@1_shuffled", "R@1 shuffled", None, source="position_bias"),
    MetricColumn("recall@1_delta", "ΔR@1", None, source="position_bias"),
)
COST_COLUMNS = (
    MetricColumn("mean_trace_tokens", "mean trace tokens", None, digits=1),
    MetricColumn("mean_completion_tokens", "mean completion tokens", None, digits=1),
    MetricColumn("tokens_per_second", "tokens / s", None, digits=1),
    MetricColumn("examples_per_second", "examples / s", None, digits=2),
)

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2328; margin: 0;
       background: #fff; }
main { max-width: 1360px; margin: 0 auto; padding: 20px 24px 40px; }
h1 { font-size: 22px; margin: 0 0 2px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
.subtitle { color: #59636e; margin: 0 0 16px; }
.gate { border-left: 6px solid; border-radius: 6px; padding: 12px 16px; margin: 8px 0 8px; }
.gate h2 { border: 0; margin: 0 0 4px; padding: 0; font-size: 18px; }
.gate p { margin: 2px 0; }
.gate.pass { background: #e7f5ea; border-color: #1a7f37; }
.gate.pass h2 { color: #116329; }
.gate.fail { background: #fdecec; border-color: #cf222e; }
.gate.fail h2 { color: #a40e26; }
.gate .rule { color: #59636e; font-size: 13px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 8px; border-bottom: 1px solid #e5e7eb; vertical-align: top; }
thead th { background: #f0f2f4; text-align: right; border-bottom: 2px solid #8c959f; white-space: nowrap; }
thead th:first-child { text-align: left; }
td { text-align: right; white-space: nowrap; }
th.row { text-align: left; font-weight: normal; white-space: nowrap; }
th.row .key { color: #6e7781; font-size: 12px; }
tr.group th { text-align: left; background: #fff; color: #59636e; font-size: 12px; text-transform: uppercase;
              letter-spacing: .04em; padding-top: 10px; border-bottom: 1px solid #8c959f; }
tbody.baseline td, tbody.baseline th.row { background: #f6f7f8; color: #424a53; }
tr.candidate th.row, tr.candidate td { background: #eaf2ff; }
tr.candidate th.row { box-shadow: inset 4px 0 0 #2b6cb0; }
.badge { display: inline-block; font-size: 11px; padding: 0 6px; border-radius: 8px; background: #2b6cb0;
         color: #fff; margin-left: 4px; }
.detail { display: block; font-size: 11px; color: #6e7781; }
tbody td.better { color: #116329; }
tbody td.worse { color: #a40e26; }
td.better .detail, td.worse .detail { color: inherit; }
.legend { color: #59636e; font-size: 12px; margin: 6px 0 0; max-width: 1100px; }
figure { margin: 12px 0 20px; }
figure img { max-width: 100%; border: 1px solid #e5e7eb; }
figcaption { color: #59636e; font-size: 12px; max-width: 1100px; }
details { margin: 8px 0; }
summary { cursor: pointer; font-weight: 600; }
.trace { border: 1px solid #d0d7de; border-radius: 6px; padding: 10px 14px; margin: 10px 0; }
.trace .lists { display: grid; grid-template-columns: repeat(3, 1fr); gap: 16px; }
.trace ol { margin: 4px 0; padding-left: 26px; max-height: 260px; overflow: auto; }
.trace h4 { margin: 4px 0 0; font-size: 13px; }
.trace li.target { font-weight: 700; color: #116329; }
.explanation { white-space: pre-wrap; background: #f6f8fa; padding: 8px 10px; border-radius: 4px; margin: 6px 0 0;
               max-height: 260px; overflow: auto; }
details > table.kv { margin: 4px 0 4px 16px; }
table.kv table.kv th, table.kv table.kv td { border-bottom: 0; padding: 1px 8px; }
table.kv th { text-align: left; font-weight: 600; color: #424a53; white-space: nowrap; }
table.kv td { text-align: left; white-space: normal; word-break: break-all; }
"""


def row_label(rows: Mapping[str, Mapping], key: str) -> str:
    return rows.get(key, {}).get("label", key)


def filled(rows: Mapping[str, Mapping], columns: Iterable[MetricColumn]) -> tuple[dict, list[MetricColumn]]:
    """The rows with a number in at least one of `columns`, and the columns with a number in one of those rows."""
    columns = list(columns)
    rows = {key: row for key, row in rows.items() if any(is_number(column.value(row)) for column in columns)}
    return rows, [column for column in columns if any(is_number(column.value(row)) for row in rows.values())]


# ---- HTML ----------------------------------------------------------------------------------------------------


def html_cell(cell: Cell) -> str:
    text = f"<b>{esc(cell.text)}</b>" if cell.bold else esc(cell.text)
    detail = f'<span class="detail">{esc(cell.detail)}</span>' if cell.detail else ""
    tone = f' class="{cell.tone}"' if cell.tone else ""
    return f"<td{tone}>{text}{detail}</td>"


def html_row_header(key: str, row: Mapping, candidate: str | None) -> str:
    badge = '<span class="badge">gate candidate</span>' if key == candidate else ""
    return f'<th class="row">{esc(row.get("label", key))} <span class="key">{esc(key)}</span>{badge}</th>'


def html_table(rows: Mapping[str, Mapping], columns: Iterable[Column], candidate: str | None = None) -> str:
    """A table with one row per result row, grouped by kind (baselines shaded) in the results' order."""
    columns = tuple(columns)
    cells = [column.cells(rows) for column in columns]
    head = "<tr><th></th>" + "".join(f"<th>{esc(column.header)}</th>" for column in columns) + "</tr>"
    bodies = []
    for kind, group in itertools.groupby(rows.items(), key=lambda item: item[1].get("kind", "model")):
        lines = [f'<tr class="group"><th colspan="{len(columns) + 1}">{esc(KIND_TITLES.get(kind, kind))}</th></tr>']
        for key, row in group:
            css = ' class="candidate"' if key == candidate else ""
            body = "".join(html_cell(column_cells[key]) for column_cells in cells)
            lines.append(f"<tr{css}>{html_row_header(key, row, candidate)}{body}</tr>")
        bodies.append(f'<tbody class="{esc(kind)}">{"".join(lines)}</tbody>')
    return f'<div class="scroll"><table><thead>{head}</thead>{"".join(bodies)}</table></div>'


def html_gate(gate: Mapping, rows: Mapping[str, Mapping]) -> str:
    passed = bool(gate.get("passed"))
    candidate = row_label(rows, gate["candidate"]) if gate.get("candidate") else None
    if passed:
        verdict = f"Gate passed: {candidate} may be deployed"
    else:
        verdict = f"Gate failed: do not deploy {candidate}" if candidate else "Gate failed: no model to deploy"
    rule = " · ".join(f"{key} {format_value(value)}" for key, value in gate.get("rule", {}).items())
    return (
        f'<section class="gate {"pass" if passed else "fail"}"><h2>{esc(verdict)}</h2>'
        f'<p>{esc(gate.get("reason", ""))}</p><p class="rule">rule: {esc(rule)}</p></section>'
    )


def report_figures(results: Mapping) -> list[tuple[str, str, bytes]]:
    """(title, caption, PNG) of every figure the results hold data for."""
    rows = results["rows"]
    labels = {key: row.get("label", key) for key, row in rows.items()}
    figures = [
        (
            "Recall@5 and NDCG@5",
            "Point estimate and 95% interval per row; the dashed line is the incoming order. "
            "Grey: baselines, orange: teacher, blue: models.",
            plots.metric_intervals_png(rows),
        ),
        (
            "Where the target lands",
            "Examples per position of the held-out item after re-ranking; the black outline "
            "is the incoming order. Mass moving to position 1 is the improvement.",
            plots.hit_positions_png(rows),
        ),
        (
            "Training curves",
            "Per optimiser step. The order-copy rate is the reward hack the conditional reward "
            "prevents: it should stay low for the conditional run.",
            plots.training_curves_png(results.get("curves", {}), labels),
        ),
        (
            "Semantic-ID tokenizer",
            "Share of each level's codes in use and the perplexity of their usage.",
            plots.sid_levels_png(results.get("sid", {})),
        ),
    ]
    return [(title, caption, png) for title, caption, png in figures if png is not None]


def html_figure(title: str, caption: str, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{esc(title)}">'
        f"<figcaption><b>{esc(title)}.</b> {esc(caption)}</figcaption></figure>"
    )


def html_item_list(items: Iterable[str], target: str) -> str:
    entries = "".join(
        f'<li class="target">{esc(item)}</li>' if item == target else f"<li>{esc(item)}</li>" for item in items
    )
    return f"<ol>{entries}</ol>"


def target_positions(example: Mapping) -> str:
    """Where the target stood in the incoming order and where the re-ranking put it."""

    def position(items: list) -> str:
        return str(items.index(example["target"]) + 1) if example["target"] in items else "absent"

    return f"target position {position(example['candidates'])} incoming, {position(example['ranking'])} re-ranked"


def html_example(example: Mapping) -> str:
    target = example["target"]
    lists = "".join(
        f"<div><h4>{title}</h4>{html_item_list(example.get(field, []), target)}</div>"
        for title, field in (
            ("History (oldest first)", "history"),
            ("Candidates (incoming order)", "candidates"),
            ("Re-ranked", "ranking"),
        )
    )
    return (
        f'<div class="trace"><p><b>user</b> {esc(example.get("user_id", ""))} · <b>target</b> {esc(target)} · '
        f'{esc(target_positions(example))}</p><div class="lists">{lists}</div>'
        f'<h4>Explanation</h4><p class="explanation">{esc(example.get("explanation") or "")}</p></div>'
    )


def html_examples(rows: Mapping[str, Mapping], candidate: str | None) -> str:
    """One collapsible block per row with example traces; the gate candidate's is open."""
    blocks = []
    for key, row in rows.items():
        examples = row.get("examples") or []
        if examples:
            opened = " open" if key == candidate else ""
            blocks.append(
                f"<details{opened}><summary>{esc(row.get('label', key))}: {len(examples)} example "
                f"trace{'s' if len(examples) > 1 else ''}</summary>"
                f"{''.join(html_example(example) for example in examples)}</details>"
            )
    return "".join(blocks)


def html_value(value: object) -> str:
    """Any JSON value as nested key/value tables (manifest, stage metrics), every leaf escaped."""
    if isinstance(value, Mapping):
        if not value:
            return MISSING
        lines = "".join(f"<tr><th>{esc(key)}</th><td>{html_value(item)}</td></tr>" for key, item in value.items())
        return f'<table class="kv">{lines}</table>'
    if isinstance(value, (list, tuple)):
        if not value:
            return MISSING
        return "<ol>" + "".join(f"<li>{html_value(item)}</li>" for item in value) + "</ol>"
    return esc(format_value(value))


def html_collapsible(title: str, value: object) -> str:
    return f"<details><summary>{esc(title)}</summary>{html_value(value)}</details>"


def html_secondary_table(
    title: str, legend: str, rows: Mapping[str, Mapping], columns: Iterable[MetricColumn], candidate: str | None
) -> str:
    """A table of the rows and columns that hold numbers; empty when none does."""
    rows, columns = filled(rows, columns)
    if not rows:
        return ""
    return f'<h2>{esc(title)}</h2>{html_table(rows, columns, candidate)}<p class="legend">{esc(legend)}</p>'


def run_title(results: Mapping) -> str:
    return f"GR2 run report: {results.get('dataset', '?')}, preset {results.get('preset', '?')}"


def run_subtitle(results: Mapping) -> str:
    return f"{results.get('examples', '?')} test examples · seed {results.get('seed', '?')}"


RESULTS_LEGEND = (
    "Bold: best per column (the oracle, a ceiling, excluded; invalid, fallback and order-copy rates compared among "
    "generated rankings only). R@5 and NDCG@5 carry their 95% interval. Δ: difference to the incoming order "
    f"(prerank) with the paired test's p-value; * p < {SIGNIFICANCE}."
)
SLATE_LEGEND = (
    "Slates (several graded positives per example): R@k is the share of all positives in the top k, NDCG@k is "
    "graded (gain 2^grade - 1), MRR is the first positive's, AUC the share of (positive, negative) pairs in order."
)
TONE_LEGEND = "Green: significantly better, red: significantly worse."


def on_slates(rows: Mapping[str, Mapping]) -> bool:
    """Whether the rows were scored on slates: only slate metrics have an AUC."""
    return any(is_number(AUC_COLUMN.value(row)) for row in rows.values())


def with_slate_columns(rows: Mapping[str, Mapping], columns: tuple[Column, ...]) -> tuple[Column, ...]:
    """On slates, `columns` with the AUC after MRR; a single-target report is unchanged."""
    if not on_slates(rows):
        return columns
    after = next(index for index, column in enumerate(columns) if column.metric == "mrr") + 1
    return (*columns[:after], AUC_COLUMN, *columns[after:])


def results_legend(rows: Mapping[str, Mapping]) -> str:
    return f"{RESULTS_LEGEND} {SLATE_LEGEND}" if on_slates(rows) else RESULTS_LEGEND


def render_html(results: Mapping, manifest: Mapping) -> str:
    """The self-contained report page."""
    rows = results["rows"]
    gate = results["gate"]
    candidate = gate.get("candidate")
    sections = [
        f'<h1>{esc(run_title(results))}</h1><p class="subtitle">{esc(run_subtitle(results))}</p>',
        html_gate(gate, rows),
        "<h2>Results on the test examples</h2>",
        html_table(rows, with_slate_columns(rows, RESULT_COLUMNS), candidate),
        f'<p class="legend">{esc(results_legend(rows))} {esc(TONE_LEGEND)}</p>',
        "<h2>Figures</h2>",
        "".join(html_figure(*figure) for figure in report_figures(results)),
        html_secondary_table(
            "Position bias",
            "The same examples with the candidates shown in a shuffled order; "
            "Δ is the change from the incoming order. A large drop means the model leans on the "
            "position it is given rather than on the items.",
            rows,
            POSITION_BIAS_COLUMNS,
            candidate,
        ),
        html_secondary_table(
            "Generation cost",
            "Reasoning-trace length and generation throughput of each generated ranking.",
            rows,
            COST_COLUMNS,
            candidate,
        ),
    ]
    examples = html_examples(rows, candidate)
    if examples:
        sections += ["<h2>Example traces</h2>", examples]
    sections += [
        "<h2>Provenance</h2>",
        html_collapsible("Stage metrics", results.get("stages", {})),
        html_collapsible("Manifest: hashes, commit, package versions, timings, upstream artifacts", manifest),
    ]
    body = "\n".join(section for section in sections if section)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(run_title(results))}</title><style>{CSS}</style></head>\n"
        f"<body><main>\n{body}\n</main></body></html>\n"
    )


# ---- Markdown ------------------------------------------------------------------------------------------------


def md_text(value: object) -> str:
    """One line of text that cannot break a Markdown table (`|`) or open an HTML tag (`<`) in the viewer."""
    return " ".join(str(value).split()).replace("<", "&lt;").replace("|", "\\|")


def md_cell(cell: Cell) -> str:
    text = f"**{cell.text}**" if cell.bold else cell.text
    return md_text(f"{text} {cell.detail}" if cell.detail else text)


def md_table(rows: Mapping[str, Mapping], columns: Iterable[Column]) -> str:
    columns = tuple(columns)
    cells = [column.cells(rows) for column in columns]
    lines = [
        "| row | kind | " + " | ".join(md_text(column.header) for column in columns) + " |",
        "| --- | --- | " + " | ".join("---:" for _ in columns) + " |",
    ]
    lines += [
        f"| {md_text(row.get('label', key))} | {md_text(row.get('kind', ''))} | "
        + " | ".join(md_cell(column_cells[key]) for column_cells in cells)
        + " |"
        for key, row in rows.items()
    ]
    return "\n".join(lines)


def render_markdown(results: Mapping) -> str:
    """A compact summary: the gate decision and the main metrics table."""
    rows = results["rows"]
    gate = results["gate"]
    verdict = "PASSED" if gate.get("passed") else "FAILED"
    return (
        f"# {md_text(run_title(results))}\n\n{md_text(run_subtitle(results))}\n\n"
        f"**Deployment gate {verdict}** (candidate: {md_text(row_label(rows, gate.get('candidate') or 'none'))}): "
        f"{md_text(gate.get('reason', ''))}\n\n{md_table(rows, with_slate_columns(rows, SUMMARY_COLUMNS))}\n\n"
        f"{md_text(results_legend(rows))}\n"
    )


def read_results(path: str | Path) -> dict:
    """An evaluate stage's results.json, its rows back in evaluation order (baselines, teacher, models)."""
    results = json.loads(Path(path).read_text())
    order = results.get("row_order", [])
    results["rows"] = {key: results["rows"][key] for key in order} | results["rows"]
    return results


def write_figures(results: Mapping, folder: str | Path) -> list[Path]:
    """Each report figure as its own PNG in `folder` (for docs and slides), named after its title."""
    paths = []
    for title, _, png in report_figures(results):
        path = Path(folder) / (re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") + ".png")
        write_bytes_atomic(path, png)
        paths.append(path)
    return paths


def write_report(results: Mapping, manifest: Mapping, out_dir: str | Path) -> dict[str, Path]:
    """Write report.html and report.md into `out_dir` atomically; returns their paths by format."""
    out_dir = Path(out_dir)
    paths = {"html": out_dir / "report.html", "markdown": out_dir / "report.md"}
    write_text_atomic(paths["html"], render_html(results, manifest))
    write_text_atomic(paths["markdown"], render_markdown(results))
    return paths
