"""Token shards to the files other trainers read: nanoGPT's `train.bin`/`val.bin` and Megatron-LM's `.bin`/`.idx`.

Both formats are one flat token stream per split with documents end to end, each followed by its EOS, exactly as
our token shards hold them; so export is a copy of each shard's memory-mapped values buffer (`token_stream`), shard
after shard, in file-name order, with a bounded buffer: no split is ever held in memory whole.

nanoGPT (`data/openwebtext/prepare.py`): raw uint16 ids, no header; `train.py` reads them with
`np.memmap(path, dtype=np.uint16)`. A vocabulary above 65,535 cannot be written in that format, and a uint32 file
under the same name would be read by nanoGPT as garbage without any error, so we refuse (ValueError) and point to
the Megatron format instead. `meta.json` beside the files says vocab_size, eos_id, dtype and tokenizer_sha256.

Megatron-LM (`megatron/core/datasets/indexed_dataset.py`, MMapIndexedDataset): `<prefix>.bin` holds the ids;
`<prefix>.idx` is the 9-byte magic `MMIDIDX\\x00\\x00`, version `<Q` 1, dtype code `<B` (uint16 = 8, int32 = 4; the
table has no uint32, so larger vocabularies are written as int32, which Megatron itself picks for vocabularies of
65,500 and more), sequence count `<Q`, document-index count `<Q`, then the sequence lengths (int32), the byte offset
of each sequence in `.bin` (int64) and the document indices (int64, count + 1 entries from 0). Each of our documents
(its ids and EOS) is one sequence and one document, as Megatron's `preprocess_data.py --append-eod` writes them.

The readers at the end (`read_nanogpt`, `read_megatron`) parse the files from the format descriptions alone and share
no code with the writers, so a round trip through them checks the layout rather than restating it.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa

from corpus.atomic import atomic_path
from tokenizer.encode import SPLITS, token_stream

FORMATS = ("nanogpt", "megatron")
# Tokens copied per write: bounds the memory of a dtype conversion and the pages touched between writes.
WRITE_CHUNK_TOKENS = 16 << 20
# What the token shards' schema metadata must agree on across every shard of an export.
_META_KEYS = ("tokenizer_sha256", "vocab_size", "eos_id", "dtype")

MEGATRON_MAGIC = b"MMIDIDX\x00\x00"
MEGATRON_VERSION = 1
# Megatron's DType enum: the code written in the .idx header for the dtype of the .bin.
MEGATRON_DTYPE_CODES = {
    "uint8": 1, "int8": 2, "int16": 3, "int32": 4, "int64": 5, "float64": 6, "float32": 7, "uint16": 8,
}
# Megatron prefixes, as its preprocess_data.py names them for the json key "text".
MEGATRON_PREFIX = "{split}_text_document"


# --- the token shards -------------------------------------------------------------------------------------------


def split_shards(tokens_dir: Path, split: str) -> list[Path]:
    """`tokens_dir/split/*.arrow` in name order (the order of the documents shards); a missing folder is empty."""
    folder = Path(tokens_dir) / split
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.arrow") if not p.name.startswith("."))


def _schema(path: Path) -> pa.Schema:
    with pa.memory_map(str(path), "r") as source:
        return pa.ipc.open_stream(source).schema


def tokens_metadata(tokens_dir: Path) -> dict:
    """{"tokenizer_sha256", "vocab_size", "eos_id", "dtype"} shared by every token shard of both splits.

    Raises FileNotFoundError when there is no shard at all and ValueError when shards disagree (encoded with two
    tokenizers): one exported stream must be read with one vocabulary.
    """
    paths = [p for split in SPLITS for p in split_shards(tokens_dir, split)]
    if not paths:
        raise FileNotFoundError(f"{tokens_dir}: no token shards under train/ or val/")
    found: dict[tuple, Path] = {}
    for path in paths:
        metadata = _schema(path).metadata or {}
        key = tuple(metadata.get(k.encode(), b"").decode() for k in _META_KEYS)
        found.setdefault(key, path)
    if len(found) > 1:
        (first_key, first), (other_key, other) = list(found.items())[:2]
        raise ValueError(
            f"token shards disagree: {first} has {dict(zip(_META_KEYS, first_key, strict=True))}, {other} has "
            f"{dict(zip(_META_KEYS, other_key, strict=True))}; re-encode the run with one tokenizer"
        )
    (key,) = found
    meta = dict(zip(_META_KEYS, key, strict=True))
    if not meta["dtype"] or not meta["vocab_size"]:
        raise ValueError(f"{paths[0]}: not a token shard (schema metadata lacks dtype/vocab_size)")
    return {**meta, "vocab_size": int(meta["vocab_size"]), "eos_id": int(meta["eos_id"])}


def document_lengths(path: Path) -> Iterator[np.ndarray]:
    """Tokens per document (EOS included) of one token shard, one int64 array per record batch, from the offsets
    of `input_ids` alone (memory-mapped; no id is read)."""
    with pa.memory_map(str(path), "r") as source:
        for batch in pa.ipc.open_stream(source):
            offsets = batch.column("input_ids").offsets.to_numpy()
            yield np.diff(offsets)


def _document_count(paths: list[Path]) -> int:
    return sum(len(lengths) for path in paths for lengths in document_lengths(path))


# --- writing ----------------------------------------------------------------------------------------------------


def _write_tokens(sink: BinaryIO, paths: list[Path], dtype: np.dtype) -> int:
    """Append every shard's token stream to `sink` as `dtype`, chunk by chunk; returns the tokens written."""
    written = 0
    for path in paths:
        stream = token_stream(path)
        for start in range(0, len(stream), WRITE_CHUNK_TOKENS):
            chunk = stream[start : start + WRITE_CHUNK_TOKENS]
            sink.write(memoryview(np.ascontiguousarray(chunk, dtype=dtype)))
            written += len(chunk)
    return written


