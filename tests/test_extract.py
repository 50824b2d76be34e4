"""Decoding page bytes to text, and trafilatura in a child process with caps, timeouts and restarts."""

import codecs
import gzip
import importlib.util
import json
import os
import signal
import time
from pathlib import Path

import pytest

from corpus.config import ExtractConfig, IngestConfig
from corpus.document import Document
from corpus import extract as extract_module
from corpus.extract import Extractor, _child_main, count_start_tags, title_and_date
from corpus.sources import Rejection, plan_units, read_unit
from corpus.sources.decode import decode_html, declared_meta_charset, resolve_charset, sniff_binary, web_codec

SAMPLE = Path(__file__).resolve().parents[1] / "corpus" / "sample_data" / "sample.warc.gz"
CONTROLS = {chr(c) for c in range(32) if chr(c) not in "\t\n\r"} | {"\x7f"}


def assert_clean(text: str) -> None:
    assert not CONTROLS & set(text)
    assert not any(0xD800 <= ord(c) <= 0xDFFF for c in text)


def page(raw: bytes, *, content_type: str = "text/html", charset: str = "", url: str = "https://example.org/") -> Document:
    return Document(id="t", source="test", offset=0, url=url, raw=raw, content_type=content_type, charset=charset)


# --- decoding: literals ----------------------------------------------------------------------------------------------


def test_utf8_wins_over_a_wrong_declaration_but_a_true_one_is_used():
    cyrillic = "<p>Съешь же ещё этих мягких булок</p>"
    assert decode_html(cyrillic.encode("utf-8"), "iso-8859-1") == cyrillic
    assert decode_html(cyrillic.encode("cp1251"), "windows-1251") == cyrillic
    meta = '<meta charset="koi8-r"><p>Привет</p>'
    assert decode_html(meta.encode("koi8-r")) == meta
    assert resolve_charset(meta.encode("koi8-r")) == ("koi8-r", "meta")


def test_web_labels_follow_browsers_and_refuse_dangerous_codecs():
    assert web_codec("ISO-8859-1") == "cp1252"  # browsers decode latin-1 labels as windows-1252
    assert web_codec("gb2312") == "gb18030"
    assert web_codec(" Shift_JIS ") == "cp932"
    assert web_codec("utf-16", from_meta=True) == "utf-8"  # a meta we could read as ASCII cannot mean UTF-16
    for refused in ("utf-7", "base64", "zlib", "rot13", "idna", "x-evil-charset", ""):
        assert web_codec(refused) == ""


def test_meta_and_xml_declarations_are_found_in_the_first_4kb():
    assert declared_meta_charset(b'<meta http-equiv="Content-Type" content="text/html; charset=EUC-JP">') == "EUC-JP"
    assert declared_meta_charset(b"<?xml version='1.0' encoding='iso-8859-2'?><html>") == "iso-8859-2"
    assert declared_meta_charset(b" " * 5000 + b'<meta charset="koi8-r">') == ""


def test_bom_wins_and_is_dropped():
    text = "<p>Grüße</p>"
    assert decode_html(codecs.BOM_UTF16_LE + text.encode("utf-16-le"), "iso-8859-1") == text
    assert decode_html(codecs.BOM_UTF8 + text.encode()) == text


def test_mostly_utf8_with_a_stray_byte_stays_utf8_and_undeclared_latin_is_cp1252():
    mostly = ("Привет мир. " * 30).encode() + b"\xff" + "ещё".encode()
    assert resolve_charset(mostly) == ("utf-8", "utf-8-lossy")
    assert decode_html(mostly).endswith("мир. \ufffdещё")
    assert decode_html("<p>naïve café – déjà vu €5</p>".encode("cp1252")) == "<p>naïve café – déjà vu €5</p>"


def test_controls_and_lone_surrogates_never_come_out():
    raw = b"<p>a\x00b\x01c\x1b[31md\x7fe\tf\r\ng\x0c</p>" + "\x85".encode()
    assert decode_html(raw) == "<p>abc[31mde\tf\r\ng</p>"
    encoded_surrogate = decode_html(b"\xed\xa0\x80 lone surrogate encoded")  # not valid UTF-8: some legacy decode
    assert encoded_surrogate.endswith(" lone surrogate encoded")
    assert_clean(encoded_surrogate)
    assert decode_html(b"") == ""


