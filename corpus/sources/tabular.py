"""Parquet files and Arrow IPC files or streams (also a `datasets` `save_to_disk` folder's data files): one
Document or Rejection per row, the columns named by `IngestConfig` (text_field, url_field, id_field,
fetched_at_field; "a.b" names a field of a struct column).

Units are row ranges cut at row-group starts (Parquet) or record-batch starts (Arrow); a Document's offset is
its row number in the file. Damage is reported with the byte offset of the row group or batch: an unreadable
Parquet row group is skipped and reading goes on with the next (each has its own offsets in the footer); an
Arrow stream cannot be resynchronised, so reading stops at the first unreadable batch. An IPC file whose footer is
missing (truncated) is read as the stream it starts with, which keeps every whole batch before the cut.

Nothing is decompressed before its size is known: a Parquet row group with a page that decompresses past
`max_record_bytes` (page headers) and a compressed Arrow batch that decompresses past `arrow_batch_limit` (buffer
prefixes) are not decoded, their rows rejected as `too_large`, and reading goes on with the next one.
"""

from __future__ import annotations

import itertools
import json
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import pyarrow as pa
import pyarrow.parquet as pq

from corpus.config import IngestConfig
from corpus.document import Document, stable_id
from corpus.safe import safe_text
from corpus.sources import InputFormat, Rejection, WorkUnit, register_format
from corpus.sources.jsonl import field_item

READ_BATCH_ROWS = 1024
PARQUET_MAGIC = b"PAR1"
_IPC_FILE_MAGIC = b"ARROW1"
_IPC_FILE_BODY = 8  # "ARROW1" and two bytes of padding, then the stream


def _report(errors: list[dict], path: str, offset: int, message: str, **extra) -> None:
    errors.append({"path": path, "offset": int(offset), "error": message, **extra})


# --- columns ---------------------------------------------------------------------------------------------------------


def _flat_types(schema: pa.Schema) -> dict[str, pa.DataType]:
    """Column name -> type, struct fields included as "parent.child" (how Table.flatten names them)."""
    types: dict[str, pa.DataType] = {}

    def visit(name: str, dtype: pa.DataType) -> None:
        types[name] = dtype
        if pa.types.is_struct(dtype):
            for child in dtype:
                visit(f"{name}.{child.name}", child.type)

    for field in schema:
        visit(field.name, field.type)
    return types


def _is_text(dtype: pa.DataType) -> bool:
    return (
        pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_binary(dtype)
        or pa.types.is_large_binary(dtype)
        or getattr(pa.types, "is_string_view", lambda _: False)(dtype)
        or getattr(pa.types, "is_binary_view", lambda _: False)(dtype)
    )


def column_mapping(schema: pa.Schema, cfg: IngestConfig) -> tuple[dict[str, str], str]:
    """({role: column} for the configured columns present, "" or why the file cannot be read).

    A missing or non-text text column is a schema error for the whole file (every row would fail the same way);
    a missing url/id/fetched_at column only means those are unknown.
    """
    types = _flat_types(schema)
    columns = safe_text(", ".join(schema.names[:20]), 1000)  # names come from the file: echoed in the ledger
    text_type = types.get(cfg.text_field)
    if text_type is None:
        return {}, f"no column {cfg.text_field!r} (columns: {columns}); set ingest.text_field to the text column"
    if not _is_text(text_type):
        return {}, f"column {cfg.text_field!r} is {text_type}, not a string (columns: {columns}); set ingest.text_field"
    mapping = {"text": cfg.text_field}
    for role, name in (("url", cfg.url_field), ("id", cfg.id_field), ("fetched_at", cfg.fetched_at_field)):
        if name and name in types:
            mapping[role] = name
    return mapping, ""


def _rows(batch: pa.RecordBatch, mapping: dict[str, str]) -> Iterator[dict]:
    """Row dicts keyed by column name, holding only the mapped columns."""
    if any(name not in batch.schema.names for name in mapping.values()):
        table = pa.Table.from_batches([batch]).flatten()
        while any(pa.types.is_struct(f.type) for f in table.schema if f.name not in mapping.values()):
            table = table.flatten()
        columns = {name: table.column(name).to_pylist() for name in mapping.values()}
    else:
        columns = {name: batch.column(name).to_pylist() for name in mapping.values()}
    names = list(columns)
    for values in zip(*columns.values()):
        yield dict(zip(names, values))


