"""Per-work-unit functions of the corpus stages: plain functions over one input unit or one shard.

`flows/` runs each as one Prefect task per unit and commits the stage; a notebook can call them directly. Each
function writes its Arrow output and rejected rows to the paths it is given and returns its ledger entries, so
that `in == out + dropped` can be checked per unit and merged per stage.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from corpus.config import AnnotateConfig, ExtractConfig, FilterConfig, IngestConfig, ShardConfig
from corpus.document import (
    DOCUMENT_SCHEMA,
    REJECTED_SCHEMA,
    Document,
    documents_to_table,
    rejected_table,
)
from corpus.manifest import LedgerEntry
from corpus.shards import open_batches, read_table

WRITE_BATCH = 128


class BatchedWriter:
    """Stream rows to one Arrow file in batches, so memory is bounded by the batch, not the unit."""

    def __init__(self, path: Path, schema: pa.Schema, to_table):
        self.path, self.schema, self.to_table = Path(path), schema, to_table
        self.pending: list = []
        self.sink = pa.OSFile(str(self.path), "wb")
        self.writer = pa.ipc.new_stream(self.sink, schema)
        self.rows = 0

    def add(self, item) -> None:
        self.pending.append(item)
        if len(self.pending) >= WRITE_BATCH:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.writer.write_table(self.to_table(self.pending))
            self.rows += len(self.pending)
            self.pending = []

    def close(self) -> None:
        self.flush()
        self.writer.close()
        self.sink.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def document_writer(path: Path) -> BatchedWriter:
    return BatchedWriter(path, DOCUMENT_SCHEMA, documents_to_table)


def rejected_writer(path: Path) -> BatchedWriter:
    return BatchedWriter(path, REJECTED_SCHEMA, rejected_table)


def iter_documents(path: Path) -> Iterator[Document]:
    for batch in open_batches(path):
        for row in batch.to_pylist():
            yield Document.from_row(row)


# --- extract: ingest + extract + annotate, fused per input unit so pages are parsed once ---------------------------


def extract_unit(
    unit,
    ingest: IngestConfig,
    extract: ExtractConfig,
    annotate: AnnotateConfig,
    out_path: Path,
    rejected_path: Path,
) -> list[LedgerEntry]:
    from corpus.annotate import Annotator
    from corpus.extract import Extractor
    from corpus.sources import Rejection, read_unit

    ledger = {name: LedgerEntry(name) for name in ("ingest", "extract", "annotate")}
    timers = dict.fromkeys(ledger, 0.0)
    annotator = Annotator(annotate)
    with document_writer(out_path) as kept, rejected_writer(rejected_path) as rejected, Extractor(extract) as extractor:
        records = read_unit(unit, ingest, ledger["ingest"].errors)

        def to_extract():
            """The unit's documents; ingest rejections are written on the way."""
            while True:
                t0 = time.perf_counter()
                record = next(records, None)
                timers["ingest"] += time.perf_counter() - t0
                if record is None:
                    return
                ledger["ingest"].in_ += 1
                if isinstance(record, Rejection):
                    _reject(ledger, rejected, record.doc, record.stage, record.reason, record.detail)
                    continue
                ledger["ingest"].out += 1
                ledger["extract"].in_ += 1
                yield record

        # extract_many keeps the next page in the extraction child while this process annotates the current one.
        results = extractor.extract_many(to_extract())
        while True:
            t0, ingest_before = time.perf_counter(), timers["ingest"]
            result = next(results, None)
            # what this process waited for extraction (the reading done inside next() is ingest's)
            timers["extract"] += time.perf_counter() - t0 - (timers["ingest"] - ingest_before)
            if result is None:
                break
            if isinstance(result, Rejection):
                _reject(ledger, rejected, result.doc, result.stage, result.reason, result.detail, annotate)
                continue
            ledger["extract"].out += 1
            ledger["annotate"].in_ += 1
            t0 = time.perf_counter()
            try:
                doc = annotator.annotate(result)
            except Exception as exc:  # one bad document must not lose the unit
                timers["annotate"] += time.perf_counter() - t0
                _reject(ledger, rejected, result, "annotate", "annotate_error", f"{type(exc).__name__}: {exc}", annotate)
                continue
            timers["annotate"] += time.perf_counter() - t0
            ledger["annotate"].out += 1
            kept.add(doc)
    for name, entry in ledger.items():
        entry.seconds = timers[name]
    return list(ledger.values())


def _reject(
    ledger: dict, writer: BatchedWriter, doc: Document, stage: str, reason: str, detail: str, pii: AnnotateConfig | None = None
) -> None:
    """Write a rejected row. With `pii` (extracted text that never reached the annotator), personal data in its text
    and title is replaced first, as in kept documents: rejected/ is read by people too."""
    doc.raw = None
    if pii is not None and pii.pii and (doc.text or doc.title):
        from corpus.annotate import redact_pii

        try:
            redact_pii(doc, pii)
        except Exception as exc:  # a text the redactor cannot handle is withheld, not written in clear
            doc.text, doc.title = "", ""
            detail = f"{detail}; text withheld, PII replacement failed: {type(exc).__name__}"[:500]
    ledger[stage].drop(reason)
    writer.add(doc.to_rejected_row(stage, reason, detail))


# --- filter ----------------------------------------------------------------------------------------------------------


def filter_unit(cfg: FilterConfig, src: Path, out_path: Path, rejected_path: Path) -> list[LedgerEntry]:
    from corpus.filters import check

    entry = LedgerEntry("filter")
    t0 = time.perf_counter()
    with document_writer(out_path) as kept, rejected_writer(rejected_path) as rejected:
        for doc in iter_documents(src):
            entry.in_ += 1
            verdict = check(doc, cfg) if cfg.enabled else None
            if verdict is None:
                entry.out += 1
                kept.add(doc)
            else:
                reason, detail = verdict
                entry.drop(reason)
                rejected.add(doc.to_rejected_row("filter", reason, detail))
    entry.seconds = time.perf_counter() - t0
    return [entry]


# --- shard -----------------------------------------------------------------------------------------------------------


def _duplicates(clusters: pa.Table) -> dict[str, tuple[str, str]]:
    mask = pc.not_equal(clusters.column("doc_id"), clusters.column("kept_id"))
    dup = clusters.filter(mask)
    return {
        d: (c, k)
        for d, c, k in zip(dup["doc_id"].to_pylist(), dup["cluster_id"].to_pylist(), dup["kept_id"].to_pylist())
    }


def split_of(doc_id: str, val_fraction: float) -> str:
    """Stable train/val assignment by hash of the id: a document never changes split between runs."""
    h = int.from_bytes(hashlib.blake2b(doc_id.encode(), digest_size=8).digest(), "big")
    return "val" if h / 2**64 < val_fraction else "train"


def shard_unit(cfg: ShardConfig, clusters_path: Path, src: Path, out_path: Path) -> list[LedgerEntry]:
    entry = LedgerEntry("shard")
    t0 = time.perf_counter()
    clusters = read_table(clusters_path)
    dropped = _duplicates(clusters)
    cluster_of = dict(zip(clusters["doc_id"].to_pylist(), clusters["cluster_id"].to_pylist()))
    with document_writer(out_path) as out:
        for doc in iter_documents(src):
            if doc.id in dropped:
                continue
            entry.in_ += 1
            doc.cluster_id = cluster_of.get(doc.id, "")
            doc.split = split_of(doc.id, cfg.val_fraction)
            entry.out += 1
            out.add(doc)
    entry.seconds = time.perf_counter() - t0
    return [entry]
