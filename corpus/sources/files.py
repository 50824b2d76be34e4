"""Trees of HTML or text files: one Document per file (offset 0, url file://..., id a hash of the path).

Files compressed with gzip or zstd (`page.html.gz`) are decompressed, up to `max_record_bytes`. The bytes are
passed on undecoded: extraction resolves the charset (meta tag, then detection) and strips NUL,
control characters and invalid sequences, as it does for web pages. A unit is a group of files
(`WorkUnit.files`); a file that vanished or cannot be read is a rejection (`unreadable_file`), not an error
that loses the group.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from pathlib import Path

from corpus.config import IngestConfig
from corpus.document import Document, stable_id
from corpus.sources import Rejection, WorkUnit, compression_of, open_decompressed

STAGE = "ingest"
CONTENT_TYPES = {"html": "text/html", "text": "text/plain"}


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
