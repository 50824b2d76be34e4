"""The large hostile inputs of issue 13, made on the fly (tests/hostile/generate.py), through the real extract path.

Each input runs like the malformed files (test_malformed.py, hostile_run.py): one bounded process per input, the
default IngestConfig / ExtractConfig / AnnotateConfig, and the same checks (ended normally, peak RSS <= 2 GB,
specific reasons, balanced ledger, no extraction past `extract.timeout_s`), plus each input's expected outcome.

What stops each one (defaults): `ingest.max_record_bytes` (10 MB) on what a reader hands on, measured after
decompression (gzip files, HTTP Content-Encoding) and before reading (a WARC record's declared length, a file's
size, a JSON line's length, a Parquet page's header); `extract.max_html_bytes` (5 MB) and `extract.max_elements` (200,000 start tags)
before parsing; `extract.timeout_s` (10 s) on the parse; `extract.max_doc_chars` (1M) on the text. Long texts are
tokenized in pieces of at most 1M characters (tokenizer/encode.py `encode_texts`).
"""

from __future__ import annotations

import json
import sys
import textwrap

import generate as g
import pytest
from hostile_run import RSS_LIMIT_BYTES, Runner, Runs, assert_sound, run_process, selected_params

from corpus.config import AnnotateConfig, ExtractConfig, IngestConfig

pytestmark = pytest.mark.slow

TIMEOUT_S = ExtractConfig().timeout_s
WALL_S = 120.0  # per input; none needs more than the extraction timeout and a few seconds


def _bomb_warc(path):
    _, pages, _ = g.warc_bomb(path)
    return pages


def _jsonl_around(line: bytes):
    def make(path):
        before = b'{"id": "before", "text": "' + g.prose(400).encode() + b'"}\n'
        after = b'{"id": "after", "text": "' + g.prose(400, seed=3).encode() + b'"}\n'
        path.write_bytes(before + line + after)
        return len(before)  # where the hostile line starts

    return make


def _slow_page_warc(path):
    return g.warc_pages(path, [("http://example.com/slow", g.many_small_elements()), ("http://example.com/next", g.ordinary_page(7))])


