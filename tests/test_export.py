"""Exporters of token shards: nanoGPT's uint16 .bin and Megatron-LM's .bin/.idx, read back to the same ids.

Token shards come from `encode_shard` with GPT-2's own tokenizer (50,257 tokens, EOS 50256) on real book text, in
two documents shards with train and val documents; a few literal shards pin the byte layout.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import tokenizer.export as export
from corpus.document import Document, documents_to_table, tokens_schema
from corpus.shards import read_table, sha256_file, write_stream, write_table
from tokenizer.config import TokensConfig
from tokenizer.encode import encode_shard, token_stream
from tokenizer.export import (
    export_megatron,
    export_nanogpt,
    export_tokens,
    read_megatron,
    read_megatron_index,
    read_nanogpt,
)

GPT2_EOS = 50_256


@pytest.fixture(scope="module")
def gpt2_dir(shared_data) -> Path:
    return shared_data / "tokenizers" / "gpt2" / "hf-format"


def _paragraphs(shared_data: Path) -> list[str]:
    text = (shared_data / "english-text" / "gutenberg" / "pg3261-news-from-nowhere.txt").read_text(encoding="utf-8-sig")
    return [p for p in text.split("\n\n") if p.strip()][200:320]


@pytest.fixture(scope="module")
def tokens_dir(shared_data, gpt2_dir, tmp_path_factory) -> Path:
    """tokens/{train,val}/shard-0000{0,1}.arrow: 120 real paragraphs (every 4th in val) and an empty document,
    which encode_shard leaves out."""
    root = tmp_path_factory.mktemp("run")
    texts = _paragraphs(shared_data)
    texts.insert(7, "")
    for n, part in enumerate([texts[:60], texts[60:]]):
        docs = [
            Document(id=f"s{n}-{i}", source="test", offset=i, text=t, split="val" if i % 4 == 1 else "train")
            for i, t in enumerate(part)
        ]
        src = root / "documents" / f"shard-{n:05d}.arrow"
        src.parent.mkdir(exist_ok=True)
        write_table(src, documents_to_table(docs))
        encode_shard(gpt2_dir, src, root / "tokens", TokensConfig(batch_docs=16))
    return root / "tokens"


def _documents(tokens_dir: Path, split: str) -> list[list[int]]:
    """Each document's ids (EOS included) from the token shards, in shard order."""
    return [
        ids
        for path in sorted((tokens_dir / split).glob("*.arrow"))
        for ids in read_table(path).column("input_ids").to_pylist()
    ]


def _literal_tokens(tmp_path: Path, docs_per_shard: list[list[list[int]]], vocab: int, eos: int) -> Path:
    """tokens/train/shard-*.arrow holding the given documents (ids lists), and an empty tokens/val shard."""
    schema = tokens_schema(vocab, tokenizer_sha256="ab" * 32, eos_id=eos)
    value_type = schema.field("input_ids").type.value_type
    for split, shards in (("train", docs_per_shard), ("val", [[]])):
        (tmp_path / "tokens" / split).mkdir(parents=True, exist_ok=True)
        for n, docs in enumerate(shards):
            offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])]).astype(np.int64)
            values = pa.array([i for d in docs for i in d], value_type)
            ids = pa.LargeListArray.from_arrays(pa.array(offsets), values)
            doc_ids = pa.array([f"{split}{n}-{i}" for i in range(len(docs))], pa.string())
            table = pa.Table.from_arrays([doc_ids, ids], schema=schema)
            write_stream(tmp_path / "tokens" / split / f"shard-{n:05d}.arrow", schema, [table])
    return tmp_path / "tokens"


# --- nanoGPT ----------------------------------------------------------------------------------------------------


def test_nanogpt_round_trip_gives_the_token_shards_ids(tokens_dir, gpt2_dir, tmp_path):
    summary = export_nanogpt(tokens_dir, tmp_path / "out")
    for split in ("train", "val"):
        documents = _documents(tokens_dir, split)
        exported = read_nanogpt(tmp_path / "out" / f"{split}.bin")
        assert exported.dtype == np.uint16
        assert exported.tolist() == [i for ids in documents for i in ids]
        # Documents end to end, each closed by its EOS: the EOS positions are the document ends.
        assert np.flatnonzero(exported == GPT2_EOS).tolist() == (np.cumsum([len(d) for d in documents]) - 1).tolist()
        assert summary["docs"][split] == len(documents)
        assert summary["tokens"][split] == len(exported)
    assert summary["docs"] == {"train": 90, "val": 30}
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert meta["vocab_size"] == 50_257 and meta["eos_id"] == GPT2_EOS and meta["dtype"] == "uint16"
    assert meta["tokenizer_sha256"] == sha256_file(gpt2_dir / "tokenizer.json")
    assert {k: summary[k] for k in meta} == meta
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["meta.json", "train.bin", "val.bin"]


