"""JSON Lines (plain, gzip or zstd): one Document or Rejection per non-blank line, with named fields.

Parsed line by line with the standard library, never with pyarrow's JSON reader or `datasets.load_dataset("json")`:
both crash the process (SIGSEGV) on a line nested 100,000 deep, where `json.loads` raises RecursionError.
Plain files are cut into newline-aligned byte ranges; a compressed file is one unit (a stream cannot be entered
in the middle), and its offsets count decompressed bytes. Compression is recognised by magic bytes, not by name.

`field_item` turns any record with named fields (a JSON object, a table row) into a Document; the tabular
reader uses it too.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Iterator
from datetime import datetime, timezone

from corpus.config import IngestConfig
from corpus.document import Document, stable_id
from corpus.sources import InputFormat, Rejection, WorkUnit, compression_of, open_decompressed, register_format
from corpus.sources.decode import strip_controls

STAGE = "ingest"
# Malformed lines are damage: each is listed under the ledger's errors (path, offset, message), as WARC damage is,
# up to this many per unit; the rest are counted in one more entry. Every one is a `malformed_json` rejection too.
MAX_LINE_ERRORS = 20
_CUT_SCAN = 1 << 16
_MISSING = object()
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _report(errors: list[dict], path: str, offset: int, message: str) -> None:
    errors.append({"path": path, "offset": int(offset), "error": message})


# --- units -----------------------------------------------------------------------------------------------------------


def plan_cuts(path: str, unit_bytes: int) -> list[int]:
    """Line starts at which to cut a plain JSONL file into ranges of about `unit_bytes`."""
    size = os.path.getsize(path)
    cuts: list[int] = []
    target = unit_bytes
    with open(path, "rb") as f:
        while target < size:
            # The cut is the start of the first line that starts at or after `target`.
            pos = target - 1
            while True:
                chunk = os.pread(f.fileno(), _CUT_SCAN, pos)
                i = chunk.find(b"\n")
                if i != -1 or not chunk:
                    break
                pos += len(chunk)
            if i == -1 or pos + i + 1 >= size:
                break
            cuts.append(pos + i + 1)
            target = cuts[-1] + unit_bytes
    return cuts


def plan_units(paths: list[str], cfg: IngestConfig) -> list[WorkUnit]:
    """Newline-aligned byte ranges of each plain file; a compressed or unreadable file is one unit."""
    units: list[WorkUnit] = []
    for path in paths:
        try:
            cuts = [] if compression_of(path) else plan_cuts(path, cfg.unit_bytes)
        except OSError:
            cuts = []  # unreadable: one unit, whose reading reports it
        bounds = [0, *cuts, -1]
        units.extend(WorkUnit(path, start, end, "jsonl") for start, end in zip(bounds, bounds[1:]))
    return units


# --- lines -----------------------------------------------------------------------------------------------------------


def iter_lines(f, start: int, end: int, max_bytes: int) -> Iterator[tuple[int, bytes | None, bool]]:
    """(offset, line without its line end, complete) per line starting in [start, end) (end -1: to the end).

    A line longer than `max_bytes` is skipped unread and given as None; `complete` is False for a last line
    without a line end (the file may be cut there).
    """
    pos = start
    while end < 0 or pos < end:
        line = f.readline(max_bytes + 2)  # room for "\r\n"
        if not line:
            return
        offset = pos
        pos += len(line)
        if not line.endswith(b"\n") and len(line) == max_bytes + 2:
            while True:  # the rest of an oversized line, read in pieces so memory stays bounded
                rest = f.readline(1 << 20)
                pos += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            yield offset, None, True
            continue
        complete = line.endswith(b"\n")
        yield offset, line.rstrip(b"\r\n"), complete


# --- records with named fields ---------------------------------------------------------------------------------------


def clean_str(value: str) -> str:
    """A string Arrow accepts: lone surrogates (from JSON escapes like "\\ud800") replaced by U+FFFD."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _LONE_SURROGATE.sub("\ufffd", value)
    return value


def lookup(record: dict, name: str):
    """record[name], or for "a.b" record["a"]["b"] when there is no field named "a.b"; _MISSING when absent."""
    if name in record:
        return record[name]
    value = record
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _id_of(value) -> str:
    """The record's own id as text; "" when it has none usable (missing, null, empty, an object)."""
    if isinstance(value, bool) or value is None or value is _MISSING:
        return ""
    if isinstance(value, (str, int, float)):
        return strip_controls(clean_str(str(value))).strip()
    return ""


