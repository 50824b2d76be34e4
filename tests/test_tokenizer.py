"""Byte-level BPE tokenizer and token shards, on real English text (Project Gutenberg, WikiText-2).

One small tokenizer (vocab 1000, a few hundred KB of Pride and Prejudice) is trained per module and used by every
test; held-out text comes from Moby-Dick and WikiText-2.
"""

from __future__ import annotations

import re
import time
import unicodedata
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from corpus.document import Document, documents_to_table, tokens_schema
from corpus.shards import read_table, sha256_file, write_stream, write_table
from tokenizer.config import TokenizerConfig, TokensConfig
from tokenizer.encode import encode_shard, load_tokenizer, token_stream
from tokenizer.evaluate import bytes_per_token, fertility, round_trip_failures, word_units
from tokenizer.train import SPECIAL_TOKENS, chunk_text, eligible_bytes, sample_texts, train_tokenizer

VOCAB = 1000

# Held-out strings a byte-level tokenizer must give back exactly (all already NFC).
HARD_TEXTS = [
    "中文段落没有空格分隔词语。これは日本語の文です。한국어 문단입니다.",
    "Emoji: 🙂 👩🏽‍💻 🇫🇷 ❤️ 👨‍👩‍👧‍👦 and a lone 🦀",
    "Combining marks that NFC keeps: नमस्ते दुनिया, Tiếng Việt, ạ̈, q̣̇, שָׁלוֹם",
    "Odd whitespace:\t\ttabs\r\nCRLF\u00a0nbsp\u2009thin\u3000ideographic\u2028line\u2029para  \n\n\n   trailing   ",
    "Controls \x00\x01\x7f and zero-width\u200b\u200c\u200d\ufeffmarks",
    "Mixed RTL: هذا نص عربي 123 and עברית with (parentheses)",
    "A literal <|endoftext|> and <pad> inside text",
    "",
    " ",
    "x" * 3000,
]


def _gutenberg(shared_data: Path, name: str) -> str:
    return (shared_data / "english-text" / "gutenberg" / name).read_text(encoding="utf-8-sig")


def _paragraphs(text: str) -> list[str]:
    return [p for p in text.split("\n\n") if p.strip()]


@pytest.fixture(scope="module")
def trained(shared_data, tmp_path_factory):
    """(folder, info) of a tokenizer trained on the first 400 KB of Pride and Prejudice."""
    texts = _paragraphs(_gutenberg(shared_data, "pg1342-pride-and-prejudice.txt")[:400_000])
    out = tmp_path_factory.mktemp("tokenizer")
    info = train_tokenizer(texts, TokenizerConfig(vocab_size=VOCAB), out)
    return out, info


@pytest.fixture(scope="module")
def held_out(shared_data) -> list[str]:
    moby = _paragraphs(_gutenberg(shared_data, "pg2701-moby-dick.txt")[300_000:500_000])
    wiki = (shared_data / "english-text" / "wikitext-2" / "valid.txt").read_text(encoding="utf-8")
    return moby + [line for line in wiki.splitlines()[:2000] if line.strip()]


def _tokenizer(folder: Path):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "tokenizer.json"))


# --- training ---------------------------------------------------------------------------------------------------


def test_training_returns_pinned_special_ids_and_hash(trained):
    folder, info = trained
    tokenizer = _tokenizer(folder)
    assert info == {"vocab_size": VOCAB, "sha256": sha256_file(folder / "tokenizer.json"), "eos_id": 0}
    assert [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3, 4]
    assert SPECIAL_TOKENS[0] == "<|endoftext|>"
    # The 256 byte symbols follow the specials in byte-level alphabet order: "!" (0x21) is the first.
    assert tokenizer.encode("!").ids == [5]
    assert tokenizer.id_to_token(5 + 255) is not None and tokenizer.get_vocab_size() == VOCAB
    assert {p.name for p in folder.iterdir()} >= {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}


def test_training_is_deterministic(trained, shared_data, tmp_path):
    _, info = trained
    texts = _paragraphs(_gutenberg(shared_data, "pg1342-pride-and-prejudice.txt")[:400_000])
    again = train_tokenizer(texts, TokenizerConfig(vocab_size=VOCAB), tmp_path)
    assert again["sha256"] == info["sha256"]