def _items(batch, mapping, path: str, first_row: int, cfg: IngestConfig) -> Iterator[Document | Rejection]:
    for i, row in enumerate(_rows(batch, mapping)):
        yield field_item(row, path, first_row + i, cfg)


# --- saved `datasets` folders ----------------------------------------------------------------------------------------


def hf_dataset_files(directory: str) -> list[str] | None:
    """Arrow files of a `datasets` `save_to_disk` folder, in order, or None when `directory` is not one.

    A Dataset folder has state.json listing its data files (other .arrow files there, such as caches, are not
    data); a DatasetDict folder has dataset_dict.json naming one such folder per split.
    """
    state = os.path.join(directory, "state.json")
    splits = os.path.join(directory, "dataset_dict.json")
    try:
        if os.path.isfile(state):
            with open(state, encoding="utf-8") as f:
                names = [item["filename"] for item in json.load(f)["_data_files"]]
            return [os.path.join(directory, name) for name in names]
        if os.path.isfile(splits):
            with open(splits, encoding="utf-8") as f:
                split_names = json.load(f)["splits"]
            return [p for split in split_names for p in hf_dataset_files(os.path.join(directory, split)) or []]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{directory!r} looks like a saved datasets folder but its metadata is unreadable: {exc}"
        ) from exc
    return None


# --- units -----------------------------------------------------------------------------------------------------------


def _row_ranges(sizes: list[tuple[int, int]], unit_bytes: int) -> list[tuple[int, int]]:
    """[start, end) row ranges of about `unit_bytes` from (rows, bytes) per row group or batch; end -1 for the last."""
    bounds, row, acc = [0], 0, 0
    for rows, nbytes in sizes:
        if acc >= unit_bytes and row > bounds[-1]:
            bounds.append(row)
            acc = 0
        row += rows
        acc += nbytes
    bounds.append(-1)
    return list(zip(bounds, bounds[1:]))


def plan_units(paths: list[str], cfg: IngestConfig, fmt: str) -> list[WorkUnit]:
    """Row ranges of about `cfg.unit_bytes` per file, cut at row-group (Parquet) or record-batch (Arrow) starts."""
    return [unit for path in paths for unit in _plan_file(path, fmt, cfg)]


def _plan_file(path: str, fmt: str, cfg: IngestConfig) -> list[WorkUnit]:
    try:
        if fmt == "parquet":
            meta = pq.read_metadata(path)
            sizes = [
                (meta.row_group(i).num_rows, meta.row_group(i).total_byte_size) for i in range(meta.num_row_groups)
            ]
        else:
            sizes = [(batch.num_rows, batch.nbytes) for _, batch in _arrow_batches(path, [], arrow_batch_limit(cfg))]
    except (pa.ArrowException, OSError, ValueError):
        sizes = []  # damaged: one unit, whose reading reports the damage
    return [WorkUnit(path, start, end, fmt) for start, end in _row_ranges(sizes, cfg.unit_bytes)]


def read_records(unit: WorkUnit, cfg: IngestConfig, errors: list[dict]) -> Iterator[Document | Rejection]:
    items = _parquet_items(unit, cfg, errors) if unit.format == "parquet" else _arrow_items(unit, cfg, errors)
    for n, item in enumerate(items):
        if cfg.max_records and n >= cfg.max_records:
            return
        yield item


# --- Parquet ---------------------------------------------------------------------------------------------------------


def _row_group_offset(meta, i: int) -> int:
    """Byte offset where row group i's data starts."""
    column = meta.row_group(i).column(0)
    starts = [o for o in (column.dictionary_page_offset, column.data_page_offset) if o is not None and o > 0]
    return min(starts) if starts else 0


# --- Parquet pages: sizes before decompression -----------------------------------------------------------------------
#
# A Parquet page is decompressed whole, and a dictionary-encoded value is copied into every row that refers to it:
# a 14 KB file holding one 400 MB value (zstd) takes 2 GB to read, whatever the batch size. The footer gives only
# column-chunk totals, but every page starts with a header (Thrift compact protocol) that states the page's
# uncompressed size; walking them costs one small read per page and decompresses nothing.

