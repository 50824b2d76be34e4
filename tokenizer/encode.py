"""Encode document shards into token shards, and read a token shard back as one zero-copy token stream.

A token shard (`tokens/{train,val}/<shard>.arrow`, Arrow IPC stream) has one row per document: `doc_id` and
`input_ids` (the document's tokens followed by EOS). Each file holds a single record batch, so the values buffer of
`input_ids` is one contiguous run of tokens in the file: the stream a trainer memory-maps and cuts windows from.
"""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpus.atomic import atomic_path
from corpus.document import tokens_schema
from corpus.shards import open_batches, sha256_file
from tokenizer.config import TokensConfig
from tokenizer.train import EOS_TOKEN, MAX_CHUNK_CHARS, chunk_text

SPLITS = ("train", "val")


def _allow_tokenizer_threads() -> None:
    """Let encode_batch use its Rust threads, unless the caller has already chosen.

    Unset, tokenizers switches its thread pool off (with a warning) in a child forked after the parent used it;
    set, the setting is obeyed as is. We set "true" only when unset: our pools spawn rather than fork (STYLE.md
    rule 7), so no child inherits a thread pool that was already running.
    """
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime_ns: int, size: int):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(path)
    # Text that happens to contain "<|endoftext|>" is encoded as ordinary text: a web page must not be able to
    # forge a document boundary (or a pad/mask id) in the token stream.
    tokenizer.encode_special_tokens = True
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def load_tokenizer(tokenizer_dir: Path):
    """The `tokenizers.Tokenizer` in `tokenizer_dir/tokenizer.json`, loaded once per process (reloaded if the file
    changes). Special-token strings inside texts are encoded as plain text (see `_load`)."""
    _allow_tokenizer_threads()
    path = Path(tokenizer_dir) / "tokenizer.json"
    stat = path.stat()
    return _load(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _sha256(path: str, mtime_ns: int, size: int) -> str:
    return sha256_file(Path(path))


def tokenizer_sha256(tokenizer_dir: Path) -> str:
    path = Path(tokenizer_dir) / "tokenizer.json"
    stat = path.stat()
    return _sha256(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


@dataclass
class _SplitBuffer:
    """Token arrays of one split, gathered until the shard is done and then written as a single record batch."""

    dtype: np.dtype
    doc_ids: list[pa.Array] = field(default_factory=list)
    tokens: list[np.ndarray] = field(default_factory=list)
    lengths: list[np.ndarray] = field(default_factory=list)

    def add(self, doc_ids: pa.Array, ids_lists: list[list[int]], eos_id: int) -> None:
        for ids in ids_lists:
            ids.append(eos_id)  # in place: EOS after every document, no second copy of the list
        lengths = np.fromiter(map(len, ids_lists), dtype=np.int64, count=len(ids_lists))
        # One C-level pass over every id of the batch; no per-token Python code. An id that does not fit the
        # dtype raises OverflowError rather than wrapping around.
        flat = np.fromiter(itertools.chain.from_iterable(ids_lists), dtype=self.dtype, count=int(lengths.sum()))
        self.doc_ids.append(doc_ids)
        self.tokens.append(flat)
        self.lengths.append(lengths)

    @property
    def n_docs(self) -> int:
        return sum(len(a) for a in self.lengths)

    @property
    def n_tokens(self) -> int:
        return sum(int(a.sum()) for a in self.lengths)

    def table(self, schema: pa.Schema) -> pa.Table:
        lengths = np.concatenate(self.lengths) if self.lengths else np.zeros(0, dtype=np.int64)
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)  # (n_docs + 1,) start of each document
        np.cumsum(lengths, out=offsets[1:])
        values = np.concatenate(self.tokens) if self.tokens else np.zeros(0, dtype=self.dtype)
        input_ids = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values))
        doc_ids = pa.concat_arrays(self.doc_ids) if self.doc_ids else pa.array([], pa.string())
        return pa.Table.from_arrays([doc_ids, input_ids], schema=schema)