def test_transformers_loads_the_folder_and_agrees_with_tokenizers(trained, held_out):
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    folder, _ = trained
    raw = _tokenizer(folder)
    for hf in (AutoTokenizer.from_pretrained(folder), PreTrainedTokenizerFast.from_pretrained(folder)):
        assert (hf.eos_token_id, hf.bos_token_id, hf.unk_token_id) == (0, 0, 0)
        assert (hf.pad_token_id, hf.mask_token_id, hf.cls_token_id, hf.sep_token_id) == (1, 2, 3, 4)
        assert hf.model_max_length >= 1 << 30
        for text in held_out[:50] + HARD_TEXTS[:4]:
            ids = hf(text, add_special_tokens=False)["input_ids"]
            assert ids == raw.encode(text, add_special_tokens=False).ids
            assert hf.decode(ids) == text


def test_round_trip_is_exact_on_held_out_text(trained, held_out, shared_data):
    tokenizer = _tokenizer(trained[0])
    malformed = shared_data / "malformed"
    real_hard = [
        (malformed / "t07_rtl_cjk.txt").read_text(encoding="utf-8"),
        unicodedata.normalize("NFC", (malformed / "t09_combining_marks_100k.txt").read_text(encoding="utf-8")),
    ]
    assert round_trip_failures(tokenizer, held_out + HARD_TEXTS + real_hard) == []


def test_round_trip_reports_what_nfc_rewrites(trained):
    tokenizer = _tokenizer(trained[0])
    # "e" + combining acute comes back as the precomposed "é": the NFC normalizer is the one lossy step.
    texts = ["café", "cafe\u0301", "ok", "\u212b"]  # U+212B ANGSTROM SIGN normalizes to U+00C5
    assert round_trip_failures(tokenizer, texts) == [1, 3]


def test_bytes_per_token(trained, held_out):
    tokenizer = _tokenizer(trained[0])
    # Control bytes never occur in the training text, so each stays a single-byte token.
    assert bytes_per_token(tokenizer, ["\x00\x01", "\x02"]) == 1.0
    assert bytes_per_token(tokenizer, []) == 0.0
    # A 4-byte emoji without merges costs 4 byte tokens: 1 byte per token.
    assert bytes_per_token(tokenizer, ["🦀"]) == 1.0
    # 1000 tokens learned from 400 KB of one novel halve the length of held-out Moby-Dick + WikiText (2.10 here).
    assert 2.0 < bytes_per_token(tokenizer, held_out) < 3.0


def test_word_units_count_characters_of_unsegmented_scripts():
    assert word_units("Hello, world.") == 2  # punctuation stays with its word
    assert word_units("a\tb\nc  d ") == 4 and word_units("") == 0 and word_units(" \n ") == 0
    assert word_units("東京は大きい") == 6  # kanji and hiragana: one unit per character
    assert word_units("iPhoneを買った") == 5  # "iPhone" + 4 characters
    assert word_units("クロノたちが13年ぶりに再会！") == 14  # 12 kana/kanji, the runs "13" and "！"
    assert word_units("สวัสดีครับ") == 10  # Thai: code points, combining vowel marks included
    assert word_units("한국어 문단입니다.") == 2  # Korean separates words with spaces


def test_fertility_pinned_on_gpt2(shared_data):
    from tokenizers import Tokenizer

    gpt2 = Tokenizer.from_file(str(shared_data / "tokenizers" / "gpt2" / "hf-format" / "tokenizer.json"))
    # "Hello" "," " world" "." : 4 tokens for 2 words.
    assert fertility(gpt2, ["Hello, world."]) == 2.0
    # 8 tokens ("token" "izer" split) for 6 words.
    assert fertility(gpt2, ["The tokenizer splits unbelievably long words."]) == 8 / 6
    # 8 byte-level tokens for 6 characters; over both texts the ratio is of the sums: (4 + 8) / (2 + 6).
    assert fertility(gpt2, ["東京は大きい"]) == 8 / 6
    assert fertility(gpt2, ["Hello, world.", "東京は大きい"]) == 1.5
    assert fertility(gpt2, []) == 0.0 and fertility(gpt2, ["", " "]) == 0.0