@contextmanager
def _atomic_files(targets: list[Path]) -> Iterator[list[BinaryIO]]:
    """Open one temporary file per target; when the block ends without error, rename each into place (in order).

    An error removes the temporaries and leaves any earlier file under the target names untouched.
    """
    with ExitStack() as stack:
        # entered last target first, so that leaving the block renames them in the targets' order
        temporaries = [stack.enter_context(atomic_path(target)) for target in reversed(targets)][::-1]
        yield [stack.enter_context(open(tmp, "wb")) for tmp in temporaries]


def _start_export(out_dir: Path) -> None:
    """Create `out_dir` and remove a previous meta.json: written last, it tells a complete export from one that was
    interrupted."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "meta.json").unlink(missing_ok=True)


def _finish_export(out_dir: Path, meta: dict) -> Path:
    path = out_dir / "meta.json"
    with _atomic_files([path]) as (sink,):
        sink.write((json.dumps(meta, indent=2) + "\n").encode())
    return path


def export_nanogpt(tokens_dir: Path, out_dir: Path) -> dict:
    """Write `out_dir/train.bin` and `out_dir/val.bin` (nanoGPT's flat uint16 streams), then `out_dir/meta.json`.

    An empty split gives an empty file (nanoGPT needs tokens in val.bin to evaluate; the counts show it). Raises
    ValueError when the vocabulary exceeds 65,535 (not representable in nanoGPT's format). Returns the content of
    meta.json ({"format", "vocab_size", "eos_id", "dtype", "tokenizer_sha256", "docs", "tokens"}, the last two per
    split) plus "files".
    """
    tokens_dir, out_dir = Path(tokens_dir), Path(out_dir)
    meta = tokens_metadata(tokens_dir)
    if meta["dtype"] != "uint16" or meta["vocab_size"] > 65_535:
        raise ValueError(
            f"vocabulary of {meta['vocab_size']} tokens ({meta['dtype']} ids) does not fit nanoGPT's uint16 .bin "
            "format (at most 65,535 tokens); export with --format megatron (int32 ids) or train a smaller tokenizer"
        )
    _start_export(out_dir)
    docs, tokens, files = {}, {}, []
    for split in SPLITS:
        paths = split_shards(tokens_dir, split)
        target = out_dir / f"{split}.bin"
        with _atomic_files([target]) as (sink,):
            tokens[split] = _write_tokens(sink, paths, np.dtype(np.uint16))
        docs[split] = _document_count(paths)
        files.append(str(target))
    summary = {"format": "nanogpt", **meta, "docs": docs, "tokens": tokens}
    files.append(str(_finish_export(out_dir, summary)))
    return {**summary, "files": files}


def megatron_dtype(vocab_size: int) -> np.dtype:
    """uint16 while the vocabulary fits (as in our shards), else int32: Megatron's dtype table has no uint32."""
    if vocab_size <= 65_535:
        return np.dtype(np.uint16)
    if vocab_size <= np.iinfo(np.int32).max:
        return np.dtype(np.int32)
    raise ValueError(f"vocabulary of {vocab_size} tokens does not fit Megatron's int32 ids")


def _write_megatron_index(sink: BinaryIO, paths: list[Path], dtype: np.dtype, n_docs: int) -> None:
    """The .idx of `paths` (one sequence per document), streamed: lengths, then pointers, then document indices,
    each pass reading only the shards' offsets."""
    sink.write(MEGATRON_MAGIC)
    sink.write(struct.pack("<Q", MEGATRON_VERSION))
    sink.write(struct.pack("<B", MEGATRON_DTYPE_CODES[dtype.name]))
    sink.write(struct.pack("<Q", n_docs))  # sequences
    sink.write(struct.pack("<Q", n_docs + 1))  # document indices: 0, then the end of each document
    int32_max = np.iinfo(np.int32).max
    for path in paths:
        for lengths in document_lengths(path):
            if len(lengths) and lengths.max() > int32_max:
                raise ValueError(f"{path}: a document of {lengths.max()} tokens exceeds Megatron's int32 lengths")
            sink.write(memoryview(lengths.astype(np.int32)))
    position = 0  # byte offset in .bin of the next sequence
    for path in paths:
        for lengths in document_lengths(path):
            ends = position + np.cumsum(lengths * dtype.itemsize, dtype=np.int64)  # (n,) end of each sequence
            starts = np.concatenate([np.array([position], dtype=np.int64), ends[:-1]])[: len(lengths)]
            sink.write(memoryview(starts))
            position = int(ends[-1]) if len(ends) else position
    for start in range(0, n_docs + 1, WRITE_CHUNK_TOKENS):
        sink.write(memoryview(np.arange(start, min(start + WRITE_CHUNK_TOKENS, n_docs + 1), dtype=np.int64)))


def export_megatron(tokens_dir: Path, out_dir: Path) -> dict:
    """Write `out_dir/{train,val}_text_document.{bin,idx}` in Megatron-LM's MMapIndexedDataset format, then
    `out_dir/meta.json`.

    Ids are uint16 (dtype code 8) when the vocabulary fits, else int32 (code 4). An empty split gives an empty .bin
    and an .idx without sequences. Returns the content of meta.json ({"format", "vocab_size", "eos_id", "dtype" (of
    the .bin), "tokenizer_sha256", "docs", "tokens", "prefixes"}) plus "files". Pass a prefix to Megatron's
    `--data-path` / `--split` or `--train-data-path` / `--valid-data-path`.
    """
    tokens_dir, out_dir = Path(tokens_dir), Path(out_dir)
    meta = tokens_metadata(tokens_dir)
    dtype = megatron_dtype(meta["vocab_size"])
    _start_export(out_dir)
    docs, tokens, prefixes, files = {}, {}, {}, []
    for split in SPLITS:
        paths = split_shards(tokens_dir, split)
        prefix = out_dir / MEGATRON_PREFIX.format(split=split)
        targets = [prefix.with_name(prefix.name + ".bin"), prefix.with_name(prefix.name + ".idx")]
        docs[split] = _document_count(paths)
        with _atomic_files(targets) as (bin_sink, idx_sink):
            tokens[split] = _write_tokens(bin_sink, paths, dtype)
            _write_megatron_index(idx_sink, paths, dtype, docs[split])
        prefixes[split] = str(prefix)
        files += [str(t) for t in targets]
    summary = {"format": "megatron", **meta, "dtype": dtype.name, "docs": docs, "tokens": tokens, "prefixes": prefixes}
    files.append(str(_finish_export(out_dir, summary)))
    return {**summary, "files": files}


EXPORTERS = {"nanogpt": export_nanogpt, "megatron": export_megatron}


def export_tokens(run_dir: Path, fmt: str, out_dir: Path) -> dict:
    """Export the token shards of run `run_dir` (its `tokens/`) in format `fmt` ("nanogpt" or "megatron")."""
    if fmt not in EXPORTERS:
        raise ValueError(f"unknown export format {fmt!r}: choose one of {', '.join(FORMATS)}")
    tokens_dir = Path(run_dir) / "tokens"
    if not tokens_dir.is_dir():
        raise FileNotFoundError(
            f"{run_dir} has no tokens/ folder: run the pipeline through the tokens stage first "
            f"(corpusforge run --output {run_dir} --to tokens)"
        )
    return EXPORTERS[fmt](tokens_dir, Path(out_dir))


# --- reading (independent of the writers above) -----------------------------------------------------------------


def read_nanogpt(path: Path) -> np.ndarray:
    """A nanoGPT .bin as nanoGPT's train.py reads it: a read-only uint16 memory map (empty array for an empty file,
    which np.memmap refuses to map)."""
    if Path(path).stat().st_size == 0:
        return np.zeros(0, dtype=np.uint16)
    return np.memmap(path, dtype=np.uint16, mode="r")


@dataclass(frozen=True)
class MegatronIndex:
    dtype: np.dtype
    sequence_lengths: np.ndarray  # (n_sequences,) int32
    sequence_pointers: np.ndarray  # (n_sequences,) int64, byte offsets into .bin
    document_indices: np.ndarray  # (n_documents + 1,) int64


# The dtype codes as Megatron's reader maps them back (restated here on purpose: see the module docstring).
_MEGATRON_CODE_DTYPES = {
    1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64, 7: np.float32, 8: np.uint16,
}


def read_megatron_index(prefix: str | Path) -> MegatronIndex:
    """Parse `<prefix>.idx` as Megatron's _IndexReader does; raises ValueError on a wrong magic or version."""
    raw = Path(f"{prefix}.idx").read_bytes()
    if raw[:9] != b"MMIDIDX\x00\x00":
        raise ValueError(f"{prefix}.idx: bad magic {raw[:9]!r}")
    (version,) = struct.unpack_from("<Q", raw, 9)
    if version != 1:
        raise ValueError(f"{prefix}.idx: version {version}, expected 1")
    (code,) = struct.unpack_from("<B", raw, 17)
    n_sequences, n_documents = struct.unpack_from("<QQ", raw, 18)
    offset = 34
    lengths = np.frombuffer(raw, dtype=np.int32, count=n_sequences, offset=offset)
    offset += lengths.nbytes
    pointers = np.frombuffer(raw, dtype=np.int64, count=n_sequences, offset=offset)
    offset += pointers.nbytes
    documents = np.frombuffer(raw, dtype=np.int64, count=n_documents, offset=offset)
    if offset + documents.nbytes != len(raw):
        raise ValueError(f"{prefix}.idx: {len(raw) - offset - documents.nbytes} unexpected trailing bytes")
    return MegatronIndex(np.dtype(_MEGATRON_CODE_DTYPES[code]), lengths, pointers, documents)


def read_megatron(prefix: str | Path) -> list[np.ndarray]:
    """The sequences of a Megatron `<prefix>.bin`/`.idx` pair, one array per sequence (views of a memory map)."""
    index = read_megatron_index(prefix)
    bin_path = Path(f"{prefix}.bin")
    if bin_path.stat().st_size == 0:
        return [np.zeros(0, dtype=index.dtype) for _ in index.sequence_lengths]
    data = np.memmap(bin_path, dtype=np.uint8, mode="r")
    return [
        data[pointer : pointer + length * index.dtype.itemsize].view(index.dtype)
        for pointer, length in zip(index.sequence_pointers.tolist(), index.sequence_lengths.tolist(), strict=True)
    ]
