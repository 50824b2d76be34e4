"""Stage `shard` -> RUN/documents/: the documents that passed filter and dedup, with their cluster and split.

One shard per extracted part, rows in the part's order: the rows the filter's keep mask marks, minus the ids
`corpus.dedup.duplicates` lists, taken with Arrow (no row becomes a Python object), plus `cluster_id` and a `split`
column (train/val by a hash of the id, so a document never changes split between runs).
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from corpus import document
from corpus.config import ShardConfig
from corpus.manifest import LedgerEntry, read_manifest
from corpus.shards import kept_batches, read_table
from corpus.stage import Stage, StageContext, StageResult, merged_ledger
from corpus.stages.filter import kept_parts


def split_of(doc_id: str, val_fraction: float) -> str:
    """Stable train/val assignment by hash of the id: a document never changes split between runs."""
    h = int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "big")
    return "val" if h / 2**64 < val_fraction else "train"


def plan(ctx: StageContext) -> list[tuple]:
    clusters_path = ctx.run_dir / "dedup" / "clusters.arrow"
    return [
        (ctx.cfg.shard, clusters_path, part, mask, ctx.out / f"shard-{part.stem.split('-')[-1]}.arrow")
        for part, mask in kept_parts(ctx)
    ]


def shard_unit(cfg: ShardConfig, clusters_path: Path, src: Path, keep_mask: Path, out_path: Path) -> list[LedgerEntry]:
    from corpus.dedup import duplicates

    entry = LedgerEntry("shard")
    t0 = time.perf_counter()
    clusters = read_table(clusters_path, ["doc_id", "cluster_id"])
    dropped = duplicates(read_table(clusters_path)).column("doc_id")
    cluster_ids = pc.if_else(pc.equal(clusters.column("cluster_id"), ""), pa.scalar(None, pa.string()), clusters.column("cluster_id"))
    schema = document.DOCUMENT_SCHEMA
    with pa.OSFile(str(out_path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for batch in kept_batches(src, keep_mask):
            batch = batch.filter(pc.invert(pc.is_in(batch.column("id"), value_set=dropped)))
            ids = batch.column("id")
            cluster_id = pc.take(cluster_ids, pc.index_in(ids, value_set=clusters.column("doc_id")))
            split = pa.array([split_of(doc_id, cfg.val_fraction) for doc_id in ids.to_pylist()], pa.string())
            table = pa.Table.from_batches([batch])
            table = table.set_column(schema.get_field_index("cluster_id"), "cluster_id", cluster_id)
            table = table.set_column(schema.get_field_index("split"), "split", split)
            writer.write_table(table)
            entry.in_ += table.num_rows
            entry.out += table.num_rows
    entry.seconds = time.perf_counter() - t0
    return [entry]


def finish(ctx: StageContext, results: list) -> StageResult:
    """The units' ledgers added up; no document at all stops the run here, before the tokenizer and training, with
    the cause read from the ledgers above (ValueError, one line)."""
    result = merged_ledger(ctx, results)
    if sum(entry.out for entry in result.ledger) == 0:
        raise ValueError(no_documents_cause(ctx.run_dir))
    return result


def no_documents_cause(run_dir: Path) -> str:
    """Why no document reached the shards, from the ledgers of extract, filter and dedup: the input damage, or the
    reasons that dropped everything, at the first stage that kept nothing."""

    def entries(dirname: str) -> dict[str, LedgerEntry]:
        manifest = read_manifest(run_dir / dirname)
        return {entry.name: entry for entry in manifest.ledger} if manifest else {}

    def reasons(dropped: Counter) -> str:
        return ", ".join(f"{reason} {n}" for reason, n in dropped.most_common(5)) + (", ..." if len(dropped) > 5 else "")

    extracted = entries("extracted")
    ingest, annotate = extracted.get("ingest"), extracted.get("annotate")
    if annotate is None or annotate.out == 0:
        errors = [error for entry in extracted.values() for error in entry.errors]
        dropped = sum((entry.dropped for entry in extracted.values()), Counter())
        said = []
        for error in errors[:2]:
            where = f" at byte {error['offset']}" if error.get("offset") is not None else ""
            said.append(f"{error.get('path')}{where}: {error.get('error')}")
        if len(errors) > 2:
            said.append(f"{len(errors) - 2} more input problems")
        if dropped:
            n = ingest.in_ if ingest is not None else sum(dropped.values())
            said.append(f"all {n} input records were dropped: {reasons(dropped)}")
        if not said:
            said.append("the input holds no records")
        return "no documents: " + "; ".join(said)
    filtered = entries("filter").get("filter")
    if filtered is not None and filtered.out == 0:
        return (
            f"no documents: all {filtered.in_} documents were dropped by the filters: {reasons(filtered.dropped)} "
            "(loosen the filter.* settings; filter.enabled=false keeps every extracted document)"
        )
    dedup = entries("dedup").get("dedup")
    if dedup is not None and dedup.out == 0:
        return f"no documents: all {dedup.in_} documents were dropped as duplicates: {reasons(dedup.dropped)}"
    return "no documents reached the shards"


SHARD = Stage(
    name="shard",
    dirname="documents",
    ledger_names=("shard",),
    sections=("shard",),
    code=("corpus.dedup.apply", "corpus.stages.shard"),
    plan_units=plan,
    run_unit=shard_unit,
    finish=finish,
    output_schema=lambda: document.DOCUMENT_SCHEMA,
    upstream="dedup",
)