def encode_texts(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text (no special tokens added), in order.

    A text longer than MAX_CHUNK_CHARS (1M characters) is encoded piece by piece, cut just before whitespace where
    there is some (`chunk_text`, as for training), and the pieces' ids joined: the tokenizer holds 120-250x the
    longest string it is given (DESIGN.md section 9), so one 50 MB text would take gigabytes. Cutting before
    whitespace keeps the byte-level pre-tokens whole, so the ids are those of the whole text unless a window of
    1M characters has no whitespace at all. Shorter texts go through one `encode_batch` call as before.
    """
    if all(len(text) <= MAX_CHUNK_CHARS for text in texts):
        encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
        return [encoding.ids for encoding in encodings]  # the Encoding objects hold ~30x the text; keep the ids
    short = [i for i, text in enumerate(texts) if len(text) <= MAX_CHUNK_CHARS]
    ids_lists: list[list[int]] = [[] for _ in texts]
    if short:
        for i, ids in zip(short, encode_texts(tokenizer, [texts[i] for i in short])):
            ids_lists[i] = ids
    for i, text in enumerate(texts):
        if len(text) > MAX_CHUNK_CHARS:
            for piece in chunk_text(text):  # one piece at a time: memory bounded by the piece
                ids_lists[i].extend(tokenizer.encode(piece, add_special_tokens=False).ids)
    return ids_lists


def _document_groups(src: Path, column: str, cfg: TokensConfig) -> Iterator[list[pa.RecordBatch]]:
    """Slices of the shard's record batches, each group at most `cfg.batch_docs` documents and (unless a single
    document is larger) `cfg.batch_bytes` bytes of text: one encode_batch call per group."""
    group: list[pa.RecordBatch] = []
    docs = size = 0
    for batch in open_batches(src):
        sizes = pc.fill_null(pc.binary_length(batch.column(column)), 0).to_numpy()
        start = 0
        for row, n in enumerate(sizes.tolist()):
            if docs and (docs == cfg.batch_docs or size + n > cfg.batch_bytes):
                group.append(batch.slice(start, row - start))
                yield [b for b in group if b.num_rows]
                group, docs, size, start = [], 0, 0, row
            docs += 1
            size += n
        group.append(batch.slice(start))
    if docs:
        yield [b for b in group if b.num_rows]


def _is_val(batch: pa.RecordBatch) -> np.ndarray:
    """Rows of the val split; anything else (train, or no split column) goes to train."""
    if "split" not in batch.schema.names:
        return np.zeros(batch.num_rows, dtype=bool)
    return pc.fill_null(pc.equal(batch.column("split"), "val"), False).to_numpy(zero_copy_only=False)


def _write_atomically(path: Path, table: pa.Table) -> None:
    """Write next to the target and rename, so a killed run never leaves a half-written shard under its name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)


def encode_shard(tokenizer_dir: Path, src: Path, dst_dir: Path, cfg: TokensConfig, column: str = "text") -> dict:
    """Encode one documents shard into `dst_dir/train/<stem>.arrow` and `dst_dir/val/<stem>.arrow`.

    Every document with text becomes one row whose ids end with EOS; one without text (or whose text encodes to no
    token) is left out and counted, since it would only add an EOS. Both files are always written, empty or not.
    Returns {"docs": {"train": n, "val": n}, "tokens": {"train": n, "val": n}, "empty": n}, tokens counting the
    EOS ids.
    """
    src, dst_dir = Path(src), Path(dst_dir)
    tokenizer = load_tokenizer(tokenizer_dir)
    eos_id = tokenizer.token_to_id(EOS_TOKEN)
    if eos_id is None:
        raise ValueError(f"{tokenizer_dir}/tokenizer.json has no {EOS_TOKEN} token; train it with tokenizer.train")
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    schema = tokens_schema(vocab_size, tokenizer_sha256=tokenizer_sha256(tokenizer_dir), eos_id=eos_id)
    dtype = np.dtype(schema.metadata[b"dtype"].decode())
    buffers = {split: _SplitBuffer(dtype) for split in SPLITS}
    empty = 0

    for group in _document_groups(src, column, cfg):
        texts = [text or "" for batch in group for text in batch.column(column).to_pylist()]
        ids_lists = encode_texts(tokenizer, texts)
        doc_ids = pa.concat_arrays([batch.column("id") for batch in group])
        is_val = np.concatenate([_is_val(batch) for batch in group])
        has_tokens = np.fromiter(map(bool, ids_lists), dtype=bool, count=len(ids_lists))
        empty += int((~has_tokens).sum())
        for split, rows in (("train", np.flatnonzero(~is_val & has_tokens)), ("val", np.flatnonzero(is_val & has_tokens))):
            if len(rows):
                buffers[split].add(doc_ids.take(pa.array(rows)), [ids_lists[i] for i in rows], eos_id)

    for split, buffer in buffers.items():
        _write_atomically(dst_dir / split / f"{src.stem}.arrow", buffer.table(schema))
    return {
        "docs": {split: buffers[split].n_docs for split in SPLITS},
        "tokens": {split: buffers[split].n_tokens for split in SPLITS},
        "empty": empty,
    }


def token_stream(path: Path) -> np.ndarray:
    """All tokens of one token shard, documents end to end (EOS-separated), as a read-only numpy array.

    Zero copy: the array is a view into the memory-mapped file (the map stays open while the array lives), so
    opening a shard costs no memory until pages are read. Files written by `encode_shard` hold one record batch;
    a file with several batches (written by other tools) is stitched together, which copies.
    """
    reader = pa.ipc.open_stream(pa.memory_map(str(path), "r"))
    value_type = reader.schema.field("input_ids").type.value_type
    parts = []
    for batch in reader:
        input_ids = batch.column("input_ids")
        if len(input_ids) == 0:
            continue
        # Offsets bound the values this batch's rows use (a sliced array may carry more).
        first, last = input_ids.offsets[0].as_py(), input_ids.offsets[-1].as_py()
        parts.append(input_ids.values.slice(first, last - first).to_numpy(zero_copy_only=True))
    if not parts:
        return np.zeros(0, dtype=value_type.to_pandas_dtype())
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
