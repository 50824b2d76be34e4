"""The per-unit filter pass after clustering: every duplicate becomes a rejected row that names what it duplicated."""

from __future__ import annotations

import time
from pathlib import Path

import pyarrow as pa

from corpus.document import REJECTED_SCHEMA, Document, rejected_table
from corpus.manifest import LedgerEntry
from corpus.shards import open_batches, read_table

REASONS = {"exact": "exact_duplicate", "url": "url_duplicate", "near": "near_duplicate"}


def apply_unit(clusters_path: Path, src: Path, rejected_path: Path) -> list[LedgerEntry]:
    """Count each document of `src` as kept or write it to `rejected_path` (stage "dedup"); returns the ledger."""
    entry = LedgerEntry("dedup")
    t0 = time.perf_counter()
    dropped = dropped_documents(read_table(clusters_path))
    with pa.OSFile(str(rejected_path), "wb") as sink, pa.ipc.new_stream(sink, REJECTED_SCHEMA) as writer:
        for batch in open_batches(src):
            ids = batch.column("id").to_pylist()
            entry.in_ += len(ids)
            hits = [i for i, doc_id in enumerate(ids) if doc_id in dropped]
            entry.out += len(ids) - len(hits)
            if not hits:
                continue
            rows = []
            for row in batch.take(hits).to_pylist():
                doc = Document.from_row(row)
                cluster_id, kept_id, jaccard, match = dropped[doc.id]
                doc.cluster_id = cluster_id
                reason = REASONS[match]
                entry.drop(reason)
                detail = explain(doc.id, match, kept_id, cluster_id, jaccard)
                rows.append(doc.to_rejected_row("dedup", reason, detail, kept_id))
            writer.write_table(rejected_table(rows))
    entry.seconds = time.perf_counter() - t0
    return [entry]


def dropped_documents(clusters: pa.Table) -> dict[str, tuple[str, str, float, str]]:
    """doc_id -> (cluster_id, kept_id, jaccard, match) for every listed document that is not the kept one.

    Tables without a `match` column (plain CLUSTERS_SCHEMA, exact dedup only) count as exact matches.
    """
    columns = clusters.to_pydict()
    matches = columns.get("match") or ["exact"] * clusters.num_rows
    return {
        doc_id: (cluster_id, kept_id or "", float(jaccard), match)
        for doc_id, cluster_id, kept_id, jaccard, match in zip(
            columns["doc_id"], columns["cluster_id"], columns["kept_id"], columns["jaccard"], matches
        )
        if doc_id != kept_id and match != "kept"
    }


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
