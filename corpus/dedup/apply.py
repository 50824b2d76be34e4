"""Which documents are duplicates, decided once (`duplicates`), and the per-unit pass that writes them as rejected
rows naming what they duplicated. The shard stage drops exactly the ids `duplicates` lists."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from corpus.document import REJECTED_SCHEMA
from corpus.manifest import LedgerEntry
from corpus.shards import kept_batches, read_table, rejected_rows

REASONS = {"exact": "exact_duplicate", "url": "url_duplicate", "near": "near_duplicate"}


def duplicates(clusters: pa.Table) -> pa.Table:
    """The rows of `clusters` whose document is dropped: every listed document that is not its cluster's kept one
    (under drop-all no document is kept, `kept_id` is null). Tables without a `match` column (plain
    CLUSTERS_SCHEMA, exact dedup only) count as exact matches."""
    if "match" not in clusters.column_names:
        clusters = clusters.append_column("match", pa.array(["exact"] * clusters.num_rows, pa.string()))
    kept = pc.fill_null(pc.equal(clusters.column("doc_id"), clusters.column("kept_id")), False)
    dropped = pc.and_(pc.invert(kept), pc.fill_null(pc.not_equal(clusters.column("match"), "kept"), True))
    return clusters.filter(dropped)


def dropped_documents(clusters: pa.Table) -> dict[str, tuple[str, str, float, str]]:
    """doc_id -> (cluster_id, kept_id, jaccard, match) of `duplicates(clusters)`, for evaluation and tests."""
    rows = duplicates(clusters).to_pydict()
    return {
        doc_id: (cluster_id, kept_id or "", float(jaccard), match)
        for doc_id, cluster_id, kept_id, jaccard, match in zip(
            rows["doc_id"], rows["cluster_id"], rows["kept_id"], rows["jaccard"], rows["match"]
        )
    }


def apply_unit(clusters_path: Path, src: Path, rejected_path: Path, keep_mask: Path | None = None) -> list[LedgerEntry]:
    """Count each document of `src` (the rows its keep mask marks) as kept or write it to `rejected_path` (stage
    "dedup"); returns the ledger."""
    entry = LedgerEntry("dedup")
    t0 = time.perf_counter()
    dup = duplicates(read_table(clusters_path))
    with pa.OSFile(str(rejected_path), "wb") as sink, pa.ipc.new_stream(sink, REJECTED_SCHEMA) as writer:
        for batch in kept_batches(src, keep_mask):
            where = pc.index_in(batch.column("id"), value_set=dup.column("doc_id"))
            hits = pc.indices_nonzero(pc.is_valid(where))
            entry.in_ += batch.num_rows
            entry.out += batch.num_rows - len(hits)
            if not len(hits):
                continue
            found = dup.take(pc.take(where, hits))
            rows = pa.Table.from_batches([batch.take(hits)])
            rows = rows.set_column(rows.schema.get_field_index("cluster_id"), "cluster_id", found.column("cluster_id"))
            match = found.column("match").to_pylist()
            reasons = [REASONS[m] for m in match]
            for reason in reasons:
                entry.drop(reason)
            details = [
                explain(doc_id, m, kept_id or "", cluster_id, jaccard)
                for doc_id, m, kept_id, cluster_id, jaccard in zip(
                    found.column("doc_id").to_pylist(),
                    match,
                    found.column("kept_id").to_pylist(),
                    found.column("cluster_id").to_pylist(),
                    found.column("jaccard").to_pylist(),
                )
            ]
            writer.write_table(
                rejected_rows(rows, "dedup", pa.array(reasons, pa.string()), pa.array(details, pa.string()), _null_if_empty(found.column("kept_id")))
            )
    entry.seconds = time.perf_counter() - t0
    return [entry]


def _null_if_empty(ids: pa.ChunkedArray) -> pa.ChunkedArray:
    """Drop-all clusters name no kept document: an empty kept_id, written as null."""
    return pc.if_else(pc.equal(ids, ""), pa.scalar(None, pa.string()), ids)


def explain(doc_id: str, match: str, kept_id: str, cluster_id: str, jaccard: float) -> str:
    """The `detail` of a rejected duplicate: what it matched and how closely."""
    if not kept_id:
        closeness = "" if doc_id == cluster_id else f", estimated Jaccard {jaccard:.2f} to {cluster_id}"
        return f"{match} duplicate in cluster {cluster_id}; policy drop-all keeps none{closeness}"
    if match == "exact":
        return f"same normalized text as {kept_id}"
    if match == "url":
        return f"same URL as {kept_id} (estimated Jaccard {jaccard:.2f})"
    return f"near-duplicate of {kept_id} (estimated Jaccard {jaccard:.2f})"
