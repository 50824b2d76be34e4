"""WARC/ARC reading: record counts on real archives, unit planning that never loses or repeats a record,
damaged files that are reported and resumed, and the per-record checks (size, encoding, binary, status)."""

import codecs
import gzip
import pickle
import re
import zlib
from datetime import datetime, timezone
from pathlib import Path

import pytest
from fastwarc.warc import ArchiveIterator, WarcRecord

from corpus.config import IngestConfig
from corpus.document import Document
from corpus.sources import Rejection, WorkUnit, decode, expand_inputs, plan_units, read_unit
from corpus.sources.decode import CONTROL_FREE_CODECS, decode_html, has_c0_bytes, strip_controls, utf8_has_controls
from corpus.sources.warc import _warc_date, dechunk, parse_content_type, undo_content_encoding

SAMPLE = Path(__file__).resolve().parents[1] / "corpus" / "sample_data" / "sample.warc.gz"


def read_all(paths, cfg=None, errors=None):
    cfg = cfg or IngestConfig()
    errors = [] if errors is None else errors
    return [item for unit in plan_units([str(p) for p in paths], cfg) for item in read_unit(unit, cfg, errors)]


def outcome(item) -> tuple[str, int, str]:
    """(id, offset, "doc" or the rejection reason) of a read item."""
    doc = item.doc if isinstance(item, Rejection) else item
    return doc.id, doc.offset, item.reason if isinstance(item, Rejection) else "doc"


# --- hand-made archives ----------------------------------------------------------------------------------------------