def test_sniff_binary_on_literals():
    assert sniff_binary(b"\x89PNG\r\n\x1a\n....") == "png"
    assert sniff_binary(b"%PDF-1.7") == "pdf"
    assert sniff_binary(b"\x00\x00\x00\x18ftypmp42") == "iso-media"
    assert sniff_binary(b"<!doctype html>") == ""
    assert sniff_binary(b"BMW drivers club") == ""  # "BM" alone is not a bitmap
    assert sniff_binary(b"MZ is a pleasant town") == ""


# --- decoding: the malformed pages -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, how, expected",
    [
        ("h01_invalid_utf8.html", "detected", "For of library this his from on library was health library"),
        ("h02_cp1252_declared_utf8.html", "detected", "Grüße aus Köln – „Zitat“ für 5 € · naïve café déjà vu"),
        ("h03_utf8_declared_latin1.html", "utf-8", "Съешь же ещё этих мягких французских булок, да выпей чаю. Ελληνικά κείμενα εδώ."),
        ("h04_mixed_encodings.html", "meta", "School corpus garden an report token token that or corpus as winter"),
        ("h05_bogus_and_utf7_charset.html", "utf-8", "+ADw-script+AD4-alert(1)+ADw-/script+AD4-"),  # utf-7 refused
        ("h06_utf16le_bom.html", "bom", "<title>Test article</title>"),
        ("h16_nul_bytes.html", "utf-8", "<title>Test article</title>"),
        ("h17_zero_width_control.html", "utf-8", "ctrl:[31m C1: zalgo"),
    ],
)
def test_malformed_pages_decode_readably(shared_data, name, how, expected):
    raw = (shared_data / "malformed" / name).read_bytes()
    assert resolve_charset(raw)[1] == how
    text = decode_html(raw)
    assert expected in text
    assert_clean(text)


def test_real_legacy_charsets_decode_without_replacement_characters(shared_data):
    cfg = IngestConfig()
    paths = [
        shared_data / "warc" / "commoncrawl" / "resiliparse-CC-MAIN-2020-34-excerpt.warc.gz",  # gb2312, cp1251, meta-only
        shared_data / "warc" / "malformed" / "resiliparse-clueweb09-ja-quirk.warc.gz",  # EUC-JP
        SAMPLE,  # EUC-KR
    ]
    docs = [d for unit in plan_units([str(p) for p in paths], cfg) for d in read_unit(unit, cfg, [])]
    legacy = [d for d in docs if d.charset.lower() not in ("utf-8", "iso-8859-1")]
    assert len(legacy) == 16 + 29 + 4 - 5  # the CC excerpt has five UTF-8 pages
    for doc in legacy:
        text = decode_html(doc.raw, doc.charset)
        assert "\ufffd" not in text, doc.url
    korean = next(d for d in docs if d.url == "https://httpd.apache.org/docs/2.4/ko/dns-caveats.html")
    assert "DNS와 아파치와 관련된 사항" in decode_html(korean.raw, korean.charset)


# --- extraction ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def extractor():
    with Extractor(ExtractConfig()) as ex:
        yield ex


@pytest.fixture(scope="module")
def sample_docs():
    cfg = IngestConfig()
    return {d.url: d for unit in plan_units([str(SAMPLE)], cfg) for d in read_unit(unit, cfg, [])}


def fresh(doc: Document) -> Document:
    """A new Document over the same payload: extraction consumes `raw`."""
    return page(doc.raw, content_type=doc.content_type, charset=doc.charset, url=doc.url)


@pytest.mark.parametrize(
    "url, sentence",
    [
        ("https://doc.rust-lang.org/std/iter/index.html", "Composable external iteration."),
        ("https://debian-handbook.info/browse/zh-CN/stable/sect.regular-upgrades.html", "Debian 发行版永远处于动态、持续变化中。"),
        (
            "https://doc.rust-lang.org/book/ch15-00-smart-pointers.html",
            "A pointer is a general concept for a variable that contains an address in\nmemory.",
        ),
    ],
)
def test_real_pages_extract_their_main_text(extractor, sample_docs, url, sentence):
    result = extractor.extract(fresh(sample_docs[url]))
    assert isinstance(result, Document), result
    assert sentence in result.text
    assert result.raw is None and result.title
    assert_clean(result.text)


