"""Pages served again: the extracted and annotated fields of a payload, computed once per stage attempt.

A crawl holds the same payload under many URLs (mirrors, tracking parameters, session ids, a recrawl of pages that
did not change). Extraction and annotation are functions of the payload alone (the bytes, the declared charset and
content type; the stage's config and code are fixed for an attempt), so the second copy takes the fields the first
one got instead of running trafilatura and spaCy again. The rows stay: each copy is still a document of its own,
and exact dedup decides later which one is kept, as before. Only what depends on the URL is computed again (the
date, which htmldate also reads from the URL).

The entries are files in the attempt's work folder (`RUN/.tmp-extract/work/repeats/`), so every worker of the run
sees what the others did: `KEY.text` (the extracted text and title, written as soon as extraction gives them, so
that a copy met meanwhile by another worker skips trafilatura) and `KEY.fields` (the annotated fields, written after
annotation). They go away with the attempt's temporary folder when the stage commits. A file is written whole under
its final name (temporary name, then rename); two workers writing the same payload write the same bytes. Each
process stops adding entries after `max_bytes`, so the folder stays bounded.
"""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

from corpus.atomic import atomic_path
from corpus.document import Document

MAX_BYTES_PER_PROCESS = 1 << 30
# The fields annotation sets (the text and title too: personal data is replaced in them).
ANNOTATED_FIELDS = ("text", "title", "lang", "lang_score", "signals", "terms", "keyphrases")


def payload_key(doc: Document) -> str:
    """What extraction and annotation see of a record: its payload, charset and content type."""
    digest = hashlib.sha1(doc.raw or b"")
    digest.update(f"\0{doc.charset}\0{doc.content_type}".encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


class RepeatMemo:
    """The entries of one stage attempt's payloads, shared by its workers through `folder`; `RepeatMemo(None)`
    remembers nothing (every lookup misses).

    A document's key (`Document.payload_key`) is taken by `key_of` while its payload is still there. `extracted`
    and `annotated` give a known payload's fields; `publish` stores the text extraction gave, `remember` the
    annotated fields. A document rejected by extraction leaves nothing; one rejected by annotation leaves its text,
    and its copies are annotated (and rejected) again."""

    def __init__(self, folder: Path | None, max_bytes: int = MAX_BYTES_PER_PROCESS):
        self.folder = Path(folder) if folder is not None else None
        self.max_bytes = max_bytes
        self.written = 0
        self.hits = 0

    @property
    def enabled(self) -> bool:
        return self.folder is not None

    def _path(self, key: str, suffix: str = "") -> Path:
        return self.folder / key[:2] / f"{key}{suffix}"

    def key_of(self, doc: Document) -> str:
        if self.enabled and not doc.payload_key:
            doc.payload_key = payload_key(doc)
        return doc.payload_key

    def _read(self, doc: Document, suffix: str):
        if not self.enabled or not doc.payload_key:
            return None
        try:
            return pickle.loads(self._path(doc.payload_key, suffix).read_bytes())
        except FileNotFoundError:
            return None

    def _write(self, doc: Document, suffix: str, value) -> None:
        path = self._path(doc.payload_key, suffix)
        if path.exists():
            return
        data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
        self.written += len(data)

    def _writable(self, doc: Document) -> bool:
        return self.enabled and bool(doc.payload_key) and self.written < self.max_bytes

    def extracted(self, doc: Document) -> tuple[str, str] | None:
        """(text, title) of the document's payload when a copy of it was extracted before."""
        known = self._read(doc, ".text")
        if known is not None:
            self.hits += 1
        return known

    def annotated(self, doc: Document) -> dict | None:
        """The annotated fields of the document's payload when a copy of it was annotated before."""
        return self._read(doc, ".fields")

    def publish(self, doc: Document, text: str, title: str) -> None:
        """The text and title extraction gave the document, for the copies of its payload."""
        if self._writable(doc):
            self._write(doc, ".text", (text, title))

    def remember(self, doc: Document) -> None:
        """The document's annotated fields, after its annotation succeeded."""
        if self._writable(doc):
            self._write(doc, ".fields", {name: getattr(doc, name) for name in ANNOTATED_FIELDS})
