"""Repeated payloads (corpus.repeats): the second copy of a page takes its first copy's fields, and the rows are
exactly those of a run that extracts and annotates every copy."""

import gzip
import io
from dataclasses import replace
from pathlib import Path

import pytest
from fastwarc.warc import WarcRecord, WarcRecordType

from corpus.config import AnnotateConfig, ExtractConfig, IngestConfig
from corpus.document import Document
from corpus.extract import Extractor
from corpus.repeats import RepeatMemo
from corpus.shards import read_table
from corpus.sources import plan_units, read_unit
from corpus.stages import extract_unit

SAMPLE = Path(__file__).resolve().parents[1] / "corpus" / "sample_data" / "sample.warc.gz"


def warc_of(pages: list[tuple[str, str, bytes]], path: Path) -> Path:
    """A WARC of response records (url, content type, body), one gzip member each."""
    with path.open("wb") as f:
        for url, content_type, body in pages:
            record = WarcRecord()
            record.init_headers(record_type=WarcRecordType.response)
            http = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
            record.set_bytes_content(http.encode("latin-1") + body)
            record.headers["WARC-Date"] = "2026-01-01T00:00:00Z"
            record.headers["WARC-Target-URI"] = url
            record.headers["Content-Type"] = "application/http; msgtype=response"
            out = io.BytesIO()
            record.write(out)
            f.write(gzip.compress(out.getvalue(), mtime=0))
    return path


@pytest.fixture(scope="module")
def repeated_warc(tmp_path_factory) -> Path:
    """Twelve real pages of the sample, then each again under another URL (a tracking parameter), one of them a
    third time with a date in its URL, and one payload again under another declared charset."""
    cfg = IngestConfig()
    docs = [d for unit in plan_units([str(SAMPLE)], cfg) for d in read_unit(unit, cfg, [])]
    pages = [(d.url, "text/html; charset=utf-8", d.raw) for d in docs if d.raw and len(d.raw) > 2000][:12]
    copies = [(f"{url}?utm_source=copy", ctype, body) for url, ctype, body in pages]
    dated = [("https://mirror.example.org/2019/03/14/page.html", pages[0][1], pages[0][2])]
    recoded = [(pages[1][0] + "#latin", "text/html; charset=iso-8859-1", pages[1][2])]
    return warc_of(pages + copies + dated + recoded, tmp_path_factory.mktemp("repeats") / "repeated.warc.gz")


def extract_all(warc: Path, tmp: Path, extract: ExtractConfig, memo_folder: Path | None) -> tuple[list, list, int]:
    """Rows kept and rejected over three units, each with its own memo over one shared folder (as the workers of
    one run have), and the memo hits."""
    ingest = IngestConfig(unit_bytes=warc.stat().st_size // 3)
    units = plan_units([str(warc)], ingest)
    assert len(units) > 1
    kept, rejected, hits = [], [], 0
    for i, unit in enumerate(units):
        out, rej = tmp / f"out-{i}.arrow", tmp / f"rejected-{i}.arrow"
        memo = RepeatMemo(memo_folder) if memo_folder is not None else None
        extract_unit(unit, ingest, extract, AnnotateConfig(), out, rej, memo)
        kept += read_table(out).to_pylist()
        rejected += read_table(rej).to_pylist()
        hits += memo.hits if memo is not None else 0
    return kept, rejected, hits


@pytest.mark.parametrize("date_search", ["fast", "off"])
def test_repeated_payloads_give_the_rows_of_a_run_without_the_memo(repeated_warc, tmp_path, date_search):
    extract = ExtractConfig(date_search=date_search)
    (tmp_path / "plain").mkdir()
    (tmp_path / "memo").mkdir()
    plain_kept, plain_rejected, _ = extract_all(repeated_warc, tmp_path / "plain", extract, None)
    kept, rejected, hits = extract_all(repeated_warc, tmp_path / "memo", extract, tmp_path / "repeats")
    assert kept == plain_kept and rejected == plain_rejected
    assert len(kept) >= 24
    assert hits >= 12  # the copies (and the dated one) took the first copy's fields; the other charset did not match
    by_url = {row["url"]: row for row in kept}
    first = next(row for row in kept if row["url"] + "?utm_source=copy" in by_url)
    copy = by_url[first["url"] + "?utm_source=copy"]
    assert copy["text"] == first["text"] and copy["signals"] == first["signals"] and copy["id"] != first["id"]
    if date_search == "fast":  # the date is still the page's own: htmldate reads it from the URL too
        assert by_url["https://mirror.example.org/2019/03/14/page.html"]["date"] == "2019-03-14"


def test_the_memo_stops_growing_at_its_cap_and_keeps_nothing_of_rejected_documents(repeated_warc, tmp_path):
    ingest = IngestConfig()
    (unit,) = plan_units([str(repeated_warc)], ingest)
    memo = RepeatMemo(tmp_path / "repeats", max_bytes=1)
    extract_unit(unit, ingest, ExtractConfig(max_doc_chars=3000), AnnotateConfig(), tmp_path / "o.arrow", tmp_path / "r.arrow", memo)
    assert read_table(tmp_path / "r.arrow").num_rows > 0 and read_table(tmp_path / "o.arrow").num_rows > 0
    files = [f for f in (tmp_path / "repeats").rglob("*") if f.is_file()]
    assert memo.written > 0 and [f.suffix for f in files] == [".text"]  # one entry, then full


def sample_pages(n: int) -> list[Document]:
    cfg = IngestConfig()
    docs = [d for unit in plan_units([str(SAMPLE)], cfg) for d in read_unit(unit, cfg, [])]
    return [d for d in docs if d.raw and len(d.raw) > 2000][:n]


def test_text_is_shared_as_soon_as_it_is_extracted_and_fields_once_annotated(tmp_path):
    """Another worker (another memo over the same folder) skips trafilatura for a copy met while the first
    worker is still annotating, and takes the annotated fields once they are there."""
    (doc,) = sample_pages(1)
    first, other = RepeatMemo(tmp_path), RepeatMemo(tmp_path)
    with Extractor(ExtractConfig(date_search="off"), first) as ex:
        extracted = ex.extract(replace(doc))
    copy = replace(doc, id="copy")
    other.key_of(copy)
    assert other.extracted(copy) == (extracted.text, extracted.title) and other.annotated(copy) is None
    extracted.lang = "en"
    first.remember(extracted)
    assert other.annotated(copy)["lang"] == "en" and other.hits == 1
    assert RepeatMemo(None).extracted(copy) is None and RepeatMemo(None).key_of(replace(doc)) == ""