def test_title_and_date_come_with_the_text(extractor, sample_docs):
    result = extractor.extract(fresh(sample_docs["https://doc.rust-lang.org/std/iter/index.html"]))
    assert (result.title, result.date) == ("Module iter Copy item path", "2026-04-14")


@pytest.mark.parametrize(
    "name, reason",
    [
        ("h08_nested_div_100k.html", "too_deeply_nested"),  # lxml stops at depth 256; nothing is left
        ("h12_png_labelled_html.html", "binary_payload"),
        ("h13_pdf_labelled_html.html", "binary_payload"),
        ("h14_empty.html", "empty_extraction"),
        ("h15_whitespace_only.html", "empty_extraction"),
        ("h11_only_scripts_styles.html", "empty_extraction"),
    ],
)
def test_hostile_pages_become_rejections(shared_data, extractor, name, reason):
    result = extractor.extract(page((shared_data / "malformed" / name).read_bytes()))
    assert isinstance(result, Rejection)
    assert (result.stage, result.reason) == ("extract", reason)
    assert result.doc.raw is None


@pytest.mark.parametrize("name", ["h19_billion_laughs.html", "h20_xxe_external_entity.html"])
def test_entity_declarations_are_dropped_and_the_text_kept(shared_data, extractor, name):
    """A DOCTYPE with an internal subset (entity bomb, external entity) is replaced before parsing: trafilatura
    would take the page for something other than HTML and return nothing; no entity is expanded or fetched."""
    result = extractor.extract(page((shared_data / "malformed" / name).read_bytes()))
    assert isinstance(result, Document) and len(result.text) > 300
    assert "lollol" not in result.text and "root:" not in result.text


def test_caps_apply_before_parsing(shared_data):
    nested = (shared_data / "malformed" / "h08_nested_div_100k.html").read_bytes()
    assert count_start_tags(nested.decode()) == 100_005
    with Extractor(ExtractConfig(max_elements=50_000, max_html_bytes=2 << 20, max_doc_chars=20)) as ex:
        too_many = ex.extract(page(nested))
        assert (too_many.reason, too_many.detail) == ("too_many_elements", "100005 start tags > max_elements 50000")
        too_big = ex.extract(page(b" " * ((2 << 20) + 1)))
        assert too_big.reason == "html_too_large"
        long_text = ex.extract(page(b"twenty-one characters", content_type="text/plain"))
        assert (long_text.reason, long_text.doc.text) == ("text_too_long", "twenty-one characters")
        assert ex._process is None  # none of these needed the child


def test_text_plain_passes_through_decoding_only(extractor):
    result = extractor.extract(page("  Größe\x00 und <b>Tags</b> bleiben  \n".encode(), content_type="text/plain"))
    assert result.text == "Größe und <b>Tags</b> bleiben"


def test_timeout_restarts_the_child_and_the_next_page_extracts(sample_docs):
    doc = sample_docs["https://doc.rust-lang.org/std/iter/index.html"]
    with Extractor(ExtractConfig(timeout_s=0.001)) as ex:
        ex._start_child()
        first_pid = ex._process.pid
        result = ex.extract(fresh(doc))
        assert (result.reason, result.detail) == ("extraction_timeout", "no result within timeout_s=0.001")
        assert ex.restarts == 1 and ex._process is None
        ex.cfg.timeout_s = 60
        again = ex.extract(fresh(doc))
        assert isinstance(again, Document) and "Composable external iteration." in again.text
        assert ex._process.pid != first_pid


def test_a_killed_child_is_a_crash_rejection_and_is_replaced(sample_docs):
    doc = sample_docs["https://doc.rust-lang.org/std/iter/index.html"]
    with Extractor(ExtractConfig()) as ex:
        ex._start_child()
        os.kill(ex._process.pid, signal.SIGKILL)
        ex._process.join(5)
        result = ex.extract(fresh(doc))
        assert result.reason == "extraction_crashed" and "-9" in result.detail
        assert isinstance(ex.extract(fresh(doc)), Document)
        assert ex.restarts == 1


