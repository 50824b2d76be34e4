"""Sources other than WARC: JSONL, Parquet, Arrow IPC, saved `datasets` folders, HTML/text trees; format detection;
unit planning that never loses or repeats a record; every malformed j*, p*, a*, t* file read without a crash."""

import gzip
import json
import os
import pickle
import shutil
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpus.config import ExtractConfig, IngestConfig
from corpus.document import Document, documents_to_table, rejected_table, stable_id
from corpus.extract import Extractor
from corpus.sources import (
    Rejection,
    WorkUnit,
    expand_inputs,
    input_format,
    is_url_list,
    plan_units,
    read_unit,
    unread_inputs,
)

SAMPLE = Path(__file__).resolve().parents[1] / "corpus" / "sample_data" / "sample.warc.gz"


def read_all(paths, cfg=None, errors=None):
    cfg = cfg or IngestConfig()
    errors = [] if errors is None else errors
    return [item for unit in plan_units([str(p) for p in paths], cfg) for item in read_unit(unit, cfg, errors)]


def outcome(item) -> tuple[str, int, str]:
    doc = item.doc if isinstance(item, Rejection) else item
    return doc.id, doc.offset, item.reason if isinstance(item, Rejection) else "doc"


def counts(items) -> dict[str, int]:
    return dict(Counter(outcome(i)[2] for i in items))


def same_records_at_every_unit_size(path, sizes, cfg_fields=None) -> list:
    """Read `path` whole, then cut into units of each size: the same records, in the same order, each once."""
    whole = [outcome(i) for i in read_all([path], IngestConfig(**(cfg_fields or {})))]
    for unit_bytes in sizes:
        cfg = IngestConfig(unit_bytes=unit_bytes, **(cfg_fields or {}))
        units = plan_units([str(path)], cfg)
        assert units[0].start == 0 and units[-1].end == -1
        assert all(a.end == b.start for a, b in zip(units, units[1:]))
        assert [outcome(i) for u in units for i in read_unit(u, cfg, [])] == whole, f"unit_bytes={unit_bytes}"
    return whole


# --- JSONL -----------------------------------------------------------------------------------------------------------

JSONL_LINES = [
    b'{"id": "a", "url": "https://x.org/a", "text": "First document."}',
    b"",
    b'{"id": 7, "text": "Second, with an integer id."}\r',  # a CRLF line end
    b'{"url": "https://x.org/c", "text": null}',
    b'{"id": "d", "body": "no text field"}',
    b'{"id": "e", "text": 12}',
    b"[1, 2]",
    b'{"id": "g", "text": "cut short',
    b'{"id": "h", "text": "lone \\ud800 surrogate"}',
    b'{"text": "no id of its own"}',
]
JSONL = b"\n".join(JSONL_LINES) + b"\n"


def line_offsets() -> list[int]:
    offsets, pos = [], 0
    for line in JSONL_LINES:
        offsets.append(pos)
        pos += len(line) + 1
    return offsets


def expected_jsonl(path: Path) -> list[tuple[str, int, str]]:
    o = line_offsets()
    return [
        ("a", o[0], "doc"),
        ("7", o[2], "doc"),
        (stable_id(str(path), o[3]), o[3], "missing_field"),
        ("d", o[4], "missing_field"),
        ("e", o[5], "wrong_type"),
        (stable_id(str(path), o[6]), o[6], "wrong_type"),
        (stable_id(str(path), o[7]), o[7], "malformed_json"),
        ("h", o[8], "doc"),
        (stable_id(str(path), o[9]), o[9], "doc"),
    ]