PAGE_SLACK = 1 << 20  # a page holds a record's value plus encoding overhead (and small neighbours)
DICTIONARY_BATCH_BYTES = 64 << 20  # rows per batch are cut so that dictionary values copied per row stay near this
_HEADER_PROBE = 512
_MAX_HEADER = 1 << 20  # a page header with statistics larger than this is not parsed (no guard for that chunk)


class _Compact:
    """Just enough of Thrift's compact protocol to read a PageHeader's sizes and skip the rest of it."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def _byte(self) -> int:
        value = self.data[self.pos]  # IndexError: the header goes on past the bytes read
        self.pos += 1
        return value

    def _varint(self) -> int:
        result = shift = 0
        while True:
            byte = self._byte()
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result
            shift += 7
            if shift > 70:
                raise ValueError("varint too long")

    def _zigzag(self) -> int:
        n = self._varint()
        return (n >> 1) ^ -(n & 1)

    def _skip(self, ttype: int, in_container: bool = False) -> None:
        if ttype in (1, 2):  # bool: in the field header, or a whole byte inside a list/set/map
            self.pos += 1 if in_container else 0
        elif ttype == 3:
            self.pos += 1
        elif ttype in (4, 5, 6):
            self._varint()
        elif ttype == 7:
            self.pos += 8
        elif ttype == 8:
            length = self._varint()  # read first: `self.pos += self._varint()` would add to the old position
            self.pos += length
        elif ttype in (9, 10):
            head = self._byte()
            size = head >> 4 if head >> 4 != 15 else self._varint()
            for _ in range(size):
                self._skip(head & 0x0F, True)
        elif ttype == 11:
            size = self._varint()
            if size:
                kinds = self._byte()
                for _ in range(size):
                    self._skip(kinds >> 4, True)
                    self._skip(kinds & 0x0F, True)
        elif ttype == 12:
            self.struct()
        else:
            raise ValueError(f"unknown Thrift type {ttype}")

    def struct(self) -> dict[int, int]:
        """Skip one struct; its i32 fields by field id."""
        fields: dict[int, int] = {}
        last = 0
        while True:
            head = self._byte()
            if head == 0:
                return fields
            ttype, delta = head & 0x0F, head >> 4
            field_id = last + delta if delta else self._zigzag()
            last = field_id
            if ttype == 5:
                fields[field_id] = self._zigzag()
            else:
                self._skip(ttype)


def _page_header(fd: int, pos: int) -> tuple[int, int, int, int] | None:
    """(page type, uncompressed size, compressed size, header length) of the page at `pos`, or None if unreadable."""
    probe = _HEADER_PROBE
    while probe <= _MAX_HEADER:
        data = os.pread(fd, probe, pos)
        parser = _Compact(data)
        try:
            fields = parser.struct()
        except IndexError:
            if len(data) < probe:
                return None  # the file ends inside the header
            probe *= 8
            continue
        except ValueError:
            return None
        if not {1, 2, 3} <= fields.keys():
            return None
        return fields[1], fields[2], fields[3], parser.pos
    return None


def largest_pages(fd: int, chunk) -> tuple[int, int]:
    """(largest uncompressed data page, uncompressed dictionary page or 0) of a column chunk, from its page
    headers; (-1, 0) when they cannot be read (damage the reader itself reports)."""
    start = chunk.data_page_offset
    if chunk.has_dictionary_page and chunk.dictionary_page_offset:
        start = min(start, chunk.dictionary_page_offset)
    pos, end = start, start + chunk.total_compressed_size
    largest = dictionary = 0
    while pos < end:
        header = _page_header(fd, pos)
        if header is None or header[2] < 0 or header[1] < 0:
            return -1, 0
        page_type, uncompressed, compressed, length = header
        if page_type == 2:  # DICTIONARY_PAGE
            dictionary = max(dictionary, uncompressed)
        else:
            largest = max(largest, uncompressed)
        pos += length + compressed
    return largest, dictionary


def _row_group_limits(fd: int, meta, i: int, columns: set[str], cfg: IngestConfig) -> tuple[str, int]:
    """("" or why row group i must not be decoded, rows per batch) for the columns read."""
    group = meta.row_group(i)
    batch_rows = READ_BATCH_ROWS
    for j in range(group.num_columns):
        chunk = group.column(j)
        if chunk.path_in_schema.split(".")[0] not in columns:
            continue
        largest, dictionary = largest_pages(fd, chunk)
        biggest = max(largest, dictionary)
        if biggest > cfg.max_record_bytes + PAGE_SLACK:
            return (
                f"a page of column {safe_text(chunk.path_in_schema, 100)!r} decompresses to {biggest} bytes "
                f"> max_record_bytes {cfg.max_record_bytes}"
            ), batch_rows
        if dictionary:
            batch_rows = min(batch_rows, max(1, DICTIONARY_BATCH_BYTES // dictionary))
    return "", batch_rows


def _parquet_items(unit: WorkUnit, cfg: IngestConfig, errors: list[dict]) -> Iterator[Document | Rejection]:
    path = unit.path
    try:
        # Page checksums, where the writer stored them, catch corrupt pages that would otherwise decode as garbage.
        pf = pq.ParquetFile(path, page_checksum_verification=True)
    except (pa.ArrowException, OSError) as exc:
        # Parquet keeps its schema and row-group index in the footer: without it no row can be found.
        _report(errors, path, 0, f"not a readable Parquet file (no rows can be recovered without its footer): {exc}")
        return
    with open(path, "rb") as f:
        if (
            unit.start == 0 and f.read(4) != PARQUET_MAGIC
        ):  # the reader only needs the footer's magic; the damage is still worth saying
            _report(
                errors, path, 0, "file does not start with the Parquet magic PAR1; rows read from the footer's index"
            )
    mapping, problem = column_mapping(pf.schema_arrow, cfg)
    if problem:
        if unit.start == 0:  # once per file, not once per unit
            _report(errors, path, 0, f"wrong schema: {problem}")
        return
    meta = pf.metadata
    top_level = sorted({name.split(".")[0] if name not in pf.schema_arrow.names else name for name in mapping.values()})
    first_row = 0
    for i in range(meta.num_row_groups):
        rows = meta.row_group(i).num_rows
        group_start, first_row = first_row, first_row + rows
        if group_start < unit.start:
            continue
        if unit.end >= 0 and group_start >= unit.end:
            return
        row = group_start
        with open(path, "rb") as f:
            too_large, batch_rows = _row_group_limits(f.fileno(), meta, i, set(top_level), cfg)
        if too_large:  # decoding it would hold that page in memory: its rows are rejected unread
            last = group_start + rows - 1
            _report(errors, path, _row_group_offset(meta, i), f"row group {i} (rows {group_start}-{last}) not read: {too_large}", row_group=i)
            for n in range(group_start, group_start + rows):
                doc = Document(id=stable_id(path, n), source=path, offset=n)
                yield Rejection(doc, "ingest", "too_large", f"row group {i} not decoded: {too_large}")
            continue
        try:
            for batch in pf.iter_batches(batch_size=batch_rows, row_groups=[i], columns=top_level):
                yield from _items(batch, mapping, path, row, cfg)
                row += batch.num_rows
        except (pa.ArrowException, OSError) as exc:
            lost = group_start + rows - row
            message = f"row group {i} (rows {group_start}-{group_start + rows - 1}) unreadable, {lost} rows lost: {exc}"
            _report(errors, path, _row_group_offset(meta, i), message, row_group=i)


# --- Arrow IPC: batch sizes before decompression ---------------------------------------------------------------------
#
# A record batch written with body compression (IpcWriteOptions(compression="zstd" or "lz4"), Feather's default) is
# decompressed whole, every buffer of every column, as soon as pyarrow reads it: a 20 KB zstd stream can hold an
# 800 MB value. Each compressed buffer starts with its uncompressed length, and the batch's metadata says where each
# buffer lies in the message body; reading those decompresses nothing. A batch that would decompress past the limit
# is skipped unread (its rows rejected as `too_large`); the stream goes on with the next message. Uncompressed
# batches are memory-mapped, not copied, and are read as they always were.

ARROW_BATCH_BYTES = 256 << 20  # a compressed batch decompresses to at most this (or max_record_bytes + PAGE_SLACK)
_MAX_REJECTED_ROWS = 1 << 20  # an unread batch claiming more rows than this is reported, its rows not listed one by one
_RECORD_BATCH, _DICTIONARY_BATCH = 3, 2  # MessageHeader union types (Message.fbs)


def arrow_batch_limit(cfg: IngestConfig) -> int:
    """Largest decompressed size of a compressed IPC batch that is read: a batch holds many rows, so the limit is a
    memory budget (ARROW_BATCH_BYTES), never less than one record's cap (`max_record_bytes`) plus slack."""
    return max(ARROW_BATCH_BYTES, cfg.max_record_bytes + PAGE_SLACK)


