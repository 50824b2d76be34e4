"""Arrow IPC stream shards: written the way HF `datasets` writes them, read memory-mapped (DESIGN.md section 4)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from corpus.document import REJECTED_SCHEMA, REJECTED_TEXT_PREFIX

WRITE_BATCH = 128


def write_stream(path: Path, schema: pa.Schema, batches: Iterable[pa.RecordBatch | pa.Table]) -> int:
    """Write batches to an Arrow IPC stream file; returns the number of rows written."""
    rows = 0
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for batch in batches:
            if isinstance(batch, pa.Table):
                batch = batch.cast(schema) if batch.schema != schema else batch
                writer.write_table(batch)
            else:
                writer.write_batch(batch)
            rows += batch.num_rows
    return rows


def write_table(path: Path, table: pa.Table) -> int:
    return write_stream(path, table.schema, [table])


def open_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """Stream record batches from one shard, memory-mapped (no copy of the buffers)."""
    with pa.memory_map(str(path), "r") as source:
        reader = pa.ipc.open_stream(source)
        yield from reader


def read_table(path: Path, columns: list[str] | None = None) -> pa.Table:
    with pa.memory_map(str(path), "r") as source:
        table = pa.ipc.open_stream(source).read_all()
    return table.select(columns) if columns else table


def read_schema(path: Path) -> pa.Schema:
    with pa.memory_map(str(path), "r") as source:
        return pa.ipc.open_stream(source).schema


def iter_rows(paths: Iterable[Path], columns: list[str] | None = None) -> Iterator[dict]:
    for path in paths:
        for batch in open_batches(path):
            if columns:
                batch = batch.select(columns)
            yield from batch.to_pylist()


def count_rows(path: Path) -> int:
    return sum(batch.num_rows for batch in open_batches(path))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


class BatchedWriter:
    """Stream rows to one Arrow file in batches, so memory is bounded by the batch, not the unit."""

    def __init__(self, path: Path, schema: pa.Schema, to_table: Callable[[list], pa.Table]):
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


# --- keep masks: a stage that only decides keeps one boolean per upstream row instead of a copy of the rows ------

KEEP_SCHEMA = pa.schema([("keep", pa.bool_())])


def read_keep_mask(path: Path) -> pa.BooleanArray:
    return read_table(path).column("keep").combine_chunks()


def kept_batches(path: Path, keep_mask: Path | None, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The record batches of a shard holding only the rows its keep mask marks (every row without a mask)."""
    mask = read_keep_mask(keep_mask) if keep_mask is not None else None
    offset = 0
    for batch in open_batches(path):
        rows = batch.num_rows
        if columns:
            batch = batch.select(columns)
        if mask is not None:
            batch = batch.filter(mask.slice(offset, rows))
        offset += rows
        yield batch
    if mask is not None and offset != len(mask):
        raise ValueError(f"{keep_mask} has {len(mask)} rows for the {offset} of {path}: the two were not made together")


def rejected_rows(
    documents: pa.Table | pa.RecordBatch,
    stage: str,
    reason: str | pa.Array,
    detail: str | pa.Array,
    kept_id: pa.Array | None = None,
) -> pa.Table:
    """Rejected rows (REJECTED_SCHEMA) of document rows, in Arrow: the document columns with text and terms cut to
    their first REJECTED_TEXT_PREFIX characters, plus the stage, the reason and what fired."""
    n = documents.num_rows

    def column(value, type_=pa.string()):
        return pa.array([value] * n, type_) if isinstance(value, str) or value is None else value.cast(type_)

    columns = []
    for field in REJECTED_SCHEMA:
        if field.name in ("text", "terms"):
            columns.append(pc.utf8_slice_codeunits(documents.column(field.name), 0, REJECTED_TEXT_PREFIX))
        elif field.name == "stage":
            columns.append(column(stage))
        elif field.name == "reason":
            columns.append(column(reason))
        elif field.name == "detail":
            columns.append(column(detail))
        elif field.name == "kept_id":
            columns.append(column(kept_id))
        else:
            columns.append(documents.column(field.name))
    return pa.Table.from_arrays([pa.chunked_array([c]) if isinstance(c, pa.Array) else c for c in columns], schema=REJECTED_SCHEMA)