# name -> (make(path) -> anything the expectation needs, expectation(made) -> dict)
CASES = {
    # a 2 MB gzip file expanding to 1.2 GB: decompression stops at max_record_bytes
    "gzip_bomb.html.gz": (g.gzip_bomb_html, lambda _: {"rejected": {"ingest:too_large": 1}}),
    # the same inside JSON Lines (one huge line between two ordinary ones, across two gzip members)
    "gzip_bomb.jsonl.gz": (
        g.gzip_bomb_jsonl,
        lambda _: {"kept_ids": ["before", "after"], "rejected": {"ingest:too_large": 1}},
    ),
    # a WARC member whose response body is 1.2 GB, and a small record whose Content-Encoding expands to 1.2 GB;
    # the pages around them are read
    "warc_bomb.warc.gz": (_bomb_warc, lambda pages: {"kept_ids": pages, "rejected": {"ingest:too_large": 2}}),
    "page_50mb.html": (g.big_page, lambda _: {"rejected": {"ingest:too_large": 1}}),
    "million_elements.html": (g.million_elements, lambda _: {"rejected": {"extract:too_many_elements": 1}}),
    "nested_divs_100k.html": (g.nested_divs, lambda _: {"rejected": {"extract:too_deeply_nested": 1}}),
    "line_100mb.jsonl": (g.single_line_jsonl, lambda _: {"kept_ids": ["before", "after"], "rejected": {"ingest:too_large": 1}}),
    "line_100mb.txt": (g.single_line_text, lambda _: {"rejected": {"ingest:too_large": 1}}),
    # 5 MB without whitespace: extracted (plain text passes through, HTML is parsed) and over max_doc_chars
    "no_whitespace_5mb.txt": (
        lambda path: path.write_text(g.no_whitespace(5_000_000)),
        lambda _: {"rejected": {"extract:text_too_long": 1}},
    ),
    "no_whitespace_5mb.html": (
        lambda path: path.write_text(g.page(f"<p>{g.no_whitespace(5_000_000)}</p>")),
        lambda _: {"rejected": {"extract:text_too_long": 1}},
    ),
    # just under max_doc_chars without whitespace: kept, and annotated in seconds (word and n-gram signals,
    # PII patterns, keyphrases over one million-character "word")
    "no_whitespace_1m_chars.txt": (
        lambda path: path.write_text(g.no_whitespace(ExtractConfig().max_doc_chars - 1)),
        lambda _: {"kept": 1, "annotate_s": 60},
    ),
    # under every cap yet slow to parse: the extraction timeout stops it, a fresh child extracts the next page
    "elements_under_cap.warc.gz": (
        _slow_page_warc,
        lambda ids: {"kept_ids": ids[1:], "rejected": {"extract:extraction_timeout": 1}},
    ),
    # Parquet: a page is decompressed whole, a dictionary value copied into every row that uses it. A 60 MB value
    # in a few KB: its page header says so, and the row group is not decoded (its row is rejected, the others read)
    "parquet_page_bomb.parquet": (
        g.parquet_page_bomb,
        lambda _: {"kept_ids": ["before", "after"], "rejected": {"ingest:too_large": 1}, "error_count": 1},
    ),
    # one 5 MB dictionary value in 240 rows (1.2 GB as rows, 3.3 GB of RSS in 1024-row batches): read in batches
    # of a few rows, each row then too long a text
    "parquet_dictionary_bomb.parquet": (
        g.parquet_dictionary_bomb,
        lambda _: {"kept_ids": ["before", "after"], "rejected": {"extract:text_too_long": 240}},
    ),
    # JSON nested a million deep, read line by line: that line is rejected, the lines around it are read
    "json_nested_1m.jsonl": (
        _jsonl_around(g.deep_json_line()),
        lambda at: {"kept_ids": ["before", "after"], "rejected": {"ingest:malformed_json": 1}, "errors": [at]},
    ),
}


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    inputs = tmp_path_factory.mktemp("large-inputs")
    outputs = tmp_path_factory.mktemp("large-outputs")
    selected = [name for name in selected_params(request, "name") if name in CASES]
    made = {}

    def job(name):
        def submit(runner):
            path = inputs / name
            made[name] = CASES[name][0](path)  # streamed to disk, a second or less each
            return runner.submit(path, outputs / name, wall_s=WALL_S)

        return submit

    with Runner() as runner:
        yield Runs(runner, {name: job(name) for name in CASES}, selected), inputs, made


@pytest.mark.parametrize("name", list(CASES))
def test_large_input(name, runs):
    runs, inputs, made = runs
    outcome = runs.get(name)
    print(f"{name}: {outcome.summary()}")
    want = CASES[name][1](made[name])
    path = inputs / name
    assert_sound(outcome, path, timeout_s=TIMEOUT_S)
    assert outcome.seconds <= WALL_S
    assert dict(outcome.reasons) == want.get("rejected", {}), outcome.summary()
    if "kept_ids" in want:
        assert [row["id"] for row in outcome.kept] == want["kept_ids"]
    else:
        assert len(outcome.kept) == want.get("kept", 0)
    if "errors" in want:
        assert [e["offset"] for e in outcome.errors] == want["errors"], outcome.errors
    if "error_count" in want:
        assert len(outcome.errors) == want["error_count"], outcome.errors
    if "annotate_s" in want:
        assert outcome.ledger["annotate"]["seconds"] <= want["annotate_s"]
    if "extract:extraction_timeout" in want.get("rejected", {}):
        (row,) = [r for r in outcome.rejected if r["reason"] == "extraction_timeout"]
        assert row["detail"] == f"no result within timeout_s={TIMEOUT_S}"


def test_the_caps_that_stop_them_are_the_defaults():
    """The expectations above assume these defaults; a changed default needs a look at the cases."""
    assert IngestConfig().max_record_bytes == 10 << 20
    extract = ExtractConfig()
    assert (extract.max_html_bytes, extract.max_elements, extract.max_doc_chars) == (5 << 20, 200_000, 1_000_000)
    assert extract.timeout_s == 10.0 and AnnotateConfig().pii


