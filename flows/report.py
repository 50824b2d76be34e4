"""RUN/report/report.html: one self-contained page that shows what a run made and why documents were dropped.

`write_report(run_dir)` reads the run directory and writes two files:

- `report/report.html`: the funnel, drops by reason, languages, lengths before and after filtering, the quality
  signals with their thresholds, top keyphrases, dedup clusters, tokenizer bytes per token, pretraining and
  fine-tuning curves. Figures are PNG data URIs drawn with matplotlib (Agg, no pyplot state); the page has no
  script and loads nothing (its Content-Security-Policy forbids both); every value read from the data is
  HTML-escaped, since URLs, titles and texts come from the web.
- `report/stats.json`: the numbers the page shows, for scripts (`NAME.stats.json` beside a page written to
  another `NAME.html`, as `corpusforge inspect RUN --report FILE` does).

Memory is bounded: a histogram reads at most SAMPLE rows of a folder, spread evenly over its shards, and only the
columns it needs (shards are memory-mapped, so unread columns cost nothing). A part that is missing (no model,
dedup off) gets a note instead of a figure, and a part that fails to draw gets a note with the error: the report
never fails the run.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpus.atomic import write_text_atomic
from corpus.shards import count_rows, open_batches, read_keep_mask, read_table

log = logging.getLogger(__name__)

SAMPLE = 100_000  # rows read per folder for histograms
TOP_LANGUAGES = 15
TOP_KEYPHRASES = 30
EXAMPLE_DOCUMENTS = 12
# metrics.json keys shown in the tables of the training sections, in this order
PRETRAIN_KEYS = ("steps", "objective", "preset", "n_params", "device_name", "tokens_seen", "train_tokens", "val_tokens")
PRETRAIN_KEYS += ("initial_val_loss", "final_val_loss", "val_bits_per_byte", "tokens_per_second", "mfu", "seconds")
FINETUNE_KEYS = ("accuracy", "macro_f1", "majority_baseline", "best_epoch", "epochs", "n_train", "n_eval", "labels", "model_type")
FINETUNE_KEYS += ("device", "seconds")
# Stages whose drops remove records from the corpus; later stages only hold rows out for validation.
CORPUS_STAGES = ("ingest", "extract", "annotate", "filter", "dedup", "shard")

KEPT, DROPPED, THRESHOLD, OTHER = "#4C72B0", "#DD8452", "#C44E52", "#8C8C8C"
STAGE_COLORS = {"ingest": "#937860", "extract": "#8172B3", "annotate": "#DA8BC3", "filter": DROPPED, "dedup": "#55A868", "shard": "#CCB974"}

# Signals drawn against their filter thresholds: (signal, FilterConfig switch of its family, threshold keys, log x).
# A key "name.n" reads entry n of a per-n threshold dict (max_top_ngram_char_frac: {2: 0.2, ...}).
SIGNAL_PLOTS = [
    ("n_words", "gopher_quality", ["min_words", "max_words"], True),
    ("mean_word_len", "gopher_quality", ["min_mean_word_len", "max_mean_word_len"], False),
    ("symbol_ratio", "gopher_quality", ["max_symbol_ratio"], False),
    ("alpha_word_frac", "gopher_quality", ["min_alpha_word_frac"], False),
    ("n_stopwords", "gopher_quality", ["min_stopwords"], True),
    ("stopword_frac", None, [], False),
    ("dup_line_frac", "gopher_repetition", ["max_dup_line_frac"], False),
    ("dup_line_char_frac", "gopher_repetition", ["max_dup_line_char_frac"], False),
    ("top_2gram_char_frac", "gopher_repetition", ["max_top_ngram_char_frac.2"], False),
    ("dup_5gram_char_frac", "gopher_repetition", ["max_dup_ngram_char_frac.5"], False),
    ("c4_javascript_line_frac", "c4", ["max_c4_javascript_line_frac"], False),
    ("fineweb_line_punct_frac", "fineweb", ["min_fineweb_line_punct_frac"], False),
    ("fineweb_short_line_frac", "fineweb", ["max_fineweb_short_line_frac"], False),
    ("fineweb_char_dup_frac", "fineweb", ["max_fineweb_char_dup_frac"], False),
    ("fineweb_newline_ratio", "fineweb", ["max_fineweb_newline_ratio"], False),
]


# --- reading the run ------------------------------------------------------------------------------------------


@dataclass
class Sample:
    """At most SAMPLE rows of a folder's shards (every step-th row), with only the columns asked for."""

    table: pa.Table
    rows: int  # rows in the whole folder

    def column(self, name: str) -> pa.ChunkedArray | None:
        return self.table.column(name) if name in self.table.column_names else None

    def signal(self, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """(values as float64, kept mask or None) of one `signals` field, rows where it is null left out."""
        signals = self.column("signals")
        if signals is None or name not in {f.name for f in signals.type}:
            return np.zeros(0), None
        values = pc.struct_field(signals, name).cast(pa.float64())
        present = pc.is_valid(values)
        numbers = pc.filter(values, present).to_numpy()
        kept = self.column("kept")
        return numbers, (pc.filter(kept, present).to_numpy(zero_copy_only=False) if kept is not None else None)


def sample_rows(paths: list[Path], columns: list[str], masks: list[Path] | None = None, limit: int = SAMPLE) -> Sample | None:
    """Every step-th row of the shards (step = rows / limit, rounded up), the columns that exist; with `masks`
    (one keep mask per shard) a `kept` column too."""
    total = sum(count_rows(p) for p in paths)
    step = max(1, math.ceil(total / limit))
    parts, seen = [], 0
    for index, path in enumerate(paths):
        mask = read_keep_mask(masks[index]) if masks else None
        offset = 0
        for batch in open_batches(path):
            rows = pa.array(np.arange((-seen) % step, batch.num_rows, step))
            part = pa.Table.from_batches([batch.select([c for c in columns if c in batch.schema.names])]).take(rows)
            if mask is not None:
                part = part.append_column("kept", mask.slice(offset, batch.num_rows).take(rows))
            parts.append(part)
            seen += batch.num_rows
            offset += batch.num_rows
    if not parts:
        return None
    return Sample(pa.concat_tables(parts, promote_options="default"), total)


def _shards(folder: Path, pattern: str) -> list[Path]:
    return sorted(folder.glob(pattern)) if folder.is_dir() else []


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class RunData:
    """The parts of a run directory the report reads, each loaded once and only when a section asks."""

    def __init__(self, run: Path):
        self.run = run

    @cached_property
    def ledger(self) -> dict:
        return _read_json(self.run / "manifest.json") or {}

    @cached_property
    def config(self) -> dict:
        """The run's resolved config as a dict (config.yaml through flows.config, or raw YAML when it no longer
        validates); {} without one."""
        path = self.run / "config.yaml"
        if not path.is_file():
            return {}
        try:
            from flows.config import load_config

            return load_config(config_file=path, environ={}).model_dump()
        except (ValueError, OSError) as err:  # an older run's config (ConfigError): its thresholds still count
            log.warning("report: %s does not validate (%s); reading it as plain YAML", path, err)
            import yaml

            return yaml.safe_load(path.read_text()) or {}

    @cached_property
    def extracted(self) -> Sample | None:
        parts = _shards(self.run / "extracted", "part-*.arrow")
        masks = [self.run / "filter" / p.name.replace("part-", "keep-", 1) for p in parts]
        return sample_rows(parts, ["lang", "signals"], masks if parts and all(m.is_file() for m in masks) else None)

    @cached_property
    def documents(self) -> Sample | None:
        return sample_rows(_shards(self.run / "documents", "shard-*.arrow"), ["id", "title", "url", "lang", "signals", "keyphrases"])

    def threshold(self, key: str) -> float | None:
        """A filter threshold: "min_words", or "max_top_ngram_char_frac.2" for entry 2 of a per-n dict."""
        name, _, n = key.partition(".")
        value = self.config.get("filter", {}).get(name)
        if n and isinstance(value, dict):
            value = value.get(int(n), value.get(n))
        return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


# --- page parts -----------------------------------------------------------------------------------------------


@dataclass
class Section:
    key: str
    title: str
    caption: str  # one sentence: what the figure or table shows
    summary: str = ""  # what this run's numbers say
    image: str | None = None  # PNG data URI
    tables: list[str] = field(default_factory=list)  # HTML, already escaped
    note: str | None = None  # why the section is empty
    stats: dict = field(default_factory=dict)


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    return str(value)


def table(headers: list[str], rows: list[list]) -> str:
    """An HTML table, every cell escaped; numbers right-aligned, long unbroken strings (URLs) allowed to wrap."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_td(v) for v in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _td(value) -> str:
    text = fmt(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f'<td class="num">{esc(text)}</td>'
    if any(len(word) > 30 for word in text.split()):
        return f'<td class="long">{esc(text)}</td>'
    return f"<td>{esc(text)}</td>"


def figure(nrows: int = 1, ncols: int = 1, width: float = 10.0, height: float = 3.4, layout: str | None = "constrained"):
    """A matplotlib Figure (no pyplot: no global state, no GUI backend) and its axes as a 2-D array."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height * nrows), layout=layout)
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def quantiles(values: np.ndarray) -> dict:
    if not len(values):
        return {}
    q = np.quantile(values, [0.1, 0.5, 0.9])
    return {"n": len(values), "p10": float(q[0]), "p50": float(q[1]), "p90": float(q[2]), "mean": float(values.mean())}


def log_bins(*arrays: np.ndarray, n: int = 40) -> np.ndarray:
    """Log-spaced bins from the smallest value (at least 1) to the largest."""
    present = [a for a in arrays if len(a)]
    low = max(min((a.min() for a in present), default=1.0), 1.0)
    high = max(max((a.max() for a in present), default=10.0), low * 10)
    return np.logspace(math.log10(low), math.log10(high) * 1.0001, n)


def log_x(ax) -> None:
    """A log x axis labelled with plain numbers (1,000 rather than mathtext powers of ten)."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


# --- sections: one function per figure or table ---------------------------------------------------------------


def funnel_section(data: RunData) -> Section:
    section = Section(
        "funnel",
        "Funnel",
        "Records in and out of each stage, in pipeline order: blue went on, orange was dropped (or held out for validation).",
    )
    stages = data.ledger.get("stages") or []
    if not stages:
        section.note = "manifest.json has no ledger yet."
        return section
    names = [s["name"] for s in stages]
    ins = np.array([s.get("in", 0) for s in stages])
    outs = np.array([s.get("out", 0) for s in stages])
    fig, axes = figure(height=0.35 * len(stages) + 1.2)
    ax = axes[0, 0]
    y = np.arange(len(stages))
    ax.barh(y, outs, color=KEPT, label="out")
    ax.barh(y, ins - outs, left=outs, color=DROPPED, label="dropped / held out")
    for i, (n_in, n_out) in enumerate(zip(ins, outs)):
        ax.text(n_in, i, f" {n_out:,} / {n_in:,}", va="center", fontsize=8)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, ins.max() * 1.18 if ins.max() else 1)
    ax.set_xlabel("records")
    ax.legend(loc="lower right", fontsize=8)
    section.image = png(fig)
    rows = [_funnel_row(s) for s in stages]
    section.tables.append(table(["stage", "in", "out", "dropped", "% dropped", "seconds", "reasons"], rows))
    corpus = [s for s in stages if s["name"] in CORPUS_STAGES]
    if corpus:
        first, last = corpus[0].get("in", 0), corpus[-1].get("out", 0)
        where = "reached documents/" if corpus[-1]["name"] == "shard" else f"passed {corpus[-1]['name']}"
        section.summary = f"Of {first:,} records read, {last:,} ({100 * last / first if first else 0:.1f}%) {where}."
    section.stats = {"stages": [{k: s.get(k) for k in ("name", "in", "out", "dropped", "seconds")} for s in stages]}
    return section


def _funnel_row(stage: dict) -> list:
    n_in, n_out = stage.get("in", 0), stage.get("out", 0)
    reasons = ", ".join(f"{r} {n:,}" for r, n in sorted((stage.get("dropped") or {}).items(), key=lambda kv: -kv[1]))
    share = round(100 * (n_in - n_out) / n_in, 1) if n_in else 0.0
    return [stage["name"], n_in, n_out, n_in - n_out, share, stage.get("seconds"), reasons]


def drops_section(data: RunData) -> Section:
    section = Section(
        "drops", "Drops by reason", "How many records each rule dropped, longest bar first; the table gives one example of each."
    )
    drops = [
        (s["name"], reason, n)
        for s in data.ledger.get("stages") or []
        if s["name"] in CORPUS_STAGES
        for reason, n in (s.get("dropped") or {}).items()
        if n
    ]
    if not drops:
        section.note = "No record was dropped (or the ledger is missing)."
        return section
    drops.sort(key=lambda d: -d[2])
    fig, axes = figure(height=0.28 * len(drops) + 1.0)
    ax = axes[0, 0]
    y = np.arange(len(drops))
    ax.barh(y, [d[2] for d in drops], color=[STAGE_COLORS.get(d[0], OTHER) for d in drops])
    for i, (_, _, n) in enumerate(drops):
        ax.text(n, i, f" {n:,}", va="center", fontsize=8)
    ax.set_yticks(y, [f"{stage}: {reason}" for stage, reason, _ in drops], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, drops[0][2] * 1.12)
    ax.set_xlabel("records dropped")
    section.image = png(fig)
    examples = drop_examples(data.run / "rejected")
    rows = [[stage, reason, n, *examples.get((stage, reason), ["", "", ""])] for stage, reason, n in drops]
    section.tables.append(table(["stage", "reason", "records", "example: detail", "url", "title"], rows))
    total = sum(d[2] for d in drops)
    section.summary = (
        f"{total:,} records dropped for {len(drops)} reasons; the most frequent is {drops[0][0]}/{drops[0][1]} ({drops[0][2]:,})."
    )
    section.stats = {"dropped": {f"{stage}/{reason}": n for stage, reason, n in drops}}
    return section


def drop_examples(rejected: Path) -> dict[tuple[str, str], list[str]]:
    """(stage, reason) -> [detail, url, title] of the first rejected row with that reason; at most about SAMPLE
    rows read per stage."""
    examples: dict[tuple[str, str], list[str]] = {}
    for folder in sorted(p for p in rejected.glob("*") if p.is_dir()) if rejected.is_dir() else []:
        for batch in _first_batches(_shards(folder, "part-*.arrow"), SAMPLE):
            if "reason" not in batch.schema.names:
                break
            for row, reason in enumerate(batch.column("reason").to_pylist()):
                if (folder.name, reason) not in examples:
                    detail, url, title = (_cell(batch, name, row) for name in ("detail", "url", "title"))
                    examples[(folder.name, reason)] = [clip(detail), readable_url(url), clip(title)]
    return examples


def _first_batches(paths: list[Path], limit: int):
    """The record batches of the shards, in order, until `limit` rows were given."""
    given = 0
    for path in paths:
        for batch in open_batches(path):
            if given >= limit:
                return
            given += batch.num_rows
            yield batch


def _cell(batch: pa.RecordBatch, name: str, row: int) -> str:
    value = batch.column(name)[row].as_py() if name in batch.schema.names else None
    return "" if value is None else str(value)


def clip(text: str | None, limit: int = 200) -> str:
    """Text from the data for a table cell: at most `limit` characters (a title can be a whole page)."""
    text = text or ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def readable_url(url: str | None) -> str:
    """A URL as a reader wants it: percent-escapes decoded (Cyrillic, not %D0%A8...), clipped; shown as escaped
    text, never as a link."""
    return clip(unquote(url or "", errors="replace"))


def languages_section(data: RunData) -> Section:
    section = Section(
        "languages", "Languages", "Share of documents per detected language, before filtering (extracted/) and after (documents/)."
    )
    before, after = _lang_counts(data.extracted), _lang_counts(data.documents)
    if not before and not after:
        section.note = "No extracted/ or documents/ shards to count languages in."
        return section
    order = sorted(before or after, key=lambda lang: -(before or after)[lang])
    shown = order[:TOP_LANGUAGES]
    labels = shown + (["other"] if len(order) > len(shown) else [])

    def shares(counts: dict) -> np.ndarray:
        total = sum(counts.values()) or 1
        values = [counts.get(lang, 0) for lang in shown]
        if "other" in labels:
            values.append(sum(n for lang, n in counts.items() if lang not in shown))
        return 100 * np.array(values) / total

    fig, axes = figure()
    ax = axes[0, 0]
    x = np.arange(len(labels))
    ax.bar(x - 0.2, shares(before), 0.4, color=OTHER, label=f"extracted ({data.extracted.rows:,} docs)" if data.extracted else "extracted")
    ax.bar(x + 0.2, shares(after), 0.4, color=KEPT, label=f"documents ({data.documents.rows:,} docs)" if data.documents else "documents")
    ax.set_xticks(x, labels, rotation=45 if len(labels) > 10 else 0)
    ax.set_ylabel("% of documents")
    ax.legend(fontsize=8)
    section.image = png(fig)
    folder = "extracted" if before else "kept"
    section.summary = (
        f"{len(order)} languages detected; the most common is {order[0]} ({shares(before or after)[0]:.1f}% of {folder} documents)."
    )
    section.stats = {
        "extracted": before,
        "documents": after,
        "sampled": {"extracted": sum(before.values()), "documents": sum(after.values())},
    }
    return section


def _lang_counts(sample: Sample | None) -> dict[str, int]:
    if sample is None or sample.column("lang") is None:
        return {}
    counts = pc.value_counts(pc.fill_null(sample.column("lang"), "unknown")).to_pylist()
    return {c["values"]: c["counts"] for c in sorted(counts, key=lambda c: -c["counts"])}


def lengths_section(data: RunData) -> Section:
    section = Section(
        "lengths",
        "Document lengths",
        "Distribution of characters and words per document before filtering (extracted/) and after (documents/), log scale.",
    )
    if data.extracted is None and data.documents is None:
        section.note = "No extracted/ or documents/ shards."
        return section
    fig, axes = figure(ncols=2)
    stats, rows = {}, []
    for ax, name in zip(axes[0], ("n_chars", "n_words")):
        before = data.extracted.signal(name)[0] if data.extracted else np.zeros(0)
        after = data.documents.signal(name)[0] if data.documents else np.zeros(0)
        bins = log_bins(before, after)
        ax.hist(np.maximum(before, 1), bins=bins, histtype="stepfilled", color=OTHER, alpha=0.5, label="extracted")
        ax.hist(np.maximum(after, 1), bins=bins, histtype="step", color=KEPT, linewidth=2, label="documents")
        log_x(ax)
        ax.set_xlabel(name.replace("n_", "") + " per document")
        ax.set_ylabel("documents")
        ax.legend(fontsize=8)
        stats[name] = {"extracted": quantiles(before), "documents": quantiles(after)}
        for where, q in stats[name].items():
            rows.append([name, where, q.get("n"), q.get("p10"), q.get("p50"), q.get("p90"), q.get("mean")])
    section.image = png(fig)
    section.tables.append(table(["signal", "folder", "sampled", "p10", "median", "p90", "mean"], rows))
    section.stats = stats
    return section


def signals_section(data: RunData) -> Section:
    section = Section(
        "signals",
        "Quality signals and thresholds",
        "Each quality signal over the extracted documents, split into kept and dropped by the filter, "
        "with the filter's thresholds as dashed red lines.",
    )
    sample = data.extracted
    plots = [p for p in SIGNAL_PLOTS if sample is not None and len(sample.signal(p[0])[0])]
    if not plots:
        section.note = "No extracted/ shards with signals."
        return section
    ncols = 3
    nrows = math.ceil(len(plots) / ncols)
    fig, axes = figure(nrows, ncols, height=2.3, layout=None)  # fixed margins: a layout engine doubles the drawing
    fig.subplots_adjust(left=0.05, right=0.98, bottom=0.04, top=1 - 0.5 / (2.3 * nrows), hspace=0.45, wspace=0.2)
    stats = {}
    for ax, (name, family, keys, log_scale) in zip(axes.flat, plots):
        stats[name] = _signal_panel(ax, data, name, family, keys, log_scale)
    for ax in list(axes.flat)[len(plots) :]:
        ax.set_visible(False)
    legend = {}  # label -> handle, once each over all panels
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    fig.legend(legend.values(), legend.keys(), loc="upper center", ncols=3, fontsize=8, frameon=False)
    section.image = png(fig)
    rows = [
        [n, ", ".join(f"{k}={fmt(v)}" for k, v in s["thresholds"].items()), s["rule"], s.get("p10"), s.get("p50"), s.get("p90")]
        for n, s in stats.items()
    ]
    section.tables.append(table(["signal", "thresholds", "rule", "p10", "median", "p90"], rows))
    if sample.column("kept") is None:
        section.summary = "The filter's keep masks are missing: all documents are drawn as one histogram."
    section.stats = stats
    return section


def _signal_panel(ax, data: RunData, name: str, family: str | None, keys: list[str], log_scale: bool) -> dict:
    """One signal's histogram (kept and dropped stacked) with its thresholds; values past the drawn range (the
    thresholds and the 99.5th percentile) are counted in the edge bins."""
    values, kept = data.extracted.signal(name)
    stats = quantiles(values)
    thresholds = {key: data.threshold(key) for key in keys}
    limits = [v for v in thresholds.values() if v is not None]
    if log_scale:
        values = np.maximum(values, 1)
        bins = log_bins(values, np.array(limits), n=30)
        log_x(ax)
    else:
        low, high = min([values.min(), *limits]), max([np.quantile(values, 0.995), *limits])
        high = high + 0.05 * (high - low) if limits and high in limits else high
        bins = np.linspace(low, max(high, low + 1e-6), 31)
        values = np.clip(values, bins[0], bins[-1])
    if kept is not None:
        ax.hist(
            [values[kept], values[~kept]],
            bins=bins,
            stacked=True,
            histtype="stepfilled",
            color=[KEPT, DROPPED],
            label=["kept by filter", "dropped by filter"],
        )
    else:
        ax.hist(values, bins=bins, histtype="stepfilled", color=KEPT, label="documents")
    enabled = family is None or data.config.get("filter", {}).get(family, True) is not False
    for value in limits:
        ax.axvline(value, color=THRESHOLD if enabled else OTHER, linestyle="--", linewidth=1.2, label="threshold")
    ax.set_title(name + ("" if enabled else "  (rule off)"), fontsize=9)
    ax.tick_params(labelsize=7)
    return {
        **stats,
        "thresholds": {k: v for k, v in thresholds.items() if v is not None},
        "rule": (family or "none") + ("" if enabled else " (off)"),
    }


def keyphrases_section(data: RunData) -> Section:
    section = Section(
        "keyphrases", "Top keyphrases", "The keyphrases found in the most kept documents (case-folded), with their mean score."
    )
    column = data.documents.column("keyphrases") if data.documents else None
    if column is None:
        section.note = "No documents/ shards with keyphrases."
        return section
    column = column.combine_chunks()
    items = pc.list_flatten(column)
    if not len(items):
        section.note = "No document has keyphrases."
        return section
    phrases = pa.table(
        {
            "phrase": pc.utf8_lower(pc.struct_field(items, "phrase")),
            "doc": pc.list_parent_indices(column),
            "score": pc.struct_field(items, "score").cast(pa.float64()),
        }
    )
    top = (
        phrases.group_by("phrase")
        .aggregate([("doc", "count_distinct"), ("score", "mean")])
        .sort_by([("doc_count_distinct", "descending"), ("score_mean", "descending")])
        .slice(0, TOP_KEYPHRASES)
        .to_pylist()
    )
    rows = [[i + 1, r["phrase"], r["doc_count_distinct"], r["score_mean"]] for i, r in enumerate(top)]
    section.tables.append(table(["#", "keyphrase", "documents", "mean score"], rows))
    section.stats = {"top": [{"phrase": r["phrase"], "documents": r["doc_count_distinct"], "mean_score": r["score_mean"]} for r in top]}
    return section


def documents_section(data: RunData) -> Section:
    section = Section(
        "documents", "Kept documents: a sample", "Documents spread evenly over documents/, with their language, length and top keyphrases."
    )
    sample = data.documents
    if sample is None:
        section.note = "No documents/ shards."
        return section
    picks = np.unique(np.linspace(0, sample.table.num_rows - 1, EXAMPLE_DOCUMENTS).astype(int))
    rows = []
    for doc in sample.table.take(pa.array(picks)).to_pylist():
        phrases = ", ".join(k["phrase"] for k in (doc.get("keyphrases") or [])[:4])
        words = (doc.get("signals") or {}).get("n_words")
        rows.append([clip(doc.get("title")), readable_url(doc.get("url")), doc.get("lang"), words, clip(phrases)])
    section.tables.append(table(["title", "url", "lang", "words", "keyphrases"], rows))
    section.summary = f"documents/ holds {sample.rows:,} documents."
    section.stats = {"documents": sample.rows}
    return section


def dedup_section(data: RunData) -> Section:
    section = Section(
        "dedup",
        "Duplicate clusters",
        "Left: how many clusters of duplicates have each size (the kept document included); "
        "right: estimated Jaccard similarity of each dropped duplicate to its kept document.",
    )
    path = data.run / "dedup" / "clusters.arrow"
    if not path.is_file():
        section.note = "No dedup/clusters.arrow (dedup off or not run yet)."
        return section
    clusters = read_table(path)
    if not clusters.num_rows:
        section.note = "Deduplication found no duplicates."
        return section
    sizes = pc.value_counts(clusters.column("cluster_id")).field("counts").to_numpy()
    dropped = clusters.filter(pc.not_equal(clusters.column("doc_id"), clusters.column("kept_id")))
    fig, axes = figure(ncols=2)
    size_values, size_counts = np.unique(sizes, return_counts=True)
    axes[0, 0].bar(size_values, size_counts, color=KEPT)
    axes[0, 0].xaxis.get_major_locator().set_params(integer=True)
    axes[0, 0].set_xlabel("documents in cluster")
    axes[0, 0].set_ylabel("clusters")
    axes[0, 0].set_yscale("log" if size_counts.max() > 50 else "linear")
    _jaccard_panel(axes[0, 1], dropped, data.config.get("dedup", {}).get("threshold"))
    section.image = png(fig)
    section.tables.append(_largest_clusters(data, clusters))
    section.summary = (
        f"{len(sizes):,} clusters hold {int(sizes.sum()):,} documents; {dropped.num_rows:,} were dropped as duplicates, "
        f"the largest cluster has {int(sizes.max()):,} documents."
    )
    section.stats = {
        "clusters": len(sizes),
        "documents_in_clusters": int(sizes.sum()),
        "duplicates_dropped": dropped.num_rows,
        "cluster_sizes": {int(s): int(c) for s, c in zip(size_values, size_counts)},
    }
    return section


def _jaccard_panel(ax, dropped: pa.Table, threshold) -> None:
    if "jaccard" not in dropped.column_names or not dropped.num_rows:
        ax.set_axis_off()
        return
    if "match" in dropped.column_names:
        match = pc.fill_null(dropped.column("match"), "duplicate")
    else:
        match = pa.chunked_array([pa.array(["duplicate"] * dropped.num_rows)])
    jaccard = dropped.column("jaccard").cast(pa.float64()).fill_null(np.nan).to_numpy()
    kinds = sorted(pc.unique(match).to_pylist())
    groups = [jaccard[pc.equal(match, kind).to_numpy(zero_copy_only=False)] for kind in kinds]
    ax.hist(
        groups,
        bins=np.linspace(0, 1, 41),
        stacked=True,
        histtype="stepfilled",
        label=kinds,
        color=[KEPT, DROPPED, "#55A868", OTHER][: len(kinds)],
    )
    if isinstance(threshold, int | float):
        ax.axvline(threshold, color=THRESHOLD, linestyle="--", label=f"dedup.threshold={threshold}")
    ax.set_xlabel("estimated Jaccard to the kept document")
    ax.set_ylabel("duplicates")
    ax.legend(fontsize=8)


def _largest_clusters(data: RunData, clusters: pa.Table, top: int = 10) -> str:
    counts = pc.value_counts(clusters.column("kept_id")).to_pylist()
    counts = sorted(counts, key=lambda c: -c["counts"])[:top]
    kept = _documents_by_id(data.run / "documents", [c["values"] for c in counts])
    rows = [[c["counts"], c["values"], *kept.get(c["values"], ["(not in documents/)", ""])] for c in counts]
    return table(["documents", "kept document id", "title", "url"], rows)


def _documents_by_id(folder: Path, ids: list[str]) -> dict[str, list[str]]:
    """id -> [title, url] for the given ids, scanning only the id column until all are found."""
    wanted, found = pa.array(ids, pa.string()), {}
    for path in _shards(folder, "shard-*.arrow"):
        for batch in open_batches(path):
            hits = pc.is_in(batch.column("id"), value_set=wanted)
            for row in batch.filter(hits).select(["id", "title", "url"]).to_pylist():
                found[row["id"]] = [clip(row["title"]), readable_url(row["url"])]
            if len(found) == len(ids):
                return found
    return found


def tokenizer_section(data: RunData) -> Section:
    section = Section(
        "tokenizer",
        "Tokenizer: bytes per token",
        "Left: UTF-8 bytes of text per token for each language (more is a better fit), the dashed line being the corpus "
        "average; right: tokens per document.",
    )
    joined = _bytes_and_tokens(data.run)
    if joined is None:
        section.note = "No tokens/ shards (the tokenizer or tokens stage has not run)."
        return section
    n_bytes, n_tokens, langs = joined
    overall = n_bytes.sum() / max(n_tokens.sum(), 1)
    per_lang = {}
    for lang in dict.fromkeys(langs):
        rows = langs == lang
        per_lang[lang] = (int(rows.sum()), float(n_bytes[rows].sum() / max(n_tokens[rows].sum(), 1)))
    shown = sorted(per_lang, key=lambda lang: -per_lang[lang][0])[:TOP_LANGUAGES]
    fig, axes = figure(ncols=2)
    ax = axes[0, 0]
    ax.bar(range(len(shown)), [per_lang[lang][1] for lang in shown], color=KEPT)
    ax.axhline(overall, color=THRESHOLD, linestyle="--", label=f"all: {overall:.2f}")
    ax.set_xticks(range(len(shown)), shown, rotation=45 if len(shown) > 10 else 0)
    ax.set_ylabel("bytes per token")
    ax.legend(fontsize=8)
    ax = axes[0, 1]
    ax.hist(np.maximum(n_tokens, 1), bins=log_bins(n_tokens, n=30), color=KEPT)
    log_x(ax)
    ax.set_xlabel("tokens per document")
    ax.set_ylabel("documents")
    section.image = png(fig)
    manifest = _read_json(data.run / "tokenizer" / "manifest.json") or {}
    tokens = (_read_json(data.run / "tokens" / "manifest.json") or {}).get("extra", {})
    vocab = manifest.get("extra", {}).get("tokenizer", {}).get("vocab_size")
    section.summary = f"{overall:.2f} bytes per token over {len(n_bytes):,} documents" + (f", vocabulary of {vocab:,}." if vocab else ".")
    rows = [[lang, per_lang[lang][0], per_lang[lang][1]] for lang in shown]
    section.tables.append(table(["language", "documents", "bytes per token"], rows))
    section.stats = {
        "bytes_per_token": float(overall),
        "documents": len(n_bytes),
        "vocab_size": vocab,
        "tokens": tokens.get("tokens"),
        "by_language": {lang: {"documents": n, "bytes_per_token": b} for lang, (n, b) in per_lang.items()},
        "tokens_per_document": quantiles(n_tokens.astype(float)),
    }
    return section


def _bytes_and_tokens(run: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(text bytes, tokens without the EOS, language) per document, joining documents/shard-N with
    tokens/{train,val}/shard-N by id; shards are read whole until SAMPLE documents are in."""
    parts = []
    for shard in _shards(run / "documents", "shard-*.arrow"):
        token_files = [run / "tokens" / split / shard.name for split in ("train", "val")]
        token_files = [p for p in token_files if p.is_file()]
        if not token_files:
            continue
        docs = pa.Table.from_batches(
            [
                pa.record_batch([b.column("id"), pc.binary_length(b.column("text")), b.column("lang")], names=["id", "bytes", "lang"])
                for b in open_batches(shard)
            ]
        )
        tokens = pa.Table.from_batches(
            [
                pa.record_batch([b.column("doc_id"), pc.subtract(pc.list_value_length(b.column("input_ids")), 1)], names=["id", "tokens"])
                for p in token_files
                for b in open_batches(p)
            ]
        )
        parts.append(docs.join(tokens, "id", join_type="inner"))
        if sum(p.num_rows for p in parts) >= SAMPLE:
            break
    joined = pa.concat_tables(parts) if parts else None
    if joined is None or not joined.num_rows:
        return None
    joined = joined.filter(pc.greater(joined.column("tokens"), 0))
    langs = pc.fill_null(joined.column("lang"), "unknown").to_numpy(zero_copy_only=False)
    return joined.column("bytes").to_numpy().astype(float), joined.column("tokens").to_numpy().astype(float), langs


