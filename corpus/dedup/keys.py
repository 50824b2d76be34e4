"""Per-unit dedup keys: one row per document with its exact key, URL key, length and MinHash signature.

A key file is an Arrow stream whose schema metadata names the signature parameters (`MinHasher.params`); the global
step (`corpus.dedup.clusters`) and the persistent index (`corpus.dedup.index`) refuse files made with other ones.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from corpus.config import DedupConfig
from corpus.dedup.exact import canonical_batch, exact_keys, url_key
from corpus.dedup.minhash import MinHasher
from corpus.shards import kept_batches

GROUP_CHARS = 256_000  # characters hashed at once: the batch arrays stay in cache (10-15% faster than 2M here)
BATCH_ROWS = 8192  # rows per record batch of a key file (few large batches make reading them back cheap)


def keys_schema(hasher: MinHasher) -> pa.Schema:
    return pa.schema(
        [
            ("doc_id", pa.string()),
            ("text_key", pa.binary(16)),  # blake2b of the normalized text
            ("url_key", pa.uint64()),  # of the normalized URL; 0: no URL
            ("n_chars", pa.int64()),  # characters of the text as extracted (keep-longest)
            ("n_shingles", pa.int32()),  # 0: no signature (empty text), never banded
            ("signature", pa.list_(pa.uint32(), hasher.num_perm)),
        ],
        metadata=hasher.params,
    )


def keys_unit(cfg: DedupConfig, src: Path, out_path: Path, keep_mask: Path | None = None) -> int:
    """Write the dedup keys of one document shard (the rows its keep mask marks) to `out_path`, in document order;
    returns the rows written."""
    hasher = MinHasher.from_config(cfg)
    schema = keys_schema(hasher)
    rows, pending = 0, []
    with pa.OSFile(str(out_path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for ids, texts, urls in _document_groups(src, keep_mask):
            pending.append(key_batch(hasher, schema, ids, texts, urls))
            if sum(b.num_rows for b in pending) >= BATCH_ROWS:
                writer.write_table(pa.Table.from_batches(pending).combine_chunks())
                rows += sum(b.num_rows for b in pending)
                pending = []
        if pending:
            writer.write_table(pa.Table.from_batches(pending).combine_chunks())
            rows += sum(b.num_rows for b in pending)
    return rows


def key_batch(
    hasher: MinHasher, schema: pa.Schema, ids: list[str], texts: list[str], urls: list[str]
) -> pa.RecordBatch:
    """Keys of one group of documents (one canonical batch)."""
    batch = canonical_batch(texts)
    signatures, n_shingles = hasher.signatures(batch)  # (D, P), (D,)
    columns = [
        pa.array(ids, pa.string()),
        pa.array(exact_keys(batch), pa.binary(16)),
        pa.array(np.fromiter((url_key(u) for u in urls), dtype=np.uint64, count=len(urls)), pa.uint64()),
        pa.array(np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts)), pa.int64()),
        pa.array(n_shingles, pa.int32()),
        pa.FixedSizeListArray.from_arrays(pa.array(signatures.ravel(), pa.uint32()), hasher.num_perm),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _document_groups(src: Path, keep_mask: Path | None) -> Iterator[tuple[list[str], list[str], list[str]]]:
    """(ids, texts, urls) of consecutive documents, cut at GROUP_CHARS characters."""
    ids: list[str] = []
    texts: list[str] = []
    urls: list[str] = []
    chars = 0
    for record_batch in kept_batches(src, keep_mask, ["id", "text", "url"]):
        columns = record_batch.to_pydict()
        for doc_id, text, url in zip(columns["id"], columns["text"], columns["url"]):
            ids.append(doc_id)
            texts.append(text or "")
            urls.append(url or "")
            chars += len(texts[-1])
            if chars >= GROUP_CHARS:
                yield ids, texts, urls
                ids, texts, urls, chars = [], [], [], 0
    if ids:
        yield ids, texts, urls


def signature_params(path: Path) -> dict[str, str]:
    """The signature parameters a key file (or index part) was written with."""
    with pa.OSFile(str(path), "rb") as source:
        metadata = pa.ipc.open_stream(source).schema.metadata or {}
    return {k.decode(): v.decode() for k, v in metadata.items()}


def check_params(path: Path, hasher: MinHasher) -> None:
    found = signature_params(path)
    expected = hasher.params
    differ = {k: (found.get(k), v) for k, v in expected.items() if found.get(k) != v}
    if differ:
        listing = ", ".join(f"{k}={old} (config: {new})" for k, (old, new) in sorted(differ.items()))
        raise ValueError(
            f"{path} was written with other signature settings: {listing}. Signatures made with different settings "
            "cannot be compared: use the same dedup.num_perm/ngram/char_ngram/seed, or start a new dedup.index_path."
        )