def test_the_next_work_unit_gets_the_same_child_unless_it_owes_a_result_or_served_enough(sample_docs, monkeypatch):
    doc = sample_docs["https://doc.rust-lang.org/std/iter/index.html"]
    with Extractor(ExtractConfig()) as first:
        assert isinstance(first.extract(fresh(doc)), Document)
        child, served = first._process, first._pages
    with Extractor(ExtractConfig()) as second:  # the next unit of this worker: no new Python, no new imports
        assert isinstance(second.extract(fresh(doc)), Document)
        assert second._process is child and second._pages == served + 1
        second._send(fresh(doc), extract_module._Page("<html><body><p>a page whose result nobody reads</p></body></html>"))
    assert second._key not in extract_module._idle_children and not child.is_alive()  # it owed a result: stopped, not passed on
    with Extractor(ExtractConfig(fast=True)) as other:  # other options: another child
        assert isinstance(other.extract(fresh(doc)), Document)
        assert other._process is not child
    monkeypatch.setattr(extract_module, "PAGES_PER_CHILD", 1)
    with Extractor(ExtractConfig()) as third:
        assert isinstance(third.extract(fresh(doc)), Document)
        worn = third._process
    assert not worn.is_alive()  # served its share: replaced, so that its memory stays bounded


class FakeConn:
    def __init__(self, messages):
        self.messages, self.sent = list(messages), []

    def recv(self):
        return self.messages.pop(0)

    def send(self, message):
        self.sent.append(message)


def test_a_trafilatura_exception_is_reported_not_raised(monkeypatch):
    import trafilatura

    def boom(*args, **kwargs):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(trafilatura, "bare_extraction", boom)
    conn = FakeConn([("<p>x</p>", "https://example.org/", True), None])
    _child_main(conn, "trafilatura", {"text": {"include_comments": False}, "date": None})
    assert conn.sent == [("ready",), ("error", "RecursionError: maximum recursion depth exceeded")]


# --- one page in flight: extract_many ---------------------------------------------------------------------------------

RUST_ITER = "https://doc.rust-lang.org/std/iter/index.html"
RUST_POINTERS = "https://doc.rust-lang.org/book/ch15-00-smart-pointers.html"
DEBIAN_ZH = "https://debian-handbook.info/browse/zh-CN/stable/sect.regular-upgrades.html"


def mixed_stream(sample_docs) -> list[Document]:
    """HTML pages for the child between documents the parent settles alone (text/plain, binary, oversized)."""
    return [
        fresh(sample_docs[RUST_ITER]),
        page(b"plain words", content_type="text/plain"),
        page(b"%PDF-1.7 not html"),
        fresh(sample_docs[DEBIAN_ZH]),
        fresh(sample_docs[RUST_POINTERS]),
        page(b" " * 100, content_type="text/plain"),
    ]


def outcome(result) -> tuple:
    if isinstance(result, Rejection):
        return ("rejected", result.reason)
    return ("kept", result.url, result.text[:80], result.title, result.date)


def test_overlap_auto_is_on_only_while_workers_leave_cores_free():
    auto = ExtractConfig()
    assert auto.overlap == "auto"
    assert auto.with_overlap_for(1, 2).overlap is True
    assert auto.with_overlap_for(2, 2).overlap is False and auto.with_overlap_for(8, 4).overlap is False
    assert ExtractConfig(overlap=False).with_overlap_for(1, 8).overlap is False  # a user's choice is kept
    assert ExtractConfig(overlap="true").overlap is True  # --set extract.overlap=true
    with pytest.raises(ValueError):
        ExtractConfig(overlap="sometimes")


@pytest.mark.parametrize("overlap", [True, False, "auto"])
def test_extract_many_keeps_input_order_and_matches_extract(extractor, sample_docs, overlap):
    one_by_one = [outcome(extractor.extract(doc)) for doc in mixed_stream(sample_docs)]
    assert [o[0] for o in one_by_one] == ["kept", "kept", "rejected", "kept", "kept", "rejected"]
    assert one_by_one[1][2] == "plain words" and one_by_one[2][1] == "binary_payload"
    with Extractor(ExtractConfig(overlap=overlap)) as ex:
        assert [outcome(r) for r in ex.extract_many(mixed_stream(sample_docs))] == one_by_one


def test_a_stream_stopped_early_does_not_leak_its_page_into_the_next(sample_docs):
    with Extractor(ExtractConfig()) as ex:
        stream = ex.extract_many(fresh(sample_docs[url]) for url in (RUST_ITER, DEBIAN_ZH, RUST_POINTERS))
        assert "Composable external iteration." in next(stream).text  # the Debian page is now in the child
        stream.close()
        after = ex.extract(fresh(sample_docs[RUST_POINTERS]))
        assert after.url == RUST_POINTERS and "A pointer is a general concept" in after.text