def test_fertility_of_the_small_tokenizer_on_held_out_english(trained, held_out):
    tokenizer = _tokenizer(trained[0])
    # 1000 tokens learned from one novel: common words whole, the rest in pieces (2.55 here).
    assert 2.2 < fertility(tokenizer, held_out) < 2.9
    # Every word of an unseen script falls apart into byte tokens: ~3 per CJK character.
    assert fertility(tokenizer, ["中文段落没有空格分隔词语"]) > 2.5


def test_text_without_whitespace_trains_in_seconds(shared_data, tmp_path):
    # 3 MB of letters only: one pre-token per chunk, which stalls BPE training unless runs are cut (DESIGN.md 9).
    letters = re.sub(r"[^A-Za-z]", "", _gutenberg(shared_data, "pg2701-moby-dick.txt"))
    text = (letters * (3_000_000 // len(letters) + 1))[:3_000_000]
    start = time.monotonic()
    info = train_tokenizer([text], TokenizerConfig(vocab_size=512), tmp_path)
    assert time.monotonic() - start < 60  # ~4 s here on 2 shared cores; unsplit it ran for minutes
    assert info["vocab_size"] == 512
    assert round_trip_failures(_tokenizer(tmp_path), [text[:100_000]]) == []


def test_chunk_text_cuts_before_whitespace():
    assert list(chunk_text("aaa bbb ccc", 5)) == ["aaa", " bbb", " ccc"]
    assert list(chunk_text("abcdefgh", 3)) == ["abc", "def", "gh"]
    assert list(chunk_text("short", 10)) == ["short"]
    assert list(chunk_text("", 10)) == []
    assert list(chunk_text(" abcdef", 4)) == [" abc", "def"]  # whitespace only at the start: hard cut
    text = "one two\nthree\tfour " * 50
    assert "".join(chunk_text(text, 13)) == text and max(map(len, chunk_text(text, 13))) <= 13


# --- sampling ---------------------------------------------------------------------------------------------------


def _docs(paragraphs: list[str], prefix: str) -> list[Document]:
    return [
        Document(id=f"{prefix}-{i}", source="gutenberg", offset=i, text=p, split="val" if i % 5 == 0 else "train")
        for i, p in enumerate(paragraphs)
    ]


@pytest.fixture(scope="module")
def document_shards(shared_data, tmp_path_factory) -> list[Path]:
    folder = tmp_path_factory.mktemp("documents")
    paragraphs = _paragraphs(_gutenberg(shared_data, "pg3261-news-from-nowhere.txt"))
    half = len(paragraphs) // 2
    paths = []
    for n, part in enumerate([paragraphs[:half], paragraphs[half:]]):
        path = folder / f"shard-{n:05d}.arrow"
        write_table(path, documents_to_table(_docs(part, f"s{n}")))
        paths.append(path)
    return paths


def test_sample_is_reproducible_and_within_budget(document_shards):
    total = eligible_bytes(document_shards, TokenizerConfig())
    cfg = TokenizerConfig(sample_bytes=total // 3, seed=7)
    first = list(sample_texts(document_shards, cfg))
    assert first == list(sample_texts(document_shards, cfg))
    taken = sum(len(t.encode()) for t in first)
    assert 0.6 * cfg.sample_bytes < taken <= cfg.sample_bytes
    other = list(sample_texts(document_shards, cfg.model_copy(update={"seed": 8})))
    assert other != first


def test_sample_takes_every_train_document_when_the_corpus_fits(document_shards):
    train_texts = [
        row["text"]
        for path in document_shards
        for row in read_table(path, ["text", "split"]).to_pylist()
        if row["split"] == "train"
    ]
    assert list(sample_texts(document_shards, TokenizerConfig())) == train_texts
    with_val = list(sample_texts(document_shards, TokenizerConfig(train_split_only=False)))
    assert len(with_val) > len(train_texts)
    assert sum(len(t.encode()) for t in with_val) == eligible_bytes(
        document_shards, TokenizerConfig(train_split_only=False)
    )


def test_sample_chunks_long_documents(tmp_path):
    long_text = ("word " * 600_000) + "tail"  # 3,000,004 characters
    path = tmp_path / "shard-00000.arrow"
    write_table(path, documents_to_table([Document(id="long", source="x", offset=0, text=long_text, split="train")]))
    pieces = list(sample_texts([path], TokenizerConfig()))
    assert len(pieces) == 4 and max(map(len, pieces)) <= 1_000_000
    assert "".join(pieces) == long_text


# --- token shards -----------------------------------------------------------------------------------------------


def test_tokens_schema_switches_dtype_above_65535():
    small = tokens_schema(65_535, tokenizer_sha256="ab", eos_id=0)
    large = tokens_schema(65_536, tokenizer_sha256="ab", eos_id=0)
    assert small.field("input_ids").type == pa.large_list(pa.uint16())
    assert large.field("input_ids").type == pa.large_list(pa.uint32())
    assert small.metadata[b"dtype"] == b"uint16" and large.metadata[b"dtype"] == b"uint32"
    assert small.metadata[b"vocab_size"] == b"65535" and small.metadata[b"tokenizer_sha256"] == b"ab"


ENCODE_DOCS = [
    ("d0", "It is a truth universally acknowledged.", "train"),
    ("d1", "Call me Ishmael. 中文 🙂", "val"),
    ("d2", "", "train"),
    ("d3", "A page that says <|endoftext|> must not end the document early.", "train"),
    ("d4", "The val split holds this one.", "val"),
    ("d5", "Last train document\n\n", "train"),
]


@pytest.fixture()
def documents_shard(tmp_path) -> Path:
    docs = [Document(id=i, source="test", offset=n, text=t, split=s) for n, (i, t, s) in enumerate(ENCODE_DOCS)]
    path = tmp_path / "documents" / "shard-00003.arrow"
    path.parent.mkdir()
    write_table(path, documents_to_table(docs))
    return path


def test_encode_shard_writes_train_and_val_with_eos(trained, documents_shard, tmp_path):
    folder, info = trained
    tokens_dir = tmp_path / "tokens"
    result = encode_shard(folder, documents_shard, tokens_dir, TokensConfig())
    tokenizer = load_tokenizer(folder)
    expected = {
        split: [(i, tokenizer.encode(t, add_special_tokens=False).ids + [0]) for i, t, s in ENCODE_DOCS if s == split and t]
        for split in ("train", "val")
    }
    # The literal "<|endoftext|>" in d3 is plain text: the only EOS is the one appended.
    d3_ids = expected["train"][1][1]
    assert expected["train"][1][0] == "d3" and d3_ids.count(0) == 1 and d3_ids[-1] == 0
    # the empty document d2 is left out (it would only add an EOS) and counted
    assert "d2" not in [i for i, _ in expected["train"]]

    assert result == {
        "docs": {"train": 3, "val": 2},
        "tokens": {split: sum(len(ids) for _, ids in expected[split]) for split in ("train", "val")},
        "empty": 1,
    }
    for split in ("train", "val"):
        path = tokens_dir / split / "shard-00003.arrow"
        table = read_table(path)
        assert [(r["doc_id"], r["input_ids"]) for r in table.to_pylist()] == expected[split]
        meta = table.schema.metadata
        assert meta[b"tokenizer_sha256"].decode() == info["sha256"]
        assert (meta[b"vocab_size"], meta[b"eos_id"], meta[b"dtype"]) == (b"1000", b"0", b"uint16")
        assert table.schema.field("input_ids").type == pa.large_list(pa.uint16())
    assert not list(tokens_dir.rglob(".tmp-*"))


def test_loaded_tokenizer_encodes_special_token_strings_as_text(trained):
    # The cached loader encodes special-token strings as text; a plain Tokenizer would emit id 0 inside the doc.
    tokenizer = load_tokenizer(trained[0])
    assert 0 not in tokenizer.encode("says <|endoftext|> here").ids
    assert 0 in _tokenizer(trained[0]).encode("says <|endoftext|> here").ids


def test_encode_shard_output_does_not_depend_on_batching(trained, documents_shard, tmp_path):
    folder, _ = trained
    encode_shard(folder, documents_shard, tmp_path / "a", TokensConfig())
    encode_shard(folder, documents_shard, tmp_path / "b", TokensConfig(batch_docs=2, batch_bytes=30))
    for split in ("train", "val"):
        name = f"{split}/shard-00003.arrow"
        assert read_table(tmp_path / "a" / name).equals(read_table(tmp_path / "b" / name))


def test_token_shards_load_with_datasets(trained, documents_shard, tmp_path):
    import datasets

    folder, _ = trained
    encode_shard(folder, documents_shard, tmp_path / "tokens", TokensConfig())
    train = tmp_path / "tokens" / "train" / "shard-00003.arrow"
    from_file = datasets.Dataset.from_file(str(train))
    assert from_file["doc_id"] == ["d0", "d3", "d5"]  # d2 has no text: left out
    assert all(ids[-1] == 0 for ids in from_file["input_ids"])
    loaded = datasets.load_dataset(
        "arrow", data_files=str(tmp_path / "tokens" / "val" / "*.arrow"), split="train", cache_dir=str(tmp_path / "hf")
    )
    assert loaded["doc_id"] == ["d1", "d4"]


def test_encode_shard_writes_both_files_even_when_a_split_is_empty(trained, tmp_path):
    folder, _ = trained
    path = tmp_path / "shard-00000.arrow"
    write_table(path, documents_to_table([Document(id="only", source="x", offset=0, text="Hello.", split="train")]))
    result = encode_shard(folder, path, tmp_path / "tokens", TokensConfig())
    assert result["docs"] == {"train": 1, "val": 0} and result["tokens"]["val"] == 0
    val = tmp_path / "tokens" / "val" / "shard-00000.arrow"
    assert read_table(val).num_rows == 0 and len(token_stream(val)) == 0
    assert token_stream(val).dtype == np.uint16


def test_token_stream_is_the_documents_end_to_end(trained, documents_shard, tmp_path):
    folder, _ = trained
    encode_shard(folder, documents_shard, tmp_path / "tokens", TokensConfig(batch_docs=1))
    path = tmp_path / "tokens" / "train" / "shard-00003.arrow"
    stream = token_stream(path)
    rows = read_table(path).column("input_ids").to_pylist()
    assert stream.dtype == np.uint16 and stream.tolist() == [i for ids in rows for i in ids]
    assert np.flatnonzero(stream == 0).tolist() == list(np.cumsum([len(r) for r in rows]) - 1)


def _mapped_ranges(path: Path) -> list[tuple[int, int]]:
    """Address ranges of this process that map `path` (Linux /proc/self/maps)."""
    ranges = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6 and parts[5] == str(path):
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            ranges.append((lo, hi))
    return ranges


def _rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="needs Linux /proc to see memory maps")
def test_token_stream_is_a_zero_copy_view_of_the_file(tmp_path):
    n_docs, per_doc = 1000, 50_000  # 50M uint16 tokens: a 100 MB shard
    values = np.arange(n_docs * per_doc, dtype=np.uint64).astype(np.uint16)
    offsets = np.arange(0, n_docs * per_doc + 1, per_doc, dtype=np.int64)
    schema = tokens_schema(50_257, tokenizer_sha256="0" * 64, eos_id=0)
    input_ids = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values))
    table = pa.Table.from_arrays([pa.array([f"d{i}" for i in range(n_docs)]), input_ids], schema=schema)
    path = (tmp_path / "shard-00000.arrow").resolve()
    write_stream(path, schema, [table])
    del table, values

    before = _rss_bytes()
    stream = token_stream(path)
    after = _rss_bytes()
    assert len(stream) == n_docs * per_doc and stream.dtype == np.uint16
    assert not stream.flags.writeable
    address = stream.__array_interface__["data"][0]
    assert any(lo <= address and address + stream.nbytes <= hi for lo, hi in _mapped_ranges(path))
    assert after - before < 10 << 20  # opening 100 MB costs no resident memory until pages are read
    assert int(stream[123_456]) == 123_456 % 65_536


def test_token_stream_keeps_uint32_for_large_vocabularies(tmp_path):
    schema = tokens_schema(100_000, tokenizer_sha256="0" * 64, eos_id=99_999)
    values = pa.array([70_000, 99_999, 99_999], pa.uint32())
    ids = pa.LargeListArray.from_arrays(pa.array([0, 2, 3], pa.int64()), values)
    path = tmp_path / "shard-00000.arrow"
    write_stream(path, schema, [pa.Table.from_arrays([pa.array(["a", "b"]), ids], schema=schema)])
    stream = token_stream(path)
    assert stream.dtype == np.uint32 and stream.tolist() == [70_000, 99_999, 99_999]