class _FlatTable:
    """One table of a FlatBuffers buffer, with just the reads that IPC message metadata needs
    (https://flatbuffers.dev/internals/; the Arrow tables are in format/Message.fbs and format/Schema.fbs).

    The buffer starts with a uint32 offset to the root table. A table starts with an int32 that, subtracted from the
    table's position, gives its vtable's: uint16 vtable size in bytes, uint16 table size, then one uint16 per field
    in declaration order (a union takes two: its type, then its value), the field's offset within the table or 0 when
    absent (the default applies). Scalars and structs are stored inline, little-endian; a table or vector field holds
    a uint32 offset forward from the field's own position; a vector is a uint32 count, then its elements.
    Out-of-range reads raise ValueError."""

    def __init__(self, data: bytes, pos: int):
        self.data, self.pos = data, pos
        self.vtable = pos - self._read("<i", pos)
        self.vtable_size = self._read("<H", self.vtable)

    @classmethod
    def root(cls, data: bytes) -> _FlatTable:
        return cls(data, cls._read_in(data, "<I", 0))

    @staticmethod
    def _read_in(data: bytes, fmt: str, pos: int) -> int:
        if pos < 0 or pos + struct.calcsize(fmt) > len(data):  # unpack_from counts a negative position from the end
            raise ValueError(f"flatbuffer read at {pos} outside {len(data)} bytes")
        return struct.unpack_from(fmt, data, pos)[0]

    def _read(self, fmt: str, pos: int) -> int:
        return self._read_in(self.data, fmt, pos)

    def _field(self, slot: int) -> int | None:
        """Position of field `slot` (0-based, in declaration order), or None when absent."""
        entry = 4 + 2 * slot
        if entry + 2 > self.vtable_size:
            return None
        offset = self._read("<H", self.vtable + entry)
        return self.pos + offset if offset else None

    def scalar(self, slot: int, fmt: str, default: int = 0) -> int:
        at = self._field(slot)
        return default if at is None else self._read(fmt, at)

    def table(self, slot: int) -> _FlatTable | None:
        at = self._field(slot)
        return None if at is None else _FlatTable(self.data, at + self._read("<I", at))

    def vector(self, slot: int, item_size: int) -> tuple[int, int]:
        """(position of the first element, count); (0, 0) when absent."""
        at = self._field(slot)
        if at is None:
            return 0, 0
        start = at + self._read("<I", at)
        count = self._read("<I", start)
        if start + 4 + count * item_size > len(self.data):
            raise ValueError(f"flatbuffer vector of {count} at {start} outside {len(self.data)} bytes")
        return start + 4, count


