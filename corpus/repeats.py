"""Pages served again: the extracted and annotated fields of a payload, computed once per stage attempt.

A crawl holds the same payload under many URLs (mirrors, tracking parameters, session ids, a recrawl of pages that
did not change). Extraction and annotation are functions of the payload alone (the bytes, the declared charset and
content type; the stage's config and code are fixed for an attempt), so the second copy takes the fields the first
one got instead of running trafilatura and spaCy again. The rows stay: each copy is still a document of its own,
and exact dedup decides later which one is kept, as before. Only what depends on the URL is computed again (the
date, which htmldate also reads from the URL).

The entries are files in the attempt's work folder (`RUN/.tmp-extract/work/repeats/`), so every worker of the run
sees what the others extracted; they go away with the attempt's temporary folder when the stage commits. A file is
written whole under its final name (temporary name, then rename); two workers writing the same payload write the
same bytes. Each process stops adding entries after `max_bytes`, so the folder stays bounded.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

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
    """`extracted(doc)` -> (text, title) of a payload seen before, else None; `annotated(doc)` -> its annotated
    fields; `remember(doc, text, title)` after a document's annotation succeeded. Keyed by `payload_key`, taken
    from the record's payload before extraction frees it."""

    def __init__(self, folder: Path, max_bytes: int = MAX_BYTES_PER_PROCESS):
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.written = 0
        self.hits = 0
        self._keys: dict[str, str] = {}  # document id -> payload key, from extraction until annotation
        self._entries: dict[str, dict] = {}  # document id -> entry found at extraction, until annotation

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / key

    def extracted(self, doc: Document) -> tuple[str, str] | None:
        key = payload_key(doc)
        self._keys[doc.id] = key
        try:
            entry = pickle.loads(self._path(key).read_bytes())
        except FileNotFoundError:
            return None
        self._entries[doc.id] = entry
        self.hits += 1
        return entry["extracted"]

    def annotated(self, doc: Document) -> dict | None:
        entry = self._entries.pop(doc.id, None)
        if entry is None:
            return None
        self._keys.pop(doc.id, None)  # known already: nothing to remember
        return entry["annotated"]

    def forget(self, doc: Document) -> None:
        """The document was rejected: nothing of it is kept."""
        self._keys.pop(doc.id, None)
        self._entries.pop(doc.id, None)

    def remember(self, doc: Document, extracted_text: str, extracted_title: str) -> None:
        key = self._keys.pop(doc.id, None)
        if key is None or self.written >= self.max_bytes:
            return
        path = self._path(key)
        if path.exists():
            return
        entry = {
            "extracted": (extracted_text, extracted_title),
            "annotated": {name: getattr(doc, name) for name in ANNOTATED_FIELDS},
        }
        data = pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".tmp-{key}-{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        self.written += len(data)