def test_nanogpt_bin_is_the_raw_uint16_stream(tmp_path):
    tokens = _literal_tokens(tmp_path, [[[5, 6, 0], [0]], [[65_535, 0]]], vocab=65_535, eos=0)
    export_nanogpt(tokens, tmp_path / "out")
    # No header, little-endian uint16, documents as they are: exactly what nanoGPT's prepare.py writes.
    assert (tmp_path / "out" / "train.bin").read_bytes() == b"\x05\x00\x06\x00\x00\x00\x00\x00\xff\xff\x00\x00"


def test_nanogpt_refuses_a_vocabulary_above_uint16(tmp_path):
    tokens = _literal_tokens(tmp_path, [[[70_000, 99_999]]], vocab=100_000, eos=99_999)
    with pytest.raises(ValueError, match=r"100000 tokens .*nanoGPT's uint16 .*--format megatron"):
        export_nanogpt(tokens, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_empty_val_split_gives_empty_files(tmp_path):
    tokens = _literal_tokens(tmp_path, [[[5, 0]]], vocab=1000, eos=0)
    summary = export_nanogpt(tokens, tmp_path / "nano")
    assert summary["tokens"] == {"train": 2, "val": 0} and summary["docs"] == {"train": 1, "val": 0}
    assert (tmp_path / "nano" / "val.bin").stat().st_size == 0
    assert read_nanogpt(tmp_path / "nano" / "val.bin").tolist() == []
    summary = export_megatron(tokens, tmp_path / "mega")
    assert summary["tokens"]["val"] == 0
    index = read_megatron_index(tmp_path / "mega" / "val_text_document")
    assert len(index.sequence_lengths) == 0 and index.document_indices.tolist() == [0]
    assert read_megatron(tmp_path / "mega" / "val_text_document") == []


def test_writes_in_bounded_chunks_with_the_same_result(tokens_dir, tmp_path, monkeypatch):
    export_nanogpt(tokens_dir, tmp_path / "whole")
    export_megatron(tokens_dir, tmp_path / "whole-m")
    monkeypatch.setattr(export, "WRITE_CHUNK_TOKENS", 7)
    export_nanogpt(tokens_dir, tmp_path / "chunked")
    export_megatron(tokens_dir, tmp_path / "chunked-m")
    for name in ("train.bin", "val.bin"):
        assert (tmp_path / "whole" / name).read_bytes() == (tmp_path / "chunked" / name).read_bytes()
    for name in ("train_text_document.bin", "train_text_document.idx", "val_text_document.idx"):
        assert (tmp_path / "whole-m" / name).read_bytes() == (tmp_path / "chunked-m" / name).read_bytes()


# --- Megatron ---------------------------------------------------------------------------------------------------


def test_megatron_round_trip_keeps_every_document(tokens_dir, tmp_path):
    summary = export_megatron(tokens_dir, tmp_path / "out")
    assert summary["dtype"] == "uint16" and summary["docs"] == {"train": 90, "val": 30}
    for split in ("train", "val"):
        documents = _documents(tokens_dir, split)
        prefix = tmp_path / "out" / f"{split}_text_document"
        assert summary["prefixes"][split] == str(prefix)
        sequences = read_megatron(prefix)
        assert [s.tolist() for s in sequences] == documents
        assert all(s.dtype == np.uint16 and s[-1] == GPT2_EOS for s in sequences)
        index = read_megatron_index(prefix)
        assert index.dtype == np.uint16
        assert index.sequence_lengths.tolist() == [len(d) for d in documents]
        # One sequence per document: document boundaries 0, 1, ..., n.
        assert index.document_indices.tolist() == list(range(len(documents) + 1))
        assert index.sequence_pointers.tolist() == [2 * n for n in np.cumsum([0] + [len(d) for d in documents])[:-1]]
        stream = np.concatenate([token_stream(p) for p in sorted((tokens_dir / split).glob("*.arrow"))])
        assert (tmp_path / "out" / f"{split}_text_document.bin").read_bytes() == stream.tobytes()
    assert not list((tmp_path / "out").glob(".tmp-*"))


def test_megatron_idx_layout_is_pinned_byte_for_byte(tmp_path):
    tokens = _literal_tokens(tmp_path, [[[5, 6, 0], [0]], [[7, 0]]], vocab=1000, eos=0)
    export_megatron(tokens, tmp_path / "out")
    expected = (
        b"MMIDIDX\x00\x00"  # magic
        + struct.pack("<Q", 1)  # version
        + bytes([8])  # dtype code: uint16
        + struct.pack("<QQ", 3, 4)  # 3 sequences, 4 document indices
        + np.array([3, 1, 2], dtype="<i4").tobytes()  # sequence lengths
        + np.array([0, 6, 8], dtype="<i8").tobytes()  # byte offsets in .bin
        + np.array([0, 1, 2, 3], dtype="<i8").tobytes()  # document indices
    )
    assert (tmp_path / "out" / "train_text_document.idx").read_bytes() == expected
    assert (tmp_path / "out" / "train_text_document.bin").read_bytes() == np.array([5, 6, 0, 0, 7, 0], "<u2").tobytes()


def test_megatron_writes_int32_for_a_vocabulary_above_uint16(tmp_path):
    docs = [[[70_000, 3, 99_999], [99_999]], [[65_536, 99_999]]]
    tokens = _literal_tokens(tmp_path, docs, vocab=100_000, eos=99_999)
    summary = export_megatron(tokens, tmp_path / "out")
    prefix = tmp_path / "out" / "train_text_document"
    assert summary["dtype"] == "int32"
    assert (tmp_path / "out" / "train_text_document.idx").read_bytes()[17] == 4  # Megatron's code for int32
    index = read_megatron_index(prefix)
    assert index.dtype == np.int32 and index.sequence_pointers.tolist() == [0, 12, 16]
    assert [s.tolist() for s in read_megatron(prefix)] == [d for shard in docs for d in shard]
    meta = json.loads((tmp_path / "out" / "meta.json").read_text())
    assert (meta["vocab_size"], meta["eos_id"], meta["dtype"]) == (100_000, 99_999, "int32")


def test_reader_rejects_a_file_that_is_not_megatron(tmp_path):
    (tmp_path / "x.idx").write_bytes(b"NOTMEGATRON" + bytes(40))
    with pytest.raises(ValueError, match="bad magic"):
        read_megatron_index(tmp_path / "x")


def test_failed_export_leaves_earlier_files_and_no_temporaries(tokens_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    export_megatron(tokens_dir, out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name != "meta.json"}

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export, "_write_megatron_index", broken)
    with pytest.raises(OSError, match="disk full"):
        export_megatron(tokens_dir, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # meta.json gone: the export is incomplete


# --- checks and the CLI entry point -----------------------------------------------------------------------------


def test_shards_of_two_tokenizers_are_refused(tmp_path):
    tokens = _literal_tokens(tmp_path, [[[5, 0]]], vocab=1000, eos=0)
    other = tokens_schema(1000, tokenizer_sha256="cd" * 32, eos_id=0)
    ids = pa.LargeListArray.from_arrays(pa.array([0, 1], pa.int64()), pa.array([0], pa.uint16()))
    table = pa.Table.from_arrays([pa.array(["x"]), ids], schema=other)
    write_stream(tokens / "val" / "shard-00001.arrow", other, [table])
    with pytest.raises(ValueError, match="token shards disagree"):
        export_nanogpt(tokens, tmp_path / "out")


def test_export_tokens_dispatches_and_explains_errors(tmp_path):
    _literal_tokens(tmp_path, [[[5, 6, 0]]], vocab=1000, eos=0)
    assert export_tokens(tmp_path, "nanogpt", tmp_path / "n")["tokens"] == {"train": 3, "val": 0}
    assert export_tokens(tmp_path, "megatron", tmp_path / "m")["format"] == "megatron"
    with pytest.raises(ValueError, match="unknown export format 'hdf5'.*nanogpt, megatron"):
        export_tokens(tmp_path, "hdf5", tmp_path / "x")
    with pytest.raises(FileNotFoundError, match="has no tokens/ folder.*--to tokens"):
        export_tokens(tmp_path / "n", "nanogpt", tmp_path / "x")
    (tmp_path / "empty" / "tokens").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no token shards"):
        export_tokens(tmp_path / "empty", "megatron", tmp_path / "x")


def test_megatron_own_reader_agrees(tokens_dir, tmp_path):
    # megatron-core is not a dependency (it needs torch, Python >= 3.12 for its newest releases): run where installed.
    indexed = pytest.importorskip("megatron.core.datasets.indexed_dataset", reason="megatron-core is not installed")
    export_megatron(tokens_dir, tmp_path / "out")
    tokens = _literal_tokens(tmp_path / "wide", [[[70_000, 99_999], [99_999]]], vocab=100_000, eos=99_999)
    export_megatron(tokens, tmp_path / "wide-out")
    for prefix, documents in [
        (tmp_path / "out" / "train_text_document", _documents(tokens_dir, "train")),
        (tmp_path / "out" / "val_text_document", _documents(tokens_dir, "val")),
        (tmp_path / "wide-out" / "train_text_document", [[70_000, 99_999], [99_999]]),
    ]:
        dataset = indexed.IndexedDataset(str(prefix))
        assert len(dataset) == len(documents)
        assert [dataset[i].tolist() for i in range(len(dataset))] == documents
        assert dataset.document_indices.tolist() == list(range(len(documents) + 1))