_TOKENIZE = textwrap.dedent(
    """
    import json, resource, sys, time
    sys.path.insert(0, "tests/hostile")
    import generate as g
    from tokenizers import Tokenizer
    from tokenizer.encode import encode_texts
    from tokenizer.train import MAX_CHUNK_CHARS

    tok = Tokenizer.from_file(sys.argv[1])
    out = {}
    # pieces cut before whitespace give the ids of the whole text
    text = g.prose(2 * MAX_CHUNK_CHARS + 123_457)
    out["same_ids"] = encode_texts(tok, [text, "a short one"]) == [
        tok.encode(text, add_special_tokens=False).ids, tok.encode("a short one", add_special_tokens=False).ids
    ]
    start = time.monotonic()
    ids = encode_texts(tok, [g.no_whitespace(5_000_000), g.prose(10_000_000), "short"])
    out["seconds"] = time.monotonic() - start
    out["tokens"] = [len(x) for x in ids]
    print(json.dumps(out))
    """
)


def test_long_texts_are_tokenized_in_pieces_in_bounded_memory(shared_data, tmp_path):
    """5 MB without whitespace and 10 MB of prose, in one process: the tokenizer holds 120-250x the longest
    string it gets (INDEX.md), so whole the prose alone would take 1.2-2.5 GB; in pieces of at most 1M characters
    the process peaks at 0.4-0.7 GB (the whole-text comparison included). Pieces cut before whitespace give the
    same ids as the whole text."""
    tokenizer = shared_data / "tokenizers" / "gpt2" / "hf-format" / "tokenizer.json"
    if not tokenizer.is_file():
        pytest.skip(f"no GPT-2 tokenizer at {tokenizer}")
    returncode, _, peak, timed_out = run_process(
        [sys.executable, "-c", _TOKENIZE, str(tokenizer)], tmp_path, wall_s=WALL_S
    )
    assert returncode == 0 and not timed_out, (tmp_path / "stderr.txt").read_text()[-3000:]
    result = json.loads((tmp_path / "stdout.txt").read_text())
    print(f"tokenized 15 MB in {result['seconds']:.1f}s, peak RSS {peak / 2**20:.0f} MiB, tokens {result['tokens']}")
    assert result["same_ids"]
    assert all(result["tokens"]) and peak <= RSS_LIMIT_BYTES


_ARROW_BOMB = textwrap.dedent(
    """
    import sys
    import pyarrow as pa

    schema = pa.schema([("id", pa.string()), ("text", pa.string())])
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.OSFile(sys.argv[1], "wb") as sink, pa.ipc.new_stream(sink, schema, options=options) as writer:
        for row_id, text in (("before", "an ordinary row"), ("bomb", "a" * (800 << 20)), ("after", "another row")):
            writer.write_table(pa.table({"id": [row_id], "text": [text]}, schema=schema))
    """
)


def test_a_compressed_arrow_stream_bomb_stays_under_the_memory_bound(tmp_path):
    """pyarrow decompresses an IPC record batch whole (when units are planned and again when they are read): a 20 KB
    zstd stream holding one 800 MB value took about 2.6 GB. The batch's buffer prefixes give its decompressed size
    first; it is passed over unread (its row rejected as too large) and the batch after it is read."""
    path = tmp_path / "bomb.arrows"
    returncode, _, _, _ = run_process([sys.executable, "-c", _ARROW_BOMB, str(path)], tmp_path, wall_s=WALL_S)
    assert returncode == 0, (tmp_path / "stderr.txt").read_text()[-2000:]
    with Runner(1) as runner:
        outcome = runner.run(path, tmp_path / "out", wall_s=WALL_S)
    print(f"bomb.arrows: {outcome.summary()}")
    assert_sound(outcome, path, timeout_s=TIMEOUT_S)
    assert [row["id"] for row in outcome.kept] == ["before", "after"]
    assert dict(outcome.reasons) == {"ingest:too_large": 1}, outcome.summary()
    (error,) = outcome.errors
    assert "record batch 1 (rows 1-1) not read" in error["error"], error