def parse_time(value) -> datetime | None:
    """A fetch time from ISO 8601 text or Unix seconds (milliseconds when the number is that large); None if neither."""
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            seconds = value / 1000 if abs(value) > 1e11 else value
            return datetime.fromtimestamp(seconds, tz=timezone.utc)
        if isinstance(value, str) and value.strip():
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed.astimezone(timezone.utc)
        if isinstance(value, datetime):
            return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def field_item(record: dict, source: str, offset: int, cfg: IngestConfig) -> Document | Rejection:
    """A record with named fields to a Document holding its text as `raw` UTF-8, or a Rejection with the reason.

    Plain text is labelled text/plain, so extraction passes it through; `cfg.text_is_html` labels it text/html.
    """
    doc = Document(id=_id_of(lookup(record, cfg.id_field)) or stable_id(source, offset), source=source, offset=offset)
    url = lookup(record, cfg.url_field) if cfg.url_field else None
    if isinstance(url, str):
        doc.url = strip_controls(clean_str(url)).strip()
    if cfg.fetched_at_field:
        doc.fetched_at = parse_time(lookup(record, cfg.fetched_at_field))
    text = lookup(record, cfg.text_field)
    if text is _MISSING or text is None:
        fields = ", ".join(sorted(str(k) for k in record)[:20])
        state = "missing" if text is _MISSING else "null"
        return Rejection(doc, STAGE, "missing_field", f"field {cfg.text_field!r} is {state} (fields: {fields})"[:500])
    if isinstance(text, (bytes, bytearray, memoryview)):
        raw = bytes(text)  # a binary column: page bytes whose charset extraction finds
        doc.charset = ""
    elif isinstance(text, str):
        raw = clean_str(text).encode("utf-8")
        doc.charset = "utf-8"
    else:
        return Rejection(doc, STAGE, "wrong_type", f"field {cfg.text_field!r} is {type(text).__name__}, not a string")
    if len(raw) > cfg.max_record_bytes:
        return Rejection(doc, STAGE, "too_large", f"text {len(raw)} bytes > max_record_bytes {cfg.max_record_bytes}")
    doc.raw = raw
    doc.content_type = "text/html" if cfg.text_is_html else "text/plain"
    return doc


# --- lines to records ------------------------------------------------------------------------------------------------


def _line_item(line: bytes, path: str, offset: int, cfg: IngestConfig) -> tuple[Document | Rejection, bool]:
    """(item, whether the line had invalid UTF-8) for one non-blank line."""
    try:
        text, bad_utf8 = line.decode("utf-8"), False
    except UnicodeDecodeError:
        text, bad_utf8 = line.decode("utf-8", "replace"), True
    if offset == 0:
        text = text.removeprefix("\ufeff")
    try:
        record = json.loads(text)
    except RecursionError:
        return _malformed(path, offset, "nested deeper than the parser allows"), bad_utf8
    except ValueError as exc:
        return _malformed(path, offset, str(exc)), bad_utf8
    if not isinstance(record, dict):
        doc = Document(id=stable_id(path, offset), source=path, offset=offset)
        return Rejection(doc, STAGE, "wrong_type", f"line is a JSON {type(record).__name__}, not an object"), bad_utf8
    return field_item(record, path, offset, cfg), bad_utf8


def _malformed(path: str, offset: int, message: str) -> Rejection:
    return Rejection(
        Document(id=stable_id(path, offset), source=path, offset=offset), STAGE, "malformed_json", message[:300]
    )


def read_records(unit: WorkUnit, cfg: IngestConfig, errors: list[dict]) -> Iterator[Document | Rejection]:
    """One Document or Rejection per non-blank line starting in the unit's byte range."""
    path = unit.path
    try:
        if os.path.getsize(path) == 0:
            _report(errors, path, 0, "empty file")
            return
        compression = compression_of(path)
        f = open_decompressed(path, compression)
    except OSError as exc:
        _report(errors, path, 0, f"cannot open: {exc}")
        return
    n = bad_utf8_lines = malformed = 0
    first_bad = first_unlisted = -1
    seen_record = False
    offset = unit.start
    with f:
        try:
            if unit.start:
                f.seek(unit.start)
            for offset, line, complete in iter_lines(f, unit.start, unit.end, cfg.max_record_bytes):
                if line is not None and not line.strip():
                    continue
                seen_record = True
                if cfg.max_records and n >= cfg.max_records:
                    return
                n += 1
                if line is None:
                    doc = Document(id=stable_id(path, offset), source=path, offset=offset)
                    yield Rejection(
                        doc, STAGE, "too_large", f"line longer than max_record_bytes {cfg.max_record_bytes}"
                    )
                    continue
                item, bad = _line_item(line, path, offset, cfg)
                if bad:
                    bad_utf8_lines += 1
                    first_bad = first_bad if first_bad >= 0 else offset
                if isinstance(item, Rejection) and item.reason == "malformed_json":
                    if not complete:
                        _report(errors, path, offset, "file ends inside a record (truncated?)")
                    elif malformed < MAX_LINE_ERRORS:
                        _report(errors, path, offset, f"malformed JSON line: {item.detail}")
                    elif malformed == MAX_LINE_ERRORS:
                        first_unlisted = offset
                    malformed += complete
                yield item
        except (OSError, EOFError, zlib.error) as exc:
            where = f"{compression} stream" if compression else "file"
            _report(errors, path, offset, f"{where} unreadable after the record at {offset}: {exc}")
        finally:
            if malformed > MAX_LINE_ERRORS:
                more = malformed - MAX_LINE_ERRORS
                _report(errors, path, first_unlisted, f"{more} more malformed JSON line(s), the first at {first_unlisted}")
            if bad_utf8_lines:
                message = (
                    f"{bad_utf8_lines} line(s) with invalid UTF-8, read with U+FFFD replacements (first at {first_bad})"
                )
                _report(errors, path, first_bad, message)
    if not seen_record and unit.start == 0 and unit.end < 0:
        _report(errors, path, 0, "no records: the file holds only blank lines")


# --- registration ----------------------------------------------------------------------------------------------------


def _starts_like_jsonl(head: bytes) -> bool:
    """A guess: the first non-blank byte opens a JSON object."""
    return head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(b"{")


JSONL = register_format(
    InputFormat(
        name="jsonl",
        # .json.gz: JSON Lines under a .json.gz name, as C4 and many dumps ship it
        suffixes=(".jsonl.gz", ".jsonl.zst", ".json.gz", ".json.zst", ".ndjson.gz", ".ndjson", ".jsonl"),
        sniff=_starts_like_jsonl,
        plan=plan_units,
        read=read_records,
    )
)
