"""Input-derived text in messages: control, ANSI-escape and bidi characters are escaped (corpus/safe.py).

Messages that quote the input (column names, URLs, header values, a library's exception text) end up in the ledger's
errors and in rejected rows' details, which `corpusforge run` prints and `inspect` shows.
"""

from __future__ import annotations

import gzip

import pyarrow as pa
import pyarrow.parquet as pq

from corpus.config import IngestConfig
from corpus.safe import safe_text
from corpus.sources import Rejection, plan_units, read_unit

ANSI = "\x1b[2J\x1b[31mred"  # clear the screen, then red
BIDI = "evil\u202egnp.exe"  # prints as "evilexe.png"


def test_safe_text_escapes_controls_ansi_and_bidi_and_leaves_the_rest():
    assert safe_text("plain text, accents é, 中文, emoji \U0001f600") == "plain text, accents é, 中文, emoji \U0001f600"
    assert safe_text(ANSI) == "\\x1b[2J\\x1b[31mred"
    assert safe_text(BIDI) == "evil\\u202egnp.exe"
    assert safe_text("a\nforged log line\rover\x00\x7f\x85") == "a\\x0aforged log line\\x0dover\\x00\\x7f\\x85"
    assert safe_text("\u2066isolate\u2069 \u200fmark \ud800") == "\\u2066isolate\\u2069 \\u200fmark \\ud800"
    assert safe_text("x" * 600, 10) == "x" * 9 + "…"
    assert safe_text(ValueError("bad \x1b")) == "bad \\x1b"


def _read(path, errors):
    cfg = IngestConfig()
    return [item for unit in plan_units([str(path)], cfg) for item in read_unit(unit, cfg, errors)]


def test_column_names_in_a_schema_error_are_escaped(tmp_path):
    path = tmp_path / "cols.parquet"
    pq.write_table(pa.table({f"body{ANSI}": ["x"], BIDI: [1]}), path)
    errors = []
    assert _read(path, errors) == []
    (error,) = errors
    assert error["error"].startswith("wrong schema: no column 'text'")
    assert "\x1b" not in error["error"] and "\u202e" not in error["error"]
    assert "body\\x1b[2J" in error["error"] and "evil\\u202egnp.exe" in error["error"]


def _warc(path, uri: str, content_type: str = "text/html"):
    body = b"<html><body><p>hello</p></body></html>"
    http = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body
    head = (
        "WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:1>\r\nWARC-Date: 2024-01-01T00:00:00Z\r\n"
        f"WARC-Target-URI: {uri}\r\nContent-Type: application/http; msgtype=response\r\n"
        f"Content-Length: {len(http)}\r\n\r\n"
    ).encode()
    path.write_bytes(gzip.compress(head + http + b"\r\n\r\n"))


def test_uris_and_content_types_quoted_in_rejections_are_escaped(tmp_path):
    _warc(tmp_path / "a.warc.gz", f"javascript:{ANSI}{BIDI}")
    (item,) = _read(tmp_path / "a.warc.gz", [])
    assert isinstance(item, Rejection) and item.reason == "unsupported_uri_scheme"
    assert item.detail == "uri=javascript:\\x1b[2J\\x1b[31mredevil\\u202egnp.exe"
    assert item.doc.url == f"javascript:{ANSI}{BIDI}"  # the data keeps what the record says; only messages escape
    _warc(tmp_path / "b.warc.gz", "http://example.com/", f"image/{ANSI}")  # fastwarc reads HTTP headers as Latin-1
    (item,) = _read(tmp_path / "b.warc.gz", [])
    assert item.reason == "unsupported_content_type" and item.detail == "content_type=image/\\x1b[2j\\x1b[31mred"