def test_a_result_that_arrived_in_time_counts_though_the_caller_was_slow(sample_docs):
    """The timeout runs from the send: a caller busy longer than timeout_s does not turn a finished page into one."""
    docs = [page(LITERAL_PAGE), page(LITERAL_PAGE)]
    with Extractor(ExtractConfig(timeout_s=0.5)) as ex:
        ex._start_child()
        results = []
        for result in ex.extract_many(docs):
            if not results:
                time.sleep(1.0)  # the second page is extracted (in ~10 ms) while we sleep past its timeout
            results.append(result)
        assert [type(r) for r in results] == [Document, Document] and ex.restarts == 0


def test_a_page_in_flight_times_out_and_the_stream_goes_on(sample_docs):
    with Extractor(ExtractConfig(timeout_s=0.001)) as ex:
        ex._start_child()
        results = list(ex.extract_many([fresh(sample_docs[RUST_ITER]), page(b"plain", content_type="text/plain")]))
        assert [outcome(r) for r in results] == [
            ("rejected", "extraction_timeout"),
            ("kept", "https://example.org/", "plain", "", ""),
        ]
        assert ex.restarts == 1


# --- metadata ---------------------------------------------------------------------------------------------------------

# Decomposed accents (e + U+0301) in the HTML; a <meta name="date"> for htmldate's fast search.
LITERAL_PAGE = (
    "<html><head><title>Cafe\u0301 &amp; cre\u0300me</title><meta name='date' content='2021-03-04'></head><body>"
    "<nav><a href='/'>Home</a></nav><article><h1>Cafe\u0301 cre\u0300me</h1>"
    "<p>Le cafe\u0301 du coin sert une cre\u0300me bru\u0302le\u0301e excellente tous les matins de la semaine.</p>"
    "<p>Les habitue\u0301s viennent pour le cafe\u0301 et restent pour la conversation avec le patron.</p>"
    "<table><tr><td>Prix du cafe\u0301 : deux euros</td></tr></table></article>"
    "<footer>Mentions le\u0301gales</footer></body></html>"
).encode()


def test_text_and_title_come_out_composed_with_the_date_from_markup(extractor):
    result = extractor.extract(page(LITERAL_PAGE))
    assert result.text == (
        "Caf\u00e9 cr\u00e8me\n"
        "Le caf\u00e9 du coin sert une cr\u00e8me br\u00fbl\u00e9e excellente tous les matins de la semaine.\n"
        "Les habitu\u00e9s viennent pour le caf\u00e9 et restent pour la conversation avec le patron.\n"
        "| Prix du caf\u00e9 : deux euros |"
    )
    assert (result.title, result.date) == ("Caf\u00e9 cr\u00e8me", "2021-03-04")


def test_date_search_off_leaves_the_date_empty():
    with Extractor(ExtractConfig(date_search="off")) as ex:
        result = ex.extract(page(LITERAL_PAGE))
    assert (result.title, result.date) == ("Caf\u00e9 cr\u00e8me", "")


def test_title_and_date_are_what_trafilatura_metadata_gives(shared_data, sample_docs):
    """Our title/date shortcut against trafilatura's full `extract_metadata`, on real pages with and without dates."""
    from trafilatura.metadata import extract_metadata
    from trafilatura.utils import load_html

    root = shared_data / "extraction" / "trafilatura-eval"
    evaldata = json.loads((root / "evaldata.json").read_text(encoding="utf-8"))
    first = list(evaldata.items())[:30]
    files = [(root / d / f"{item['file']}.gz", url) for url, item in first for d in ("cache", "eval")]
    pages = [(decode_html(gunzip(path)), url) for path, url in files if path.exists()]
    pages += [(decode_html(sample_docs[url].raw, sample_docs[url].charset), url) for url in (RUST_ITER, DEBIAN_ZH)]
    fast = {"original_date": True, "extensive_search": False}
    dated = 0
    for html, url in pages:
        full = extract_metadata(load_html(html), url or None, {**fast, "max_date": "2100-01-01"})
        title, date = title_and_date(load_html(html), url, fast)
        assert (title, date) == (full.title or "", full.date or "")
        dated += bool(date)
    assert dated >= 10  # the comparison covers found dates, not only empty ones