def test_jsonl_one_item_per_line_with_reasons(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_bytes(JSONL)
    items = read_all([path])
    assert [outcome(i) for i in items] == expected_jsonl(path)
    first = items[0]
    assert (first.url, first.source, first.content_type, first.charset) == (
        "https://x.org/a",
        str(path),
        "text/plain",
        "utf-8",
    )
    assert first.raw == b"First document."
    assert items[7].raw.decode("utf-8") == "lone \ufffd surrogate"
    assert items[2].detail == "field 'text' is null (fields: text, url)"
    assert items[4].detail == "field 'text' is int, not a string"
    assert items[5].detail == "line is a JSON list, not an object"


def test_jsonl_gzip_and_zstd_read_like_the_plain_file(tmp_path):
    plain = tmp_path / "docs.jsonl"
    plain.write_bytes(JSONL)
    gz = tmp_path / "docs.jsonl.gz"
    gz.write_bytes(gzip.compress(JSONL))
    zst = tmp_path / "docs.jsonl.zst"
    zst.write_bytes(pa.compress(JSONL, codec="zstd", asbytes=True))
    plain_items = [outcome(i)[1:] for i in read_all([plain])]
    for path in (gz, zst):
        assert [outcome(i)[1:] for i in read_all([path])] == plain_items  # offsets count decompressed bytes
        assert len(plan_units([str(path)], IngestConfig(unit_bytes=1))) == 1  # a stream is one unit


def test_jsonl_units_of_any_size_give_the_same_records(tmp_path, shared_data):
    path = tmp_path / "docs.jsonl"
    path.write_bytes(JSONL)
    same_records_at_every_unit_size(path, [1, 2, 7, 40, 64, 100, 1 << 20])
    real = shared_data / "malformed" / "j01_broken_line_missing_field.jsonl"
    whole = same_records_at_every_unit_size(real, [1000, 4096, 65_537, 200_000])
    assert len(whole) == len({o[0] for o in whole}) == 999  # 1000 lines, one of them blank


def test_jsonl_field_mapping_nested_fields_times_and_html(tmp_path):
    record = {
        "doc_id": "x1",
        "content": "<html><body><p>Hello</p></body></html>",
        "meta": {"url": "https://x.org/1", "crawled": "2024-05-18T10:00:00Z"},
    }
    path = tmp_path / "custom.jsonl"
    path.write_text(
        json.dumps(record) + "\n" + json.dumps({**record, "doc_id": None, "meta": {"crawled": 1716026400}}) + "\n"
    )
    cfg = IngestConfig(
        text_field="content",
        url_field="meta.url",
        id_field="doc_id",
        fetched_at_field="meta.crawled",
        text_is_html=True,
    )
    first, second = read_all([path], cfg)
    assert (first.id, first.url, first.content_type) == ("x1", "https://x.org/1", "text/html")
    assert first.fetched_at == second.fetched_at == datetime(2024, 5, 18, 10, 0, tzinfo=timezone.utc)
    assert second.id == stable_id(str(path), second.offset) and second.url == ""


def test_jsonl_lines_over_the_size_cap_are_rejected_unparsed(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_bytes(b'{"text": "' + b"x" * 5000 + b'"}\n{"text": "small"}\n')
    items = read_all([path], IngestConfig(max_record_bytes=1000))
    assert [outcome(i)[1:] for i in items] == [(0, "too_large"), (5013, "doc")]


@pytest.mark.parametrize(
    "name, expected, error_offsets",
    [
        (
            "j01_broken_line_missing_field.jsonl",
            {"doc": 993, "malformed_json": 1, "missing_field": 2, "wrong_type": 3},
            [221546],  # the broken line is damage: under errors, and a malformed_json rejection
        ),
        ("j02_lone_surrogate_escapes.jsonl", {"doc": 100}, []),
        ("j03_empty.jsonl", {}, [0]),
        ("j04_blank_lines_only.jsonl", {}, [0]),
        ("j05_bom_crlf_trailing_garbage.jsonl", {"doc": 50, "malformed_json": 1}, [20193]),
        ("j06_deep_nesting_100k.jsonl", {"doc": 1, "malformed_json": 1}, [24]),  # pyarrow's JSON reader segfaults here
        ("j07_invalid_utf8.jsonl", {"doc": 20}, [4098]),
        ("j08_type_drift.jsonl", {"doc": 6000}, []),
    ],
)
def test_malformed_jsonl(shared_data, name, expected, error_offsets):
    path = shared_data / "malformed" / name
    errors = []
    items = read_all([path], errors=errors)
    assert counts(items) == expected
    assert [e["offset"] for e in errors] == error_offsets
    assert all(e["path"] == str(path) and e["error"] for e in errors)


def test_malformed_jsonl_details(shared_data):
    folder = shared_data / "malformed"
    j01 = read_all([folder / "j01_broken_line_missing_field.jsonl"])
    reasons = {(i.doc.id, i.reason, i.detail) for i in j01 if isinstance(i, Rejection)}
    assert ("602", "wrong_type", "field 'text' is int, not a string") in reasons
    assert ("six-hundred-three", "wrong_type", "field 'text' is dict, not a string") in reasons
    assert ("606", "wrong_type", "field 'text' is float, not a string") in reasons  # NaN
    j05 = read_all([folder / "j05_bom_crlf_trailing_garbage.jsonl"])
    assert j05[0].id == "0" and not j05[0].raw.endswith(b"\r")  # BOM and CRLF gone
    j06 = read_all([folder / "j06_deep_nesting_100k.jsonl"])
    assert j06[1].detail == "nested deeper than the parser allows"
    errors = []
    j07 = read_all([folder / "j07_invalid_utf8.jsonl"], errors=errors)
    assert "\ufffd" in j07[10].raw.decode("utf-8")
    assert errors[0]["error"] == "1 line(s) with invalid UTF-8, read with U+FFFD replacements (first at 4098)"
    j08 = read_all([folder / "j08_type_drift.jsonl"])
    assert {type(d.id) for d in j08} == {str}


# --- Parquet and Arrow -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, n_docs, errors_expected",
    [
        ("p01_valid_reference.parquet", 2000, []),
        ("p01b_valid_with_page_checksums.parquet", 2000, []),
        ("p02_wrong_schema.parquet", 0, [(0, "wrong schema: column 'text' is int64, not a string")]),
        ("p03_truncated_footer.parquet", 0, [(0, "not a readable Parquet file")]),
        ("p04_truncated_half.parquet", 0, [(0, "not a readable Parquet file")]),
        (
            "p05_corrupt_page_no_checksum.parquet",
            1500,
            [(37716, "row group 1 (rows 500-999) unreadable, 500 rows lost")],
        ),
        (
            "p06_corrupt_page_with_checksum.parquet",
            1500,
            [(37752, "row group 1 (rows 500-999) unreadable, 500 rows lost")],
        ),
        ("p07_bad_magic.parquet", 2000, [(0, "file does not start with the Parquet magic PAR1")]),
        ("p08_empty.parquet", 0, [(0, "not a readable Parquet file")]),
        ("p09_zero_rows.parquet", 0, []),
        ("p10_footer_len_huge.parquet", 0, [(0, "not a readable Parquet file")]),
        ("a01_valid_reference.arrow", 2000, []),
        (
            "a02_truncated_file.arrow",
            1000,
            [(231654, "Arrow IPC file without a readable footer"), (191456, "record batch 2 unreadable")],
        ),
        ("a03_valid_stream.arrows", 2000, []),
        ("a04_truncated_stream.arrows", 1000, [(191448, "record batch 2 unreadable")]),
        ("a05_empty.arrow", 0, [(0, "empty file")]),
        ("a06_wrong_schema.arrow", 0, [(0, "wrong schema: column 'text' is int64, not a string")]),
        # flipped bytes in the id column: Arrow cannot tell (validate(full=True) passes); the manifest's sha256 can
        ("a07_corrupt_body.arrow", 2000, []),
    ],
)
def test_malformed_tables(shared_data, name, n_docs, errors_expected):
    path = shared_data / "malformed" / name
    for unit_bytes in (1, 1 << 30):  # one unit per row group / batch, or one for the file: the same outcome
        errors = []
        items = read_all([path], IngestConfig(unit_bytes=unit_bytes), errors)
        assert counts(items) == ({"doc": n_docs} if n_docs else {})
        assert [
            (e["offset"], e["error"][: len(msg)]) for e, (_, msg) in zip(errors, errors_expected)
        ] == errors_expected
        assert len(errors) == len(errors_expected)
    if n_docs:
        assert items[0].id == "0" and items[0].url == "http://example.com/0" and items[0].content_type == "text/plain"
        assert [d.offset for d in items[:3]] == [0, 1, 2]  # row numbers


def test_parquet_damage_names_the_row_group(shared_data):
    errors = []
    items = read_all([shared_data / "malformed" / "p06_corrupt_page_with_checksum.parquet"], errors=errors)
    assert errors[0]["row_group"] == 1 and "CRC checksum" in errors[0]["error"]
    assert [d.offset for d in items[499:501]] == [499, 1000]  # the rows around the lost group


def test_arrow_file_and_stream_hold_the_same_records(shared_data):
    folder = shared_data / "malformed"
    ids = [outcome(i) for i in read_all([folder / "a01_valid_reference.arrow"])]
    assert [o[0] for o in ids] == [outcome(i)[0] for i in read_all([folder / "a03_valid_stream.arrows"])]
    assert len(plan_units([str(folder / "a03_valid_stream.arrows")], IngestConfig(unit_bytes=1))) == 4  # one per batch


def test_an_arrow_batch_with_bad_offsets_is_reported_not_converted(tmp_path):
    """IPC reading trusts the offsets it is given; converting a batch whose string offsets point past its data would
    read out of bounds. Batches are validated first: the bad one is reported, the others kept with their row numbers."""
    good = pa.record_batch({"text": pa.array(["one", "two"])})
    marked = pa.record_batch({"text": pa.array(["m" * 77])})  # offsets [0, 77]
    path = tmp_path / "bad.arrows"
    with pa.ipc.new_stream(path, good.schema) as writer:
        for batch in (good, marked, good):
            writer.write_batch(batch)
    data = path.read_bytes()
    at = data.rindex(b"\x00\x00\x00\x00\x4d\x00\x00\x00") + 4  # in the body, after the batch's metadata
    path.write_bytes(data[:at] + b"\xff\xff\x00\x00" + data[at + 4 :])  # the offset now points 65,535 bytes on
    errors = []
    items = read_all([path], errors=errors)
    assert [(d.offset, d.raw) for d in items] == [(0, b"one"), (1, b"two"), (3, b"one"), (4, b"two")]
    assert len(errors) == 1 and errors[0]["error"].startswith("record batch 1 (rows 2-2) is invalid, 1 rows lost")


def test_damaged_compressed_jsonl_keeps_the_lines_before(tmp_path):
    lines = b"".join(b'{"id": %d, "text": "line %d of a longer file"}\n' % (i, i) for i in range(20_000))
    gz = tmp_path / "cut.jsonl.gz"
    gz.write_bytes(gzip.compress(lines)[:10_000])
    zst = tmp_path / "cut.jsonl.zst"  # zstd decodes whole blocks (up to 128 KB): the cut loses the block it is in
    zstd = pa.compress(lines, codec="zstd", asbytes=True)
    zst.write_bytes(zstd[: len(zstd) // 2])
    for path in (gz, zst):
        errors = []
        items = read_all([path], errors=errors)
        assert len(items) > 50 and [d.id for d in items] == [str(i) for i in range(len(items))]
        assert all(isinstance(d, Document) for d in items[:-1])  # the last may be the line the cut went through
        assert len(errors) == 1 and "stream unreadable after the record at" in errors[0]["error"]


def test_tables_with_struct_columns_binary_text_and_many_row_groups(tmp_path):
    table = pa.table(
        {
            "doc_id": pa.array([100 + i for i in range(10)]),
            "content": pa.array([f"Row {i} text." if i != 4 else None for i in range(10)]),
            "meta": pa.array([{"url": f"https://x.org/{i}"} for i in range(10)]),
        }
    )
    parquet = tmp_path / "t.parquet"
    pq.write_table(table, parquet, row_group_size=3)
    arrow = tmp_path / "t.arrow"
    with pa.ipc.new_stream(arrow, table.schema) as writer:
        for batch in table.to_batches(max_chunksize=4):
            writer.write_batch(batch)
    fields = dict(text_field="content", url_field="meta.url", id_field="doc_id")
    for path in (parquet, arrow):
        whole = same_records_at_every_unit_size(path, [1, 100, 300, 1 << 20], fields)
        assert whole[4] == ("104", 4, "missing_field")
        assert [o[0] for o in whole] == [str(100 + i) for i in range(10)]
        items = read_all([path], IngestConfig(**fields))
        assert items[9].url == "https://x.org/9" and items[9].raw == b"Row 9 text."
    binary = tmp_path / "b.parquet"
    pq.write_table(pa.table({"text": pa.array([b"<html><meta charset=latin-1>caf\xe9</html>"], pa.binary())}), binary)
    (doc,) = read_all([binary], IngestConfig(text_is_html=True))
    assert doc.raw.endswith(b"caf\xe9</html>") and doc.charset == "" and doc.content_type == "text/html"


def test_a_saved_datasets_folder_reads_its_data_files_in_order(tmp_path):
    datasets = pytest.importorskip("datasets")
    rows = {
        "id": [f"r{i}" for i in range(6)],
        "text": [f"Text {i}." for i in range(6)],
        "url": [f"https://x.org/{i}" for i in range(6)],
    }
    ds = datasets.Dataset.from_dict(rows)
    ds.save_to_disk(str(tmp_path / "one"), num_shards=3)
    datasets.DatasetDict({"train": ds, "test": ds.select([0, 1])}).save_to_disk(str(tmp_path / "dict"))
    (tmp_path / "one" / "cache-leftover.arrow").write_bytes(b"not data")  # only state.json's files are data
    files = expand_inputs([str(tmp_path / "one")])
    assert [Path(p).name for p in files] == [f"data-0000{i}-of-00003.arrow" for i in range(3)]
    assert [d.id for d in read_all([tmp_path / "one"])] == rows["id"]
    assert [d.id for d in read_all([tmp_path / "dict"])] == rows["id"] + ["r0", "r1"]
    assert [d.id for d in read_all([tmp_path])] == rows["id"] + ["r0", "r1"] + rows["id"]  # found while walking


# --- HTML and text trees, format detection ---------------------------------------------------------------------------


def make_tree(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "a.html").write_bytes(b"<html><body><p>A</p></body></html>")
    (root / "b.htm").write_bytes(b"<html><body><p>B</p></body></html>")
    (root / "sub" / "c.txt").write_text("Plain text C.\n")
    (root / "sub" / "d.html").write_bytes(b"<html><body><p>D</p></body></html>")
    (root / ".hidden.html").write_text("<p>hidden</p>")
    (root / "notes.md").write_text("# not an input")


def test_html_and_text_trees_one_document_per_file(tmp_path):
    make_tree(tmp_path)
    files = expand_inputs([str(tmp_path)])
    assert [os.path.relpath(p, tmp_path) for p in files] == ["a.html", "b.htm", "sub/c.txt", "sub/d.html"]
    items = read_all([tmp_path])
    assert [(os.path.relpath(d.source, tmp_path), d.offset, d.content_type) for d in items] == [
        ("a.html", 0, "text/html"),
        ("b.htm", 0, "text/html"),
        ("sub/c.txt", 0, "text/plain"),
        ("sub/d.html", 0, "text/html"),
    ]
    assert items[0].id == stable_id(str(tmp_path / "a.html"), 0)
    assert items[0].url == (tmp_path / "a.html").resolve().as_uri() and items[0].url.startswith("file:///")
    assert items[2].raw == b"Plain text C.\n"


def test_compressed_pages_are_read_decompressed_within_the_size_cap(tmp_path):
    page = b"<html><body><p>Gzipped page.</p></body></html>"
    (tmp_path / "a.html.gz").write_bytes(gzip.compress(page))
    pa.output_stream(str(tmp_path / "b.html.zst"), compression="zstd").write(page)
    (tmp_path / "c.txt.gz").write_bytes(gzip.compress(b"Plain text.\n"))
    (tmp_path / "d.html.gz").write_bytes(gzip.compress(page)[:-12])  # cut before the end of the stream
    (tmp_path / "e.html.gz").write_bytes(gzip.compress(b"<p>" + b"x" * 5000 + b"</p>"))  # 5 KB from a few bytes
    items = read_all([tmp_path], IngestConfig(max_record_bytes=4096))
    by_name = {Path(item.doc.source if isinstance(item, Rejection) else item.source).name: item for item in items}
    assert by_name["a.html.gz"].raw == page and by_name["a.html.gz"].content_type == "text/html"
    assert by_name["b.html.zst"].raw == page
    assert by_name["c.txt.gz"].raw == b"Plain text.\n" and by_name["c.txt.gz"].content_type == "text/plain"
    assert by_name["d.html.gz"].reason == "unreadable_file" and "EOFError" in by_name["d.html.gz"].detail
    assert by_name["e.html.gz"].reason == "too_large" and "after decompression" in by_name["e.html.gz"].detail


def test_files_no_reader_handles_are_listed_not_skipped_quietly(tmp_path):
    make_tree(tmp_path)
    (tmp_path / "notes.docx").write_bytes(b"PK\x03\x04 not a page")
    (tmp_path / "sub" / "image.png").write_bytes(b"\x89PNG\r\n")
    (tmp_path / ".hidden").write_text("skipped on purpose: hidden")
    assert sorted(os.path.relpath(p, tmp_path) for p in unread_inputs([str(tmp_path)])) == ["notes.docx", "notes.md", "sub/image.png"]
    assert unread_inputs([str(tmp_path / "a.html")]) == []
    as_glob = [str(tmp_path / "*")]  # a stray file matched by a glob is listed too, and stops nothing
    assert [os.path.relpath(p, tmp_path) for p in expand_inputs(as_glob)] == ["a.html", "b.htm", "sub/c.txt", "sub/d.html"]
    assert sorted(os.path.relpath(p, tmp_path) for p in unread_inputs(as_glob)) == ["notes.docx", "notes.md", "sub/image.png"]


def test_file_groups_make_units_without_losing_a_file(tmp_path):
    for i in range(7):
        (tmp_path / f"p{i}.html").write_text(f"<p>{i}</p>")
    (tmp_path / "z.txt").write_text("text")
    units = plan_units([str(tmp_path)], IngestConfig(files_per_unit=3))
    assert [(u.format, len(u.files)) for u in units] == [("html", 3), ("html", 3), ("html", 1), ("text", 1)]
    assert pickle.loads(pickle.dumps(units[0])) == units[0]
    for size in (1, 20, 1 << 20):  # unit_bytes also closes a group
        cfg = IngestConfig(unit_bytes=size)
        ids = [d.id for u in plan_units([str(tmp_path)], cfg) for d in read_unit(u, cfg, [])]
        assert len(ids) == len(set(ids)) == 8


def test_formats_by_name_and_by_first_bytes(tmp_path, shared_data):
    parquet_named_jsonl = tmp_path / "data.jsonl"
    shutil.copy(shared_data / "malformed" / "p01_valid_reference.parquet", parquet_named_jsonl)
    gz_jsonl = tmp_path / "dump.gz"
    gz_jsonl.write_bytes(gzip.compress(b'{"text": "x"}\n'))
    json_named = tmp_path / "records.json"
    json_named.write_text('{"text": "x"}\n')
    page = tmp_path / "page"
    page.write_text("<!DOCTYPE html><html><body>x</body></html>")
    warc_gz = tmp_path / "crawl.gz"
    shutil.copy(SAMPLE, warc_gz)
    urls = tmp_path / "urls.txt"
    urls.write_text("https://a.org/\n# comment\nhttp://b.org/x?y=1\n")
    text = tmp_path / "mixed.txt"
    text.write_text("https://a.org/ is a site\n")
    mystery = tmp_path / "mystery.bin"
    mystery.write_bytes(b"\x00\x01binary")
    got = {
        p.name: input_format(str(p))
        for p in (parquet_named_jsonl, gz_jsonl, json_named, page, warc_gz, urls, text, mystery)
    }
    assert got == {
        "data.jsonl": "parquet",
        "dump.gz": "jsonl",
        "records.json": "jsonl",
        "page": "html",
        "crawl.gz": "warc",
        "urls.txt": "urls",
        "mixed.txt": "text",
        "mystery.bin": "",
    }
    assert is_url_list(str(urls)) and not is_url_list(str(text))
    with pytest.raises(ValueError, match="mystery.bin.*unknown format.*ingest.format"):
        plan_units([str(mystery)], IngestConfig())
    (unit,) = plan_units([str(mystery)], IngestConfig(format="text"))  # the override reads anything
    assert unit.format == "text"
    # walking a folder takes a file by its name, or by first bytes that prove a binary format (not by a text guess)
    walked = {Path(p).name for p in expand_inputs([str(tmp_path)])}
    assert walked == {"data.jsonl", "crawl.gz", "urls.txt", "mixed.txt"}


def test_one_folder_with_every_format_is_read_in_one_plan(tmp_path, shared_data):
    os.symlink(SAMPLE, tmp_path / "sample.warc.gz")
    shutil.copy(shared_data / "malformed" / "p01_valid_reference.parquet", tmp_path / "table.parquet")
    shutil.copy(shared_data / "malformed" / "a03_valid_stream.arrows", tmp_path / "table.arrows")
    (tmp_path / "docs.jsonl").write_bytes(JSONL)
    (tmp_path / "page.html").write_text("<html><body><p>Hello</p></body></html>")
    units = plan_units([str(tmp_path)], IngestConfig())
    assert sorted({u.format for u in units}) == ["arrow", "html", "jsonl", "parquet", "warc"]
    items = [i for u in units for i in read_unit(u, IngestConfig(), [])]
    assert counts(items) == {"doc": 509 + 2000 + 2000 + 4 + 1, "missing_field": 2, "wrong_type": 2, "malformed_json": 1}


# --- the text that reaches Arrow -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "t01_nul_bytes.txt",
        "t02_wtf8_lone_surrogates.txt",
        "t06_zero_width_control.txt",
        "t07_rtl_cjk.txt",
        "t08_empty.txt",
        "t09_combining_marks_100k.txt",
        "j02_lone_surrogate_escapes.jsonl",
        "j07_invalid_utf8.jsonl",
    ],
)
def test_hostile_text_reaches_arrow_clean(shared_data, name):
    path = shared_data / "malformed" / name
    items = read_all([path])
    assert items and all(isinstance(i, Document) for i in items)
    kept, rejected = [], []
    with Extractor(ExtractConfig()) as extractor:  # text/plain passes through: no trafilatura child is started
        for item in items:
            result = extractor.extract(item)
            (rejected if isinstance(result, Rejection) else kept).append(result)
    assert extractor._process is None
    for doc in kept:
        assert "\x00" not in doc.text and not any(0xD800 <= ord(c) <= 0xDFFF for c in doc.text)
    documents_to_table(kept)  # Arrow accepts every string
    rejected_table([r.doc.to_rejected_row(r.stage, r.reason, r.detail) for r in rejected])
    if name == "t08_empty.txt":
        assert [r.reason for r in rejected] == ["empty_extraction"]
    else:
        assert rejected == []


def test_work_units_are_plain_picklable_values(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_bytes(JSONL)
    unit = plan_units([str(path)], IngestConfig())[0]
    assert unit == WorkUnit(str(path), 0, -1, "jsonl") and pickle.loads(pickle.dumps(unit)) == unit
    assert len(list(read_unit(unit, IngestConfig(max_records=3), []))) == 3
