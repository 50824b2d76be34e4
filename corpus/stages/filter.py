"""Stage `filter` -> RUN/filter/: the quality rules over the annotations, as one keep mask per extracted part.

The documents are not copied: `keep-NNNNN.arrow` holds one boolean per row of `extracted/part-NNNNN.arrow`, and the
dropped rows go to `rejected/filter/` with the rule that fired and its values. The rules read only the language,
its score, the URL and the signals, so only those columns are turned into Python objects; re-tuning a threshold
reruns this pass in seconds without re-extracting.
"""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa

from corpus.config import FilterConfig
from corpus.document import REJECTED_SCHEMA, Document
from corpus.manifest import LedgerEntry
from corpus.shards import KEEP_SCHEMA, open_batches, rejected_rows
from corpus.stage import Stage, StageContext

RULE_COLUMNS = ["id", "source", "offset", "url", "lang", "lang_score", "signals"]


def keep_mask_name(part: Path) -> str:
    return f"keep-{part.stem.split('-')[-1]}.arrow"


def kept_parts(ctx: StageContext) -> list[tuple[Path, Path]]:
    """(extracted part, its keep mask) pairs: what the stages below the filter read."""
    masks = {p.name: p for p in ctx.upstream_files("filter")}
    return [(part, masks[keep_mask_name(part)]) for part in ctx.upstream_files("extracted")]


def plan(ctx: StageContext) -> list[tuple]:
    parts = ctx.upstream_files("extracted")
    return [(ctx.cfg.filter, part, ctx.out / keep_mask_name(part), ctx.rejected / part.name) for part in parts]


def filter_unit(cfg: FilterConfig, src: Path, keep_path: Path, rejected_path: Path) -> list[LedgerEntry]:
    """Check every document of `src`; write its keep mask to `keep_path` and the dropped rows to `rejected_path`."""
    from corpus.filters import check

    entry = LedgerEntry("filter")
    t0 = time.perf_counter()
    with (
        pa.OSFile(str(keep_path), "wb") as keep_sink,
        pa.ipc.new_stream(keep_sink, KEEP_SCHEMA) as keep_writer,
        pa.OSFile(str(rejected_path), "wb") as rejected_sink,
        pa.ipc.new_stream(rejected_sink, REJECTED_SCHEMA) as rejected_writer,
    ):
        for batch in open_batches(src):
            verdicts = [check(Document.from_row(row), cfg) for row in batch.select(RULE_COLUMNS).to_pylist()]
            keep = pa.array([verdict is None for verdict in verdicts], pa.bool_())
            keep_writer.write_batch(pa.record_batch([keep], schema=KEEP_SCHEMA))
            dropped = [(i, verdict) for i, verdict in enumerate(verdicts) if verdict is not None]
            entry.in_ += batch.num_rows
            entry.out += batch.num_rows - len(dropped)
            if dropped:
                reasons = [reason for _, (reason, _) in dropped]
                for reason in reasons:
                    entry.drop(reason)
                rows = batch.take(pa.array([i for i, _ in dropped], pa.int64()))
                details = pa.array([detail for _, (_, detail) in dropped], pa.string())
                rejected_writer.write_table(rejected_rows(rows, "filter", pa.array(reasons, pa.string()), details))
    entry.seconds = time.perf_counter() - t0
    return [entry]


FILTER = Stage(
    name="filter",
    dirname="filter",
    ledger_names=("filter",),
    sections=("filter",),
    code=("corpus.filters", "corpus.families", "corpus.stages.filter"),
    plan_units=plan,
    run_unit=filter_unit,
    output_schema=lambda: KEEP_SCHEMA,
    upstream="extracted",
)
