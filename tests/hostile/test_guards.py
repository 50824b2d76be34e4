"""The guards added for hostile input, on literals, and proof that they leave ordinary input alone."""

from __future__ import annotations

import gzip
import hashlib
from base64 import b32encode

import generate as g
import pytest
from fastwarc.warc import ArchiveIterator, WarcRecordType

from corpus.config import IngestConfig
from corpus.extract import PARSER_MAX_DEPTH, nesting_depth, strip_doctype_subset
from corpus.sources import Rejection, plan_units, read_unit
from corpus.sources.decode import decode_html
from corpus.stages.extract import sample_input


def test_a_doctype_that_declares_entities_is_replaced():
    bomb = '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;">]><html><p>&lol1;</p></html>'
    assert strip_doctype_subset(bomb) == "<!DOCTYPE html><html><p>&lol1;</p></html>"
    xxe = '\ufeff<?xml version="1.0"?>\n<!-- c --><!doctype r [\n<!ENTITY x SYSTEM "file:///etc/passwd">\n] ><p>&x;</p>'
    assert strip_doctype_subset(xxe) == '\ufeff<?xml version="1.0"?>\n<!-- c --><!DOCTYPE html><p>&x;</p>'
    unclosed = "<!DOCTYPE x [<!ENTITY a 'b'><p>no end"
    assert strip_doctype_subset(unclosed) == unclosed
    for page in (
        "<!DOCTYPE html><p>[1] a citation</p>",
        '<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "x.dtd"><p>[x]</p>',
        "<p>no doctype [at all]</p>",
        "<p>a DOCTYPE later <!DOCTYPE x [<!ENTITY a 'b'>]></p>",
    ):
        assert strip_doctype_subset(page) is page


def test_the_sample_pages_are_left_as_they_are():
    """Guards trigger on hostile input only: no page of the bundled sample has a DOCTYPE subset, and every record's
    block digest matches."""
    pages = 0
    with open(sample_input(), "rb") as stream:
        for record in ArchiveIterator(stream, record_types=WarcRecordType.response, parse_http=False):
            assert record.verify_block_digest(consume=False)
            record.parse_http()
            page = decode_html(record.reader.read())
            assert strip_doctype_subset(page) is page
            pages += 1
    assert pages == 509


@pytest.mark.parametrize(
    "markup, depth",
    [
        ("<div>" * 300 + "x" + "</div>" * 300, PARSER_MAX_DEPTH),  # counting stops at the parser's limit
        ("<div>" * 10 + "x" + "</div>" * 10, 10),
        ("<p>a" * 1000, 0),  # <p> closes itself
        ("<li><br><img src=x><hr/>" * 1000, 0),  # optional end tags, void elements
        ("<b><i><span>" * 100, PARSER_MAX_DEPTH),  # never closed
        ("<DIV><Div></div></DIV><div/>", 2),
    ],
)
def test_nesting_depth_counts_elements_that_nest(markup, depth):
    assert nesting_depth(markup.encode()) == depth


def test_a_flipped_byte_in_a_plain_warc_is_a_digest_mismatch(tmp_path):
    """Uncompressed WARC has no CRC: the block digest is the only thing that can tell a flipped byte."""
    path = tmp_path / "pages.warc.gz"
    ids = g.warc_pages(path, [("http://example.com/a", g.ordinary_page(1)), ("http://example.com/b", g.ordinary_page(2))])
    plain = bytearray()
    with gzip.open(path) as f:
        data = f.read()
    # give the records their block digests, then flip one byte of the first page's text
    for chunk in data.split(b"WARC/1.0\r\n")[1:]:
        head, _, rest = chunk.partition(b"\r\n\r\n")
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        block = rest[:length]
        digest = b"WARC-Block-Digest: sha1:" + b32encode(hashlib.sha1(block).digest()) + b"\r\n"
        plain += b"WARC/1.0\r\n" + digest + head + b"\r\n\r\n" + rest
    at = plain.index(b"river")
    plain[at] ^= 0x20
    broken = tmp_path / "flipped.warc"
    broken.write_bytes(bytes(plain))
    cfg, errors = IngestConfig(), []
    items = [item for unit in plan_units([str(broken)], cfg) for item in read_unit(unit, cfg, errors)]
    assert [(i.doc.id, i.reason) if isinstance(i, Rejection) else (i.id, "doc") for i in items] == [
        (ids[0], "digest_mismatch"),
        (ids[1], "doc"),
    ]
    assert [e["offset"] for e in errors] == [0] and "WARC-Block-Digest" in errors[0]["error"]


def test_short_texts_are_encoded_in_one_batch_as_before(shared_data):
    from tokenizers import Tokenizer

    from tokenizer.encode import encode_texts

    path = shared_data / "tokenizers" / "gpt2" / "hf-format" / "tokenizer.json"
    if not path.is_file():
        pytest.skip(f"no GPT-2 tokenizer at {path}")
    tok = Tokenizer.from_file(str(path))
    texts = ["Hello, world.", "", "東京は大きい", g.prose(5000)]
    assert encode_texts(tok, texts) == [e.ids for e in tok.encode_batch(texts, add_special_tokens=False)]