def gunzip(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


# --- the resiliparse backend ------------------------------------------------------------------------------------------


def test_a_missing_backend_package_names_the_extra(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, *args):
        return None if name == "resiliparse" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(ImportError, match=r"pip install 'corpusforge\[resiliparse\]'"):
        Extractor(ExtractConfig(backend="resiliparse"))


def test_a_backend_that_fails_to_load_in_the_child_says_so(monkeypatch):
    def broken(options):
        raise ImportError("libsomething.so: cannot open shared object file")

    monkeypatch.setitem(extract_module.PAGE_EXTRACTORS, "resiliparse", broken)
    conn = FakeConn([])
    _child_main(conn, "resiliparse", {})
    assert conn.sent == [("failed", "ImportError: libsomething.so: cannot open shared object file")]


def test_unknown_backends_are_refused_by_the_config():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="backend"):
        ExtractConfig(backend="readability")


@pytest.fixture(scope="module")
def resiliparse_extractor():
    if importlib.util.find_spec("resiliparse") is None:
        pytest.skip("resiliparse is not installed (pip install 'corpusforge[resiliparse]')")
    with Extractor(ExtractConfig(backend="resiliparse")) as ex:
        yield ex


@pytest.mark.parametrize(
    "url, sentence, title",
    [
        (RUST_ITER, "Composable external iteration.", "std::iter - Rust"),
        (DEBIAN_ZH, "Debian 发行版永远处于动态、持续变化中。", "6.8.\u00a0保持系统在最新状态"),
    ],
)
def test_resiliparse_extracts_main_text_and_the_html_title(resiliparse_extractor, sample_docs, url, sentence, title):
    result = resiliparse_extractor.extract(fresh(sample_docs[url]))
    assert sentence in result.text
    assert (result.title, result.date, result.raw) == (title, "", None)
    assert_clean(result.text)


def test_resiliparse_follows_the_table_and_comment_options(resiliparse_extractor):
    result = resiliparse_extractor.extract(page(LITERAL_PAGE))
    assert result.text.endswith("avec le patron.\n\nPrix du caf\u00e9 : deux euros")
    assert result.title == "Caf\u00e9 & cr\u00e8me" and "Mentions" not in result.text
    with Extractor(ExtractConfig(backend="resiliparse", include_tables=False)) as ex:
        assert ex.extract(page(LITERAL_PAGE)).text.endswith("avec le patron.")


@pytest.mark.parametrize(
    "name, reason",
    [
        ("h12_png_labelled_html.html", "binary_payload"),
        ("h14_empty.html", "empty_extraction"),
        ("h11_only_scripts_styles.html", "empty_extraction"),
    ],
)
def test_resiliparse_rejects_like_trafilatura(shared_data, resiliparse_extractor, name, reason):
    result = resiliparse_extractor.extract(page((shared_data / "malformed" / name).read_bytes()))
    assert (result.stage, result.reason) == ("extract", reason)


def test_resiliparse_stuck_on_deep_nesting_is_a_timeout_and_the_child_is_replaced(shared_data, resiliparse_extractor):
    """resiliparse 2.0 does not return within 10 s on 100,000 nested divs (trafilatura's lxml gives up at depth 256)."""
    with Extractor(ExtractConfig(backend="resiliparse", timeout_s=1.0)) as ex:
        result = ex.extract(page((shared_data / "malformed" / "h08_nested_div_100k.html").read_bytes()))
        assert (result.reason, ex.restarts) == ("extraction_timeout", 1)
        assert ex.extract(page(LITERAL_PAGE)).title == "Caf\u00e9 & cr\u00e8me"  # a fresh child answers the next page


def test_a_payload_seen_again_is_not_extracted_again_and_gives_the_same_text(sample_docs, tmp_path):
    from corpus.repeats import RepeatMemo

    doc = sample_docs["https://doc.rust-lang.org/std/iter/index.html"]
    memo = RepeatMemo(tmp_path / "repeats")
    with Extractor(ExtractConfig(date_search="off"), memo) as ex:
        first = ex.extract(fresh(doc))
        sent = ex._pages
        copy = fresh(doc)
        copy.url = "https://mirror.example.net/std/iter/index.html?copy=2"
        again = ex.extract(copy)
        assert ex._pages == sent  # without a date to find, the copy never reaches the child
    assert isinstance(first, Document) and isinstance(again, Document)
    assert (again.text, again.title) == (first.text, first.title)
    assert memo.hits == 1