def pretrain_section(data: RunData) -> Section:
    section = Section(
        "pretrain",
        "Pretraining",
        "Training loss (every logged step) and validation loss (every evaluation) against the step; "
        "the dotted line is ln(vocabulary), the loss of a uniform guess.",
    )
    metrics = _pretrain_metrics(data)
    if not metrics or not (metrics.get("train_loss") or metrics.get("val_loss")):
        section.note = "No pretraining metrics (pretrain off or not run yet)."
        return section
    fig, axes = figure()
    ax = axes[0, 0]
    if metrics.get("train_loss"):
        steps, losses = zip(*metrics["train_loss"])
        ax.plot(steps, losses, color=KEPT, label="train loss")
    if metrics.get("val_loss"):
        steps, losses = zip(*metrics["val_loss"])
        ax.plot(steps, losses, "o-", color=DROPPED, label="val loss")
    if metrics.get("ln_vocab"):
        ax.axhline(metrics["ln_vocab"], color=OTHER, linestyle=":", label="ln(vocab)")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats)")
    ax.legend(fontsize=8)
    section.image = png(fig)
    shown = {k: metrics[k] for k in PRETRAIN_KEYS if k in metrics}
    section.tables.append(table(["metric", "value"], [[k, v] for k, v in shown.items()]))
    if metrics.get("final_val_loss") is not None and metrics.get("initial_val_loss") is not None:
        first, last = metrics["initial_val_loss"], metrics["final_val_loss"]
        section.summary = f"Validation loss went from {first:.3f} to {last:.3f} in {metrics.get('steps', '?')} steps."
    section.stats = {**shown, "train_loss": metrics.get("train_loss"), "val_loss": metrics.get("val_loss")}
    return section