def http_response(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    head = "\r\n".join([f"HTTP/1.1 {status}", *headers]) + "\r\n\r\n"
    return head.encode() + body


def warc_record(n: int, block: bytes, *, record_type: str = "response", uri: str = "", content_type: str = "") -> bytes:
    content_type = content_type or ("application/http; msgtype=response" if record_type == "response" else "text/plain")
    head = (
        "WARC/1.0\r\n"
        f"WARC-Type: {record_type}\r\n"
        f"WARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-{n:012d}>\r\n"
        "WARC-Date: 2024-05-18T10:00:00Z\r\n"
        f"WARC-Target-URI: {uri or f'https://example.org/{n}'}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(block)}\r\n\r\n"
    )
    return head.encode() + block + b"\r\n\r\n"


PAGE = b"<html><body><p>A page about rivers and bridges.</p></body></html>"


def write_warc(path: Path, records: list[bytes], *, gz: bool) -> Path:
    path.write_bytes(b"".join(gzip.compress(r) for r in records) if gz else b"".join(records))
    return path


# --- the bundled sample ----------------------------------------------------------------------------------------------


def test_sample_yields_its_509_response_records_with_provenance():
    items = read_all([SAMPLE])
    assert len(items) == 509
    assert all(isinstance(item, Document) for item in items)
    assert len({d.id for d in items}) == 509
    first = items[0]
    assert first.id == "urn:uuid:f622b8c5-6e0d-5ad3-bf1e-21f66edd7bce"  # angle brackets stripped
    assert first.url == "https://doc.rust-lang.org/std/iter/index.html"
    assert first.offset == 528 and first.source == str(SAMPLE)
    assert first.fetched_at == datetime(2026, 5, 20, 16, 48, 39, tzinfo=timezone.utc)
    assert (first.content_type, first.charset) == ("text/html", "utf-8")
    assert first.raw.startswith(b"<!DOCTYPE html>") and len(first.raw) == 43913
    assert items[-1].offset == 4224233


@pytest.mark.parametrize("unit_bytes", [1, 4096, 65_537, 300_000, 1_000_000, 4_227_589, 1 << 30])
def test_units_of_any_size_cover_every_sample_record_exactly_once(unit_bytes):
    cfg = IngestConfig(unit_bytes=unit_bytes)
    units = plan_units([str(SAMPLE)], cfg)
    assert units[0].start == 0 and units[-1].end == -1
    assert all(a.end == b.start for a, b in zip(units, units[1:]))
    ids = [outcome(item)[0] for unit in units for item in read_unit(unit, cfg, [])]
    assert len(ids) == len(set(ids)) == 509
    if unit_bytes == 1:
        assert len(units) == 510  # one unit per record (the warcinfo record gets its own)


def test_units_are_picklable_and_max_records_limits_a_unit():
    unit = plan_units([str(SAMPLE)], IngestConfig())[0]
    assert pickle.loads(pickle.dumps(unit)) == unit == WorkUnit(str(SAMPLE), 0, -1, "warc")
    assert len(list(read_unit(unit, IngestConfig(max_records=7), []))) == 7
    rejection = Rejection(Document(id="i", source="s", offset=3, url="u"), "ingest", "too_large", "payload 9 bytes")
    assert pickle.loads(pickle.dumps(rejection)) == rejection


def test_inputs_expand_directories_and_globs_and_name_bad_paths(tmp_path):
    write_warc(tmp_path / "a.warc.gz", [warc_record(1, http_response(PAGE))], gz=True)
    (tmp_path / "sub").mkdir()
    write_warc(tmp_path / "sub" / "b.warc", [warc_record(2, http_response(PAGE))], gz=False)
    (tmp_path / "notes.md").write_text("not an archive")
    assert expand_inputs([str(tmp_path)]) == [str(tmp_path / "a.warc.gz"), str(tmp_path / "sub" / "b.warc")]
    assert expand_inputs([str(tmp_path / "*.warc.gz")]) == [str(tmp_path / "a.warc.gz")]
    with pytest.raises(ValueError, match="missing.warc.gz.*does not exist"):
        plan_units([str(tmp_path / "missing.warc.gz")], IngestConfig())
    with pytest.raises(ValueError, match="notes.md.*unknown format"):
        plan_units([str(tmp_path / "notes.md")], IngestConfig())
    with pytest.raises(ValueError, match="matches no file"):
        plan_units([str(tmp_path / "*.arc")], IngestConfig())


# --- real archives (counts from warc/SOURCE.md) ----------------------------------------------------------------------


def test_common_crawl_excerpt_gzip_and_lz4_give_the_same_16_pages(shared_data):
    cc = shared_data / "warc" / "commoncrawl"
    gz = read_all([cc / "resiliparse-CC-MAIN-2020-34-excerpt.warc.gz"])
    lz4 = read_all([cc / "resiliparse-CC-MAIN-2020-34-excerpt.warc.lz4"])
    assert len(gz) == 16 and all(isinstance(d, Document) and d.content_type == "text/html" for d in gz)
    assert [d.id for d in gz] == [d.id for d in lz4]
    assert {d.charset.lower() for d in gz} == {"", "gb2312", "windows-1251", "utf-8"}  # "": declared in <meta> only
    # unit planning on LZ4 frames cuts at frame starts
    cfg = IngestConfig(unit_bytes=4096)
    units = plan_units([str(cc / "resiliparse-CC-MAIN-2020-34-excerpt.warc.lz4")], cfg)
    assert len(units) > 10
    assert [outcome(i)[0] for u in units for i in read_unit(u, cfg, [])] == [d.id for d in gz]


@pytest.mark.parametrize(
    "relpath, expected",
    [
        ("commoncrawl/cc-whirlwind-CC-MAIN-2024-22-whirlwind.warc.gz", {"doc": 1}),
        ("commoncrawl/cc-whirlwind-CC-MAIN-2024-22-whirlwind.warc.wet.gz", {"doc": 1}),  # the text conversion
        # 22 responses + 2 wget resources (log and manifest under metadata:// URIs)
        ("real-crawls/dolma-wget-2024-sample-0000.warc.gz", {"doc": 22, "unsupported_uri_scheme": 2}),
        # 48 responses (20 html, css/js/fonts/images, redirects); revisits and requests are not input records
        ("real-crawls/pywb-iana.warc.gz", {"doc": 16, "unsupported_content_type": 28, "http_status": 4}),
        ("real-crawls/ukwa-IAH-urls-wget.warc.gz", {"doc": 3, "http_status": 9, "unsupported_content_type": 4, "unsupported_uri_scheme": 3}),
        ("malformed/resiliparse-clueweb09-ja-quirk.warc.gz", {"doc": 29}),  # WARC/0.18, invalid dates
        ("library-examples/warcio-example-iana.org-chunked.warc", {"doc": 1}),
        ("library-examples/warcio-example.arc.gz", {"doc": 1}),
        ("library-examples/warcio-example.arc", {"doc": 1}),
        # the same crawl as WARC and as ARC: the same outcomes (a dns: capture, robots.txt, images)
        ("malformed/ukwa-IAH-blackbook-truncated.warc.gz", {"doc": 3, "unsupported_content_type": 4, "unsupported_uri_scheme": 1}),
        ("malformed/ukwa-IAH-blackbook-truncated.arc.gz", {"doc": 3, "unsupported_content_type": 4, "unsupported_uri_scheme": 1}),
    ],
)
def test_real_archives_record_outcomes(shared_data, relpath, expected):
    errors = []
    items = read_all([shared_data / "warc" / relpath], errors=errors)
    counts = {}
    for item in items:
        reason = outcome(item)[2]
        counts[reason] = counts.get(reason, 0) + 1
    assert counts == expected
    assert errors == []


def test_wget_angle_bracket_uris_and_undated_clueweb_records(shared_data):
    dolma = read_all([shared_data / "warc" / "real-crawls" / "dolma-wget-2024-sample-0000.warc.gz"])
    assert all(d.doc.url.startswith("metadata://") for d in dolma if isinstance(d, Rejection))
    assert all(d.url.startswith("http") and "<" not in d.url for d in dolma if isinstance(d, Document))
    clueweb = read_all([shared_data / "warc" / "malformed" / "resiliparse-clueweb09-ja-quirk.warc.gz"])
    assert {d.charset.lower() for d in clueweb} == {"euc-jp"}


def test_chunked_bodies_are_dechunked_even_when_stored_decoded(shared_data):
    chunked = read_all([shared_data / "warc" / "library-examples" / "warcio-example-iana.org-chunked.warc"])
    assert chunked[0].raw.startswith(b"<!doctype html>") and chunked[0].raw.rstrip().endswith(b"</html>")
    # pywb stores bodies de-chunked but keeps "Transfer-Encoding: chunked"
    iana = read_all([shared_data / "warc" / "real-crawls" / "pywb-iana.warc.gz"])
    assert any(isinstance(d, Document) and d.raw.lstrip().lower().startswith(b"<!doctype html>") for d in iana)


# --- damaged archives: never raise, keep what is before, report path and offset, resume after -----------------------

W01_IDS = [
    "urn:uuid:f149f542-e935-b870-1734-6b4501eaf614",
    "urn:uuid:08f0ebd4-950c-ddd9-ce97-b5bdf073eed1",
    "urn:uuid:19322fed-157c-f9c6-b16e-2d5cabeb9592",
    "urn:uuid:04762a22-3c9f-90c9-5ac9-6628c4381836",
]


@pytest.mark.parametrize(
    "name, expected, error_offsets",
    [
        ("w01_valid_reference.warc.gz", [(W01_IDS[i], "doc") for i in range(4)], []),
        ("w02_truncated_mid_member.warc.gz", [(W01_IDS[0], "doc"), (W01_IDS[1], "doc"), (W01_IDS[2], "truncated_record")], [2637]),
        ("w03_truncated_mid_gzip_header.warc.gz", [(W01_IDS[0], "doc"), (W01_IDS[1], "doc")], [2637]),
        ("w04_truncated_uncompressed.warc", [(W01_IDS[i], "doc") for i in range(3)] + [(W01_IDS[3], "truncated_record")], [8970]),
        # a corrupt member in the middle: the records after it are found again
        ("w10_corrupt_deflate_member.warc.gz", [(W01_IDS[0], "doc"), (W01_IDS[2], "doc"), (W01_IDS[3], "doc")], [1413]),
        ("w11_garbage_between_records.warc.gz", [(W01_IDS[0], "doc"), (W01_IDS[1], "doc")], [215]),
        ("w13_empty.warc.gz", [], [0]),
        ("w14_not_a_warc.warc.gz", [], [0]),
    ],
)
def test_damaged_warcs_keep_records_and_report_offsets(shared_data, name, expected, error_offsets):
    path = shared_data / "malformed" / name
    for unit_bytes in (1, 1000, 1 << 30):  # the same outcome however the file is cut into units
        errors = []
        items = read_all([path], IngestConfig(unit_bytes=unit_bytes), errors)
        assert [(outcome(i)[0], outcome(i)[2]) for i in items] == expected
        assert [e["offset"] for e in errors] == error_offsets
        assert all(e["path"] == str(path) and e["error"] for e in errors)


def test_only_web_target_uris_are_read(shared_data):
    items = read_all([shared_data / "malformed" / "w16_weird_target_uris.warc.gz"])
    rejected = [i.doc.url for i in items if isinstance(i, Rejection)]
    assert rejected == ["file:///etc/passwd", "javascript:alert(1)", "gopher://127.0.0.1:25/"]
    assert all(i.reason == "unsupported_uri_scheme" for i in items if isinstance(i, Rejection))
    assert len(items) == 7


def test_binary_labelled_html_is_rejected_at_ingest(shared_data):
    items = read_all([shared_data / "malformed" / "w12_binary_labelled_html.warc.gz"])
    assert [outcome(i)[2] for i in items] == ["binary_payload", "binary_payload", "doc"]
    assert items[0].stage == "ingest" and "content_type=text/html" in items[0].detail


def test_http_content_encoding_bomb_is_too_large(shared_data):
    items = read_all([shared_data / "malformed" / "b03_http_content_encoding_bomb.warc.gz"])
    assert [(i.reason, i.stage) for i in items] == [("too_large", "ingest")]


def _cut_members(data: bytes) -> list[int]:
    """Start offsets of the gzip members of the sample (each holds one record)."""
    starts, pos = [], 0
    while pos < len(data):
        starts.append(pos)
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        inflater.decompress(data[pos:])
        pos = len(data) - len(inflater.unused_data)
    return starts


@pytest.fixture(scope="module")
def sample_members():
    data = SAMPLE.read_bytes()
    return data, _cut_members(data)


def test_truncated_copy_of_the_sample_keeps_every_complete_record(tmp_path, sample_members):
    data, starts = sample_members
    cut = starts[300] + 500  # inside the member of record 300 (the warcinfo record is member 0)
    path = tmp_path / "cut.warc.gz"
    path.write_bytes(data[:cut])
    errors = []
    items = read_all([path], IngestConfig(unit_bytes=100_000), errors)
    assert [outcome(i)[2] for i in items[:299]] == ["doc"] * 299
    assert len(items) in (299, 300) and all(outcome(i)[2] != "doc" for i in items[299:])
    assert [e["offset"] for e in errors] == [starts[300]]


def test_garbage_between_members_is_skipped_and_reading_resumes(tmp_path, sample_members):
    data, starts = sample_members
    garbage = bytes(range(256)) * 8 + b"\x1f\x8b\x08 not a member"  # includes a false gzip magic
    path = tmp_path / "garbage.warc.gz"
    path.write_bytes(data[: starts[100]] + garbage + data[starts[100] :])
    for unit_bytes in (50_000, 1 << 30):
        errors = []
        items = read_all([path], IngestConfig(unit_bytes=unit_bytes), errors)
        assert len(items) == 509 and all(isinstance(i, Document) for i in items)
        assert [e["offset"] for e in errors] == [starts[100]]


def test_uncompressed_garbage_and_a_lying_content_length(tmp_path):
    records = [warc_record(i, http_response(PAGE)) for i in range(4)]
    block_length = len(http_response(PAGE))
    too_long = records[2].replace(f"Content-Length: {block_length}\r\n".encode(), f"Content-Length: {block_length + 9000}\r\n".encode())
    path = write_warc(tmp_path / "x.warc", [records[0], b"\r\nGARBAGE LINE\r\n" * 3, records[1], too_long, records[3]], gz=False)
    errors = []
    items = read_all([path], errors=errors)
    # record 2 claims more bytes than the file holds: rejected, and record 3 inside its claimed span is found
    assert [(outcome(i)[0][-1], outcome(i)[2]) for i in items] == [("0", "doc"), ("1", "doc"), ("2", "truncated_record"), ("3", "doc")]
    garbage_at = len(records[0]) + 2  # after the line end that a record may be followed by
    assert [e["offset"] for e in errors] == [garbage_at, len(records[0]) + 48 + len(records[1])]
    assert errors[0]["error"] == "46 unreadable bytes before the record at 377"


# --- per-record checks -----------------------------------------------------------------------------------------------


def test_record_checks_status_type_size_encoding_and_binary(tmp_path):
    gz_page = gzip.compress(PAGE)
    bomb = gzip.compress(b"\0" * (3 << 20))
    records = [
        warc_record(0, http_response(gz_page, "Content-Type: text/html; charset=ISO-8859-1", "Content-Encoding: gzip")),
        warc_record(1, http_response(zlib.compress(PAGE), "Content-Type: text/html", "Content-Encoding: deflate")),
        warc_record(2, http_response(bomb, "Content-Type: text/html", "Content-Encoding: gzip")),
        warc_record(3, http_response(b"x" * (2 << 20), "Content-Type: text/html")),
        warc_record(4, http_response(b"\x89PNG\r\n\x1a\n" + b"\0" * 100, "Content-Type: image/png")),
        warc_record(5, http_response(b"%PDF-1.4 ...", "Content-Type: text/html")),
        warc_record(6, http_response(b"gone", "Content-Type: text/html", status="404 Not Found")),
        warc_record(7, http_response(PAGE, "Content-Type: text/html", "Content-Encoding: compress")),
        warc_record(8, b"GET / HTTP/1.1\r\n\r\n", record_type="request"),
        warc_record(9, b"plain text body", record_type="resource", content_type="text/plain"),
        warc_record(10, http_response(b"8\r\n<p>hi</p\r\n1\r\n>\r\n0\r\n\r\n", "Content-Type: text/html", "Transfer-Encoding: chunked")),
    ]
    path = write_warc(tmp_path / "checks.warc.gz", records, gz=True)
    items = read_all([path], IngestConfig(max_record_bytes=1 << 20))
    got = [(outcome(i)[0][-2:], outcome(i)[2]) for i in items]
    assert got == [
        ("00", "doc"), ("01", "doc"), ("02", "too_large"), ("03", "too_large"), ("04", "unsupported_content_type"),
        ("05", "binary_payload"), ("06", "http_status"), ("07", "bad_content_encoding"), ("09", "doc"), ("10", "doc"),
    ]
    assert items[0].raw == PAGE and items[0].charset == "ISO-8859-1" and items[1].raw == PAGE
    assert items[8].raw == b"plain text body" and items[8].content_type == "text/plain"
    assert items[9].raw == b"<p>hi</p>"
    assert items[6].detail == "status=404" and items[4].detail == "content_type=image/png"
    assert all(i.doc.raw is None for i in items if isinstance(i, Rejection))


def test_helpers_on_literals():
    assert parse_content_type('text/HTML; Charset="UTF-8"; profile=x') == ("text/html", "UTF-8")
    assert parse_content_type("") == ("", "")
    assert dechunk(b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\n\r\n") == b"abcde"
    assert dechunk(b"<html>not chunked") == b"<html>not chunked"
    assert dechunk(b"5\r\nabc") == b"abc"  # cut inside a chunk: keep what arrived
    assert undo_content_encoding(gzip.compress(b"x"), "gzip", 10) == b"x"
    assert undo_content_encoding(b"<html>", "gzip", 10) == b"<html>"  # stored decoded, header kept
    assert undo_content_encoding(zlib.compress(b"y")[2:-4], "deflate", 10) == b"y"  # raw deflate
    import brotli

    assert undo_content_encoding(brotli.compress(gzip.compress(b"z")), "gzip, br", 100) == b"z"
    with pytest.raises(Exception, match="exceeds 10 bytes"):
        undo_content_encoding(gzip.compress(b"z" * 11), "gzip", 10)


# --- fast paths of read and decode (bench/warc_read.py): each answers what the slow, obvious way answers --------------

CONTROL_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def test_control_scans_on_literals():
    assert [b for b in range(256) if has_c0_bytes(bytes([b]))] == [*range(9), 11, 12, *range(14, 32), 127]
    assert not has_c0_bytes(b"") and not has_c0_bytes(b"<p>tab\tLF\nCR\r</p>") and has_c0_bytes(b"<p>\x1b[31m</p>")
    assert utf8_has_controls("x\u0085y".encode()) and utf8_has_controls("\u009f".encode())
    assert not utf8_has_controls("¶ no-break\u00a0space © ¿".encode())
    assert not utf8_has_controls(b"\xc2\xc2\xa0") and utf8_has_controls(b"\xc2\xc2\x85")  # C2 right after C2
    assert not utf8_has_controls(b"\xc2")  # a truncated C2 at the end is not a control
    assert decode_html("<p>a\x00b\u0085c¶\u00a0d\x7f</p>".encode()) == "<p>abc¶\u00a0d</p>"  # removed as bytes
    cyrillic = "<p>Привет, мир</p>"  # windows-1251 maps no byte to a control: its bytes are scanned, not the text
    assert decode_html(cyrillic.encode("cp1251"), "windows-1251") == cyrillic
    assert decode_html(cyrillic.replace(",", ",\x1b\x00").encode("cp1251"), "windows-1251") == cyrillic


def test_utf8_control_scan_agrees_with_the_regex_over_every_byte_pair():
    """Every one- and two-byte string (and each after a page of text): the byte scan says what the regex says."""
    page = "<p>ordinary text, ¶ and no-break\u00a0spaces</p>\n".encode() * 100
    for first in range(256):
        for second in range(256):
            raw = bytes([first, second])
            expected = CONTROL_CHARS.search(raw.decode("utf-8", "replace")) is not None
            assert utf8_has_controls(raw) == expected, raw
            if second % 37 == 0:
                assert utf8_has_controls(page + raw) == expected, raw
    assert strip_controls("é\x85" * 2000 + "\ud800") == "é" * 2000  # a long text with a lone surrogate


def test_control_free_codecs_never_decode_a_high_byte_or_sequence_to_a_control():
    """For these codecs decode_html trusts a scan of the page's bytes: check every one- and two-byte sequence."""
    sequences = [bytes([b]) for b in range(0x80, 0x100)]
    sequences += [bytes([lead, b]) for lead in range(0x80, 0x100) for b in range(256)]
    for codec in sorted(CONTROL_FREE_CODECS):
        for raw in sequences:
            try:
                text = raw.decode(codec)
            except UnicodeDecodeError:
                continue
            assert CONTROL_CHARS.search(text) is None or has_c0_bytes(raw), (codec, raw)
    # and the codecs left out really do produce C1 controls
    assert CONTROL_CHARS.search(b"\x85".decode("iso8859-1"))
    assert CONTROL_CHARS.search(b"\x81\x30\x81\x30".decode("gb18030"))


def test_sniff_binary_by_first_byte_matches_trying_every_magic_in_order():
    def slow_sniff(raw: bytes) -> str:
        for magic, name in decode._BINARY_MAGIC:
            if raw.startswith(magic):
                if name == "bmp" and not (len(raw) > 14 and raw[6:10] == b"\x00\x00\x00\x00"):
                    continue
                if name == "exe" and b"\x00" not in raw[2:64]:
                    continue
                return name
        return "iso-media" if raw[4:8] == b"ftyp" else ""

    heads = [magic + tail for magic, _ in decode._BINARY_MAGIC for tail in (b"", b"\x00" * 70, b"words " * 12)]
    heads += [b"<!doctype html>", b"", b"B", b"BMW", b"MZ\x00", b"\x00\x00\x00\x18ftypmp42", codecs.BOM_UTF8 + b"<p>"]
    assert [decode.sniff_binary(h) for h in heads] == [slow_sniff(h) for h in heads]


def test_warc_date_fast_path_agrees_with_fastwarc():
    with open(SAMPLE, "rb") as f:
        records = [(r.headers.get("WARC-Date"), r.record_date) for r in ArchiveIterator(f, parse_http=False)]
    assert len(records) == 510
    for text, parsed in records:
        assert _warc_date(None, text) == parsed  # the fast path never asks the record
    # other forms take the general path: fastwarc, then fromisoformat
    for text, expected in [
        ("2024-02-30T10:00:00Z", None),  # the right shape, an impossible day
        ("2024-05-18T10:00:00.25Z", datetime(2024, 5, 18, 10, 0, 0, 250000, tzinfo=timezone.utc)),
        ("2024-05-18T10:00:00+02:00", datetime(2024, 5, 18, 8, tzinfo=timezone.utc)),
        ("2008-10-294T05:21:46-0700", None),  # ClueWeb09
    ]:
        record = WarcRecord()
        record.headers.append("WARC-Date", text)
        assert _warc_date(record, text) == expected, text


def test_records_of_one_gzip_member_share_its_offset(tmp_path):
    """Several records in one member: each is read (fastwarc reuses one record object), keyed by the member."""
    records = [warc_record(i, http_response(PAGE, "Content-Type: text/html")) for i in range(4)]
    members = [gzip.compress(records[0]), gzip.compress(b"".join(records[1:3])), gzip.compress(records[3])]
    path = tmp_path / "multi.warc.gz"
    path.write_bytes(b"".join(members))
    for unit_bytes in (1, 1 << 30):
        items = read_all([path], IngestConfig(unit_bytes=unit_bytes))
        offsets = [0, len(members[0]), len(members[0]), len(members[0]) + len(members[1])]
        assert [(outcome(i)[0][-1], i.offset) for i in items] == list(zip("0123", offsets))
        assert all(i.raw == PAGE for i in items)