@dataclass(frozen=True)
class IpcBatch:
    """A record or dictionary batch message of an IPC stream, as its metadata and buffer prefixes describe it."""

    kind: str  # "record batch" or "dictionary batch"
    start: int  # byte offset of the message (its metadata) in the buffer read
    end: int  # byte offset just past its body
    num_rows: int  # as declared; checked only when the batch is read
    nbytes: int  # bytes its buffers take once decompressed (for an uncompressed batch, as stored)
    compressed: bool


def ipc_batch_layout(metadata: bytes, body: pa.Buffer) -> tuple[int, int, int, bool] | None:
    """(header type, rows, decompressed bytes of the buffers, compressed) of one IPC message, from its flatbuffer
    metadata and the first 8 bytes of each compressed buffer of its body; None when it is not a record or dictionary
    batch. ValueError when the metadata cannot be parsed.

    Message{version: short, header_type: ubyte, header: MessageHeader (union), bodyLength: long, ...};
    DictionaryBatch{id: long, data: RecordBatch, isDelta: bool}; RecordBatch{length: long, nodes: [FieldNode],
    buffers: [Buffer{offset: long, length: long}], compression: BodyCompression, ...} (Message.fbs, Schema.fbs).
    With compression (method BUFFER, the only one) every buffer of the body is, unless empty, an int64 little-endian
    uncompressed length followed by the compressed bytes, or by the bytes themselves when that length is -1
    (https://arrow.apache.org/docs/format/Columnar.html#compression). Buffers that pyarrow would reject (shorter than
    the prefix, outside the body) count as nothing: reading them fails without allocating.
    """
    message = _FlatTable.root(metadata)
    header_type = message.scalar(1, "<B")
    if header_type not in (_RECORD_BATCH, _DICTIONARY_BATCH):
        return None
    header = message.table(2)
    batch = header if header_type == _RECORD_BATCH or header is None else header.table(1)
    if batch is None:
        raise ValueError("batch message without its RecordBatch table")
    rows = batch.scalar(0, "<q")
    start, count = batch.vector(2, 16)
    compressed = batch.table(3) is not None
    total = 0
    for i in range(count):
        offset, length = struct.unpack_from("<qq", metadata, start + 16 * i)
        if not compressed:
            total += max(length, 0)
        elif length >= 8 and 0 <= offset <= body.size - 8:
            (uncompressed,) = struct.unpack_from("<q", body, offset)
            total += length - 8 if uncompressed == -1 else max(uncompressed, 0)
    return header_type, rows, total, compressed