def _pretrain_metrics(data: RunData) -> dict | None:
    """model/metrics.json; else the ledger's copy; else the curve so far from model/metrics.jsonl."""
    metrics = _read_json(data.run / "model" / "metrics.json")
    if metrics:
        return metrics
    for stage in data.ledger.get("stages") or []:
        if stage.get("name") == "pretrain" and stage.get("metrics"):
            return stage["metrics"]
    path = data.run / "model" / "metrics.jsonl"
    if not path.is_file():
        return None
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {
        "train_loss": [[e["step"], e["loss"]] for e in lines if e.get("kind") == "train"],
        "val_loss": [[e["step"], e["val_loss"]] for e in lines if e.get("kind") == "eval"],
    }


def finetune_section(data: RunData) -> Section:
    section = Section(
        "finetune",
        "Fine-tuning",
        "Per epoch: training loss (left) and dev accuracy and macro-F1 (right), the dashed line being the majority-class baseline.",
    )
    metrics = _read_json(data.run / "finetune" / "metrics.json")
    if not metrics:
        section.note = "No fine-tuning metrics (finetune.data is empty or fine-tuning has not run)."
        return section
    history = metrics.get("history") or []
    if history:
        fig, axes = figure(ncols=2)
        epochs = [h["epoch"] for h in history]
        axes[0, 0].plot(epochs, [h["train_loss"] for h in history], "o-", color=KEPT)
        axes[0, 0].set_xlabel("epoch")
        axes[0, 0].set_ylabel("train loss")
        for key, color in (("accuracy", KEPT), ("macro_f1", DROPPED)):
            axes[0, 1].plot(epochs, [h[key] for h in history], "o-", color=color, label=key)
        if metrics.get("majority_baseline") is not None:
            axes[0, 1].axhline(metrics["majority_baseline"], color=OTHER, linestyle="--", label="majority class")
        axes[0, 1].set_xlabel("epoch")
        for ax in axes[0]:
            ax.xaxis.get_major_locator().set_params(integer=True)
        axes[0, 1].legend(fontsize=8)
        section.image = png(fig)
    shown = {k: (", ".join(map(str, metrics[k])) if isinstance(metrics[k], list) else metrics[k]) for k in FINETUNE_KEYS if k in metrics}
    section.tables.append(table(["metric", "value"], [[k, v] for k, v in shown.items()]))
    section.stats = {**shown, "history": history}
    return section


