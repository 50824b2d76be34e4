"""Parquet files and Arrow IPC files or streams (also a `datasets` `save_to_disk` folder's data files): one
Document or Rejection per row, the columns named by `IngestConfig` (text_field, url_field, id_field,
fetched_at_field; "a.b" names a field of a struct column).

Units are row ranges cut at row-group starts (Parquet) or record-batch starts (Arrow); a Document's offset is
its row number in the file. Damage is reported with the byte offset of the row group or batch: an unreadable
Parquet row group is skipped and reading goes on with the next (each has its own offsets in the footer); an
Arrow stream cannot be resynchronised, so reading stops at the first unreadable batch. An IPC file whose footer is
missing (truncated) is read as the stream it starts with, which keeps every whole batch before the cut.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Iterator
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
            sizes = [(batch.num_rows, batch.nbytes) for _, batch in _arrow_batches(path, [])]
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


# --- Arrow IPC -------------------------------------------------------------------------------------------------------


def _arrow_batches(path: str, errors: list[dict], *, first_unit: bool = True) -> Iterator[tuple[int, pa.RecordBatch]]:
    """(byte offset, batch) of an IPC file or stream, memory-mapped; stops at the first unreadable batch.

    Damage to the file as a whole (a missing footer) is reported by the first unit only."""
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
    source = pa.BufferReader(buffer.slice(base))
    try:
        reader = pa.ipc.open_stream(source)
    except (pa.ArrowException, OSError) as exc:
        _report(errors, path, base, f"not an Arrow IPC file or stream: {exc}")
        return
    n = 0
    while expected is None or n < expected:
        offset = base + source.tell()
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
    try:
        batches = _arrow_batches(path, errors, first_unit=unit.start == 0)
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