def ipc_batches(buffer: pa.Buffer, pos: int = 0) -> Iterator[IpcBatch]:
    """The record and dictionary batches of the IPC stream in `buffer` from byte `pos` (an IPC file: its stream
    starts at 8), up to its end-of-stream marker, without decompressing any. Other messages are passed over.
    Raises pa.ArrowException for a message that cannot be framed (truncated), ValueError for unparseable metadata."""
    source = pa.BufferReader(buffer)
    source.seek(pos)
    messages = pa.ipc.MessageReader.open_stream(source)
    while True:
        start = source.tell()
        try:
            message = messages.read_next_message()
        except StopIteration:
            return
        layout = ipc_batch_layout(message.metadata.to_pybytes(), message.body or pa.py_buffer(b""))
        if layout is not None:
            header_type, rows, nbytes, compressed = layout
            kind = "record batch" if header_type == _RECORD_BATCH else "dictionary batch"
            yield IpcBatch(kind, start, source.tell(), rows, nbytes, compressed)


def _next_batches(stream: pa.Buffer, pos: int) -> list[IpcBatch] | None:
    """The messages the stream reader reads next (dictionary batches, then a record batch), or None when they cannot
    be framed: the reader then fails on them too, and reports it."""
    ahead: list[IpcBatch] = []
    try:
        for batch in ipc_batches(stream, pos):
            ahead.append(batch)
            if batch.kind == "record batch":
                break
    except (pa.ArrowException, OSError):
        return None
    return ahead


@dataclass(frozen=True)
class _Unread:
    """A record batch left compressed (too large once decompressed): what the reader knows of it."""

    schema: pa.Schema
    num_rows: int
    nbytes: int


# --- Arrow IPC -------------------------------------------------------------------------------------------------------


def _arrow_batches(
    path: str, errors: list[dict], limit: int, *, first_unit: bool = True
) -> Iterator[tuple[int, pa.RecordBatch | _Unread]]:
    """(byte offset, batch) of an IPC file or stream, memory-mapped; stops at the first unreadable batch.

    A compressed batch that would decompress to more than `limit` bytes is passed over unread: an `_Unread` in its
    place. Damage to the file as a whole (a missing footer) is reported by the first unit only."""
    buffer = pa.memory_map(path).read_buffer()
    if buffer.size == 0:
        _report(errors, path, 0, "empty file")
        return
    base, expected = 0, None
    if buffer.slice(0, len(_IPC_FILE_MAGIC)).to_pybytes() == _IPC_FILE_MAGIC:
        base = _IPC_FILE_BODY  # the file format is the stream format between a header and a footer
        try:
            expected = pa.ipc.open_file(buffer).num_record_batches
        except (pa.ArrowException, OSError) as exc:
            if first_unit:
                _report(
                    errors,
                    path,
                    buffer.size,
                    f"Arrow IPC file without a readable footer (truncated?), read as a stream: {exc}",
                )
    stream = buffer.slice(base)
    source = pa.BufferReader(stream)
    try:
        reader = pa.ipc.open_stream(source)
    except (pa.ArrowException, OSError) as exc:
        _report(errors, path, base, f"not an Arrow IPC file or stream: {exc}")
        return
    n = 0
    while expected is None or n < expected:
        offset = base + source.tell()
        try:
            ahead = _next_batches(stream, source.tell())
        except ValueError as exc:  # framed and verified by pyarrow, yet not a batch this parser can size
            _report(errors, path, offset, f"record batch {n} unreadable: metadata: {exc}")
            return
        over = [b for b in ahead or [] if b.compressed and b.nbytes > limit]
        if over:
            batch = over[0]
            size = f"decompresses to {batch.nbytes} bytes > {limit} (the limit for one Arrow batch)"
            if len(ahead) > 1 or batch.kind != "record batch":
                # the reader takes dictionaries and the batch that uses them in one step: none can be skipped alone
                where = f"{batch.kind} before record batch {n}" if batch.kind != "record batch" else f"record batch {n}"
                _report(errors, path, base + batch.start, f"{where} not read, nor any batch after it: it {size}")
                return
            source.seek(batch.end)  # the reader goes on with the next message
            yield base + batch.start, _Unread(reader.schema, max(batch.num_rows, 0), batch.nbytes)
            n += 1
            continue
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            _report(errors, path, offset, f"record batch {n} unreadable: {exc}")
            return
        yield offset, batch
        n += 1


