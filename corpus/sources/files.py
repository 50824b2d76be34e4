"""Trees of HTML or text files: one Document per file (offset 0, url file://..., id a hash of the path).

Files compressed with gzip or zstd (`page.html.gz`) are decompressed, up to `max_record_bytes`. The bytes are
passed on undecoded: extraction resolves the charset (meta tag, then detection) and strips NUL,
control characters and invalid sequences, as it does for web pages. A unit is a group of files
(`WorkUnit.files`) of consecutive files of one format; a file that vanished or cannot be read is a rejection
(`unreadable_file`), not an error that loses the group.
"""

from __future__ import annotations

import os
import re
import zlib
from collections.abc import Iterator
from functools import partial
from pathlib import Path

from corpus.config import IngestConfig
from corpus.document import Document, stable_id
from corpus.sources import InputFormat, Rejection, WorkUnit, compression_of, open_decompressed, register_format

STAGE = "ingest"
CONTENT_TYPES = {"html": "text/html", "text": "text/plain"}
_HTML_START = re.compile(rb"<(!doctype|html|head|body|meta|!--|\?xml)", re.IGNORECASE)


def plan_file_groups(paths: list[str], cfg: IngestConfig, fmt: str) -> list[WorkUnit]:
    """Units of at most `files_per_unit` files or about `unit_bytes` each, in input order."""
    units: list[WorkUnit] = []
    group: list[str] = []
    group_bytes = 0

    def close() -> None:
        if group:
            units.append(WorkUnit(os.path.commonpath(group) if len(group) > 1 else group[0], 0, -1, fmt, tuple(group)))

    for path in paths:
        size = os.path.getsize(path)
        if group and (len(group) >= cfg.files_per_unit or group_bytes + size > cfg.unit_bytes):
            close()
            group, group_bytes = [], 0
        group.append(path)
        group_bytes += size
    close()
    return units


def read_capped(path: str, cap: int) -> bytes:
    """At most cap + 1 bytes of the file, decompressed when it is gzip or zstd (found by its first bytes): the cap
    applies to what comes out, so a small compressed bomb cannot fill memory. A file that grew since its size was
    checked is cut at the cap too."""
    with open_decompressed(path, compression_of(path)) as stream:
        return stream.read(cap + 1)


def file_item(path: str, fmt: str, cfg: IngestConfig) -> Document | Rejection:
    doc = Document(id=stable_id(path, 0), source=path, offset=0, url=Path(path).resolve().as_uri())
    doc.content_type = CONTENT_TYPES[fmt]
    try:
        size = os.path.getsize(path)
        if size > cfg.max_record_bytes:
            return Rejection(doc, STAGE, "too_large", f"file {size} bytes > max_record_bytes {cfg.max_record_bytes}")
        doc.raw = read_capped(path, cfg.max_record_bytes)
    except (OSError, EOFError, ValueError, zlib.error) as exc:  # BadGzipFile is an OSError; EOFError: a cut stream
        return Rejection(doc, STAGE, "unreadable_file", f"{type(exc).__name__}: {exc}"[:300])
    if len(doc.raw) > cfg.max_record_bytes:
        doc.raw = None
        return Rejection(doc, STAGE, "too_large", f"file > max_record_bytes {cfg.max_record_bytes} (after decompression)")
    return doc


def read_records(unit: WorkUnit, cfg: IngestConfig, errors: list[dict]) -> Iterator[Document | Rejection]:
    files = unit.files or (unit.path,)
    for n, path in enumerate(files):
        if cfg.max_records and n >= cfg.max_records:
            return
        yield file_item(path, unit.format, cfg)


# --- registration ----------------------------------------------------------------------------------------------------


def _starts_like_html(head: bytes) -> bool:
    """A guess: the first non-blank bytes open a doctype, an html/head/body/meta tag, a comment or an XML
    declaration."""
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    return _HTML_START.match(text[:16]) is not None


HTML = register_format(
    InputFormat(
        name="html",
        # saved pages often come gzipped, as in web-extraction test sets
        suffixes=(".html.gz", ".htm.gz", ".html.zst", ".html", ".htm", ".xhtml"),
        sniff=_starts_like_html,
        plan=partial(plan_file_groups, fmt="html"),
        read=read_records,
    )
)
TEXT = register_format(
    InputFormat(
        name="text",
        suffixes=(".txt.gz", ".txt.zst", ".txt"),
        plan=partial(plan_file_groups, fmt="text"),
        read=read_records,
    )
)
