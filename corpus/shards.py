"""Arrow IPC stream shards: written the way HF `datasets` writes them, read memory-mapped (DESIGN.md section 4)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa


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