def _arrow_items(unit: WorkUnit, cfg: IngestConfig, errors: list[dict]) -> Iterator[Document | Rejection]:
    path = unit.path
    limit = arrow_batch_limit(cfg)
    try:
        batches = _arrow_batches(path, errors, limit, first_unit=unit.start == 0)
        first = next(batches, None)
    except (pa.ArrowException, OSError) as exc:
        _report(errors, path, 0, f"not a readable Arrow file: {exc}")
        return
    if first is None:
        return
    mapping, problem = column_mapping(first[1].schema, cfg)
    if problem:
        if unit.start == 0:  # once per file, not once per unit
            _report(errors, path, 0, f"wrong schema: {problem}")
        return
    row = 0
    for n, (offset, batch) in enumerate(itertools.chain([first], batches)):
        batch_start, row = row, row + batch.num_rows
        if batch_start < unit.start:
            continue
        if unit.end >= 0 and batch_start >= unit.end:
            return
        if isinstance(batch, _Unread):  # decompressing it would hold all of it in memory: its rows are rejected unread
            why = f"it decompresses to {batch.nbytes} bytes > {limit} (the limit for one Arrow batch)"
            listed = 0 <= batch.num_rows <= _MAX_REJECTED_ROWS
            lost = "" if listed else f", {batch.num_rows} rows lost"
            _report(errors, path, offset, f"record batch {n} (rows {batch_start}-{row - 1}) not read{lost}: {why}")
            for r in range(batch_start, row) if listed else ():
                doc = Document(id=stable_id(path, r), source=path, offset=r)
                yield Rejection(doc, "ingest", "too_large", f"record batch {n} not decoded: {why}")
            continue
        try:
            # IPC reading checks neither offsets nor UTF-8; converting a batch with bad offsets could read out of
            # bounds.
            batch.validate(full=True)
        except pa.ArrowException as exc:
            message = f"record batch {n} (rows {batch_start}-{row - 1}) is invalid, {batch.num_rows} rows lost: {exc}"
            _report(errors, path, offset, message)
            continue
        yield from _items(batch, mapping, path, batch_start, cfg)


# --- registration ----------------------------------------------------------------------------------------------------

PARQUET = register_format(
    InputFormat(
        name="parquet",
        suffixes=(".parquet",),
        sniff=lambda head: head.startswith(PARQUET_MAGIC),
        sniff_proves=True,
        plan=partial(plan_units, fmt="parquet"),
        read=read_records,
    )
)
ARROW = register_format(
    InputFormat(
        name="arrow",
        suffixes=(".arrow", ".arrows", ".feather"),  # IPC file or stream: the reader tells them apart by first bytes
        # the IPC file magic, or the continuation marker a stream starts with
        sniff=lambda head: head.startswith(_IPC_FILE_MAGIC) or head.startswith(b"\xff\xff\xff\xff"),
        sniff_proves=True,
        plan=partial(plan_units, fmt="arrow"),
        read=read_records,
        folder_files=hf_dataset_files,
    )
)
