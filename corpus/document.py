"""The one record type that crosses every stage, and the Arrow schemas of the run directory (DESIGN.md section 4).

A `Document` starts life in a source reader holding `raw` payload bytes with provenance; extraction fills `text`,
annotation fills `lang`, `signals`, `terms` and `keyphrases`; `raw` is never written to Arrow.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa

from corpus import families as signal_families

KEYPHRASES_TYPE = pa.list_(pa.struct([("phrase", pa.string()), ("score", pa.float32())]))

# Quality signals, one struct field each: the fields of every signal family (corpus/families/: Gopher quality and
# repetition, C4, FineWeb, PII counts, then any family registered by an entry point), in registration order.
# Annotators must produce exactly these keys (missing ones become null). The lists are updated in place and the
# schemas rebuilt when a family is registered at run time; `_derive_signal_schemas` below fills them.
SIGNAL_FIELDS: list[tuple[str, pa.DataType]] = []
SIGNAL_NAMES: list[str] = []
SIGNALS_TYPE: pa.StructType
DOCUMENT_SCHEMA: pa.Schema
REJECTED_SCHEMA: pa.Schema


def _document_schema(signals_type: pa.StructType) -> pa.Schema:
    return pa.schema(
        [
            ("id", pa.string()),
            ("url", pa.string()),
            ("source", pa.string()),
            ("offset", pa.int64()),
            ("fetched_at", pa.timestamp("s", tz="UTC")),
            ("title", pa.string()),
            ("date", pa.string()),
            ("text", pa.large_string()),
            ("lang", pa.string()),
            ("lang_score", pa.float32()),
            ("signals", signals_type),
            ("terms", pa.large_string()),
            ("keyphrases", KEYPHRASES_TYPE),
            ("cluster_id", pa.string()),
            ("split", pa.string()),
        ]
    )


def _rejected_schema(document_schema: pa.Schema) -> pa.Schema:
    return pa.schema(
        list(document_schema)
        + [
            pa.field("stage", pa.string()),
            pa.field("reason", pa.string()),
            pa.field("detail", pa.string()),
            pa.field("kept_id", pa.string()),
        ]
    )


def _derive_signal_schemas() -> None:
    global SIGNALS_TYPE, DOCUMENT_SCHEMA, REJECTED_SCHEMA
    SIGNAL_FIELDS[:] = signal_families.signal_fields()
    SIGNAL_NAMES[:] = [name for name, _ in SIGNAL_FIELDS]
    SIGNALS_TYPE = pa.struct(SIGNAL_FIELDS)
    DOCUMENT_SCHEMA = _document_schema(SIGNALS_TYPE)
    REJECTED_SCHEMA = _rejected_schema(DOCUMENT_SCHEMA)


_derive_signal_schemas()
signal_families.on_change(_derive_signal_schemas)

CLUSTERS_SCHEMA = pa.schema(
    [("doc_id", pa.string()), ("cluster_id", pa.string()), ("kept_id", pa.string()), ("jaccard", pa.float32())]
)

# Rejected rows carry only a prefix of the text: enough to see what was dropped, bounded in size.
REJECTED_TEXT_PREFIX = 1000


def tokens_schema(vocab_size: int, *, tokenizer_sha256: str, eos_id: int) -> pa.Schema:
    """Token shard schema: uint16 ids while the vocabulary fits, uint32 beyond 65,535."""
    dtype = "uint16" if vocab_size <= 65535 else "uint32"
    value_type = pa.uint16() if dtype == "uint16" else pa.uint32()
    metadata = {
        "tokenizer_sha256": tokenizer_sha256,
        "vocab_size": str(vocab_size),
        "eos_id": str(eos_id),
        "dtype": dtype,
    }
    return pa.schema([("doc_id", pa.string()), ("input_ids", pa.large_list(value_type))], metadata=metadata)


def stable_id(source: str, offset: int) -> str:
    """Id for inputs that carry none of their own: a hash of where the record came from, never random."""
    return hashlib.sha1(f"{source}\x00{offset}".encode()).hexdigest()


@dataclass(slots=True)
class Document:
    id: str
    source: str
    offset: int
    url: str = ""
    fetched_at: datetime | None = None
    title: str = ""
    date: str = ""
    text: str = ""
    lang: str = ""
    lang_score: float = 0.0
    signals: dict = field(default_factory=dict)
    terms: str = ""
    keyphrases: list[tuple[str, float]] = field(default_factory=list)
    cluster_id: str = ""
    split: str = ""
    # Source payload and HTTP metadata, present until extraction; never written to Arrow.
    raw: bytes | None = None
    content_type: str = ""
    charset: str = ""
    payload_key: str = ""  # the payload's key in the stage's repeated payloads (corpus.repeats), while it is set

    def to_row(self) -> dict:
        return {
            "id": self.id,
            "url": self.url,
            "source": self.source,
            "offset": self.offset,
            "fetched_at": self.fetched_at,
            "title": self.title,
            "date": self.date,
            "text": self.text,
            "lang": self.lang,
            "lang_score": self.lang_score,
            "signals": {name: self.signals.get(name) for name in SIGNAL_NAMES} if self.signals else None,
            "terms": self.terms,
            "keyphrases": [{"phrase": p, "score": s} for p, s in self.keyphrases],
            "cluster_id": self.cluster_id or None,
            "split": self.split or None,
        }

    def to_rejected_row(self, stage: str, reason: str, detail: str = "", kept_id: str = "") -> dict:
        row = self.to_row()
        row["text"] = self.text[:REJECTED_TEXT_PREFIX]
        row["terms"] = self.terms[:REJECTED_TEXT_PREFIX]
        row.update(stage=stage, reason=reason, detail=detail, kept_id=kept_id or None)
        return row

    @classmethod
    def from_row(cls, row: dict) -> Document:
        return cls(
            id=row["id"],
            source=row["source"],
            offset=row["offset"],
            url=row.get("url") or "",
            fetched_at=row.get("fetched_at"),
            title=row.get("title") or "",
            date=row.get("date") or "",
            text=row.get("text") or "",
            lang=row.get("lang") or "",
            lang_score=row.get("lang_score") or 0.0,
            signals=row.get("signals") or {},
            terms=row.get("terms") or "",
            keyphrases=[(k["phrase"], k["score"]) for k in row.get("keyphrases") or []],
            cluster_id=row.get("cluster_id") or "",
            split=row.get("split") or "",
        )


def documents_to_table(docs: list[Document]) -> pa.Table:
    return pa.Table.from_pylist([d.to_row() for d in docs], schema=DOCUMENT_SCHEMA)


def rejected_table(rows: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(rows, schema=REJECTED_SCHEMA)