SECTIONS: list[Callable[[RunData], Section]] = [
    funnel_section,
    drops_section,
    languages_section,
    lengths_section,
    signals_section,
    keyphrases_section,
    documents_section,
    dedup_section,
    tokenizer_section,
    pretrain_section,
    finetune_section,
]


# --- the page -------------------------------------------------------------------------------------------------

STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #222; max-width: 1080px; margin: 2em auto; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.meta, .caption { color: #555; } .note { color: #8a5a00; background: #fff6e0; padding: 0.5em 0.8em; }
nav a { margin-right: 0.9em; white-space: nowrap; }
img { max-width: 100%; height: auto; display: block; margin: 0.8em 0; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 13px; max-width: 100%; }
th, td { border-bottom: 1px solid #e5e5e5; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; } td.long { overflow-wrap: anywhere; min-width: 12em; }
th { background: #f5f5f5; }
"""

# No script, no network: only inline styles and data: images may load.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def render_section(section: Section) -> str:
    parts = [f'<section id="{esc(section.key)}">', f"<h2>{esc(section.title)}</h2>"]
    if section.note:
        parts.append(f'<p class="note">{esc(section.note)}</p>')
    else:
        parts.append(f'<p class="caption">{esc(section.caption)}</p>')
        if section.summary:
            parts.append(f"<p>{esc(section.summary)}</p>")
        if section.image:
            parts.append(f'<img src="{section.image}" alt="{esc(section.title)}: {esc(section.caption)}">')
        parts.extend(section.tables)
    parts.append("</section>")
    return "\n".join(parts)


def render_page(data: RunData, sections: list[Section]) -> str:
    ledger = data.ledger
    errors = ledger.get("errors") or []
    nav = " ".join(f'<a href="#{esc(s.key)}">{esc(s.title)}</a>' for s in sections)
    head = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>corpusforge report: {esc(data.run.name)}</title>",
        f"<style>{STYLE}</style></head><body>",
        "<h1>corpusforge run report</h1>",
        f'<p class="meta">Run {esc(data.run)} · code {esc(ledger.get("code_version", "?"))} · written {_now()}</p>',
        f"<nav>{nav}</nav>",
    ]
    if errors:
        items = "".join(f"<li>{esc(_describe(e))}</li>" for e in errors[:50])
        head.append(f'<div class="note">This run recorded {len(errors):,} error(s):<ul>{items}</ul></div>')
    return "\n".join([*head, *(render_section(s) for s in sections), "</body></html>\n"])


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def _describe(error) -> str:
    return ", ".join(f"{k}: {v}" for k, v in error.items()) if isinstance(error, dict) else str(error)


def build_sections(data: RunData) -> list[Section]:
    """Every section; one that fails becomes a note naming the error, so the report is always written."""
    from matplotlib import rc_context

    sections = []
    with rc_context({"text.parse_math": False, "font.size": 9}):  # labels from the data are text, never mathtext
        for build in SECTIONS:
            try:
                sections.append(build(data))
            except Exception as err:
                log.warning("report: section %s failed", build.__name__, exc_info=True)
                key = build.__name__.removesuffix("_section")
                sections.append(Section(key, key.capitalize(), "", note=f"This section could not be drawn: {type(err).__name__}: {err}"))
    return sections


def stats_path(path: Path) -> Path:
    """stats.json beside report.html; NAME.stats.json beside any other NAME.html."""
    return path.with_name("stats.json" if path.name == "report.html" else f"{path.stem}.stats.json")


def write_report(run_dir: Path, path: Path | None = None) -> Path:
    """Write the run's report (RUN/report/report.html unless `path`) and its stats.json; return the page's path.

    Missing or unreadable parts of the run become notes on the page; only a failure to write the files raises."""
    started = time.time()
    run_dir = Path(run_dir)
    path = Path(path) if path is not None else run_dir / "report" / "report.html"
    data = RunData(run_dir)
    sections = build_sections(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, render_page(data, sections))
    stats = {
        "run": str(run_dir),
        "report": str(path),
        "sample_rows": SAMPLE,
        "sections": {s.key: s.stats for s in sections if not s.note},
        "notes": {s.key: s.note for s in sections if s.note},
        "seconds": round(time.time() - started, 3),
    }
    write_text_atomic(stats_path(path), json.dumps(_json_safe(stats), indent=2) + "\n")
    return path


def _json_safe(value):
    """NaN and infinities to None, numpy scalars to Python, so stats.json is strict JSON."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
