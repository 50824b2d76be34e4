"""A new input format is one registration: the example format below (".pages.tsv": a `url<TAB>text` header, then
one page per line) is detected by name and by first bytes, planned and read through the package's public
functions, and an installed entry point makes it known to a fresh process, as the pipeline's workers are."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from corpus.config import IngestConfig
from corpus.document import Document, stable_id
from corpus.sources import (
    FORMAT_SUFFIXES,
    InputFormat,
    Rejection,
    WorkUnit,
    compression_of,
    expand_inputs,
    input_format,
    open_decompressed,
    plan_units,
    read_unit,
    register_format,
    unread_inputs,
    unregister_format,
)

# --- the example format: everything the package needs to know about it ----------------------------------------------

PAGES_HEADER = b"url\ttext\n"


def plan_pages(paths: list[str], cfg: IngestConfig) -> list[WorkUnit]:
    return [WorkUnit(path, 0, -1, "pages") for path in paths]


def read_pages(unit: WorkUnit, cfg: IngestConfig, errors: list[dict]):
    """One Document per `url<TAB>text` line (offset: the line's byte offset); a line without a tab is rejected."""
    with open_decompressed(unit.path, compression_of(unit.path)) as f:
        data = f.read()
    offset = len(PAGES_HEADER)
    for line in data[offset:].splitlines(keepends=True):
        if not line.endswith(b"\n"):
            errors.append({"path": unit.path, "offset": offset, "error": "file ends inside a line (truncated?)"})
        doc = Document(id=stable_id(unit.path, offset), source=unit.path, offset=offset)
        url, tab, text = line.rstrip(b"\n").partition(b"\t")
        if tab:
            doc.url, doc.raw, doc.content_type, doc.charset = url.decode(), text, "text/plain", "utf-8"
            yield doc
        else:
            yield Rejection(doc, "ingest", "malformed_line", f"no tab between url and text: {line[:40]!r}")
        offset += len(line)


PAGES = InputFormat(
    name="pages",
    suffixes=(".pages.tsv", ".pages.tsv.gz"),
    sniff=lambda head: head.startswith(PAGES_HEADER),
    plan=plan_pages,
    read=read_pages,
)

# ----------------------------------------------------------------------------------------------------------------------

PAGES_FILE = PAGES_HEADER + b"https://a.org/\tFirst page.\nno tab on this line\nhttps://b.org/x\tLast page, cut"


@pytest.fixture
def pages_registered():
    suffixes_before = list(FORMAT_SUFFIXES)
    register_format(PAGES)
    yield
    unregister_format("pages")
    assert FORMAT_SUFFIXES == suffixes_before


def outcomes(items) -> list[tuple]:
    return [
        (i.reason, i.doc.offset) if isinstance(i, Rejection) else ("doc", i.offset, i.url, i.raw) for i in items
    ]


def test_the_format_is_unknown_until_registered_and_after(tmp_path):
    path = tmp_path / "a.pages.tsv"
    path.write_bytes(PAGES_FILE)
    assert input_format(str(path)) == ""
    with pytest.raises(ValueError, match="unknown format"):
        plan_units([str(path)], IngestConfig())
    register_format(PAGES)
    try:
        assert input_format(str(path)) == "pages"
    finally:
        unregister_format("pages")
    assert input_format(str(path)) == ""
    assert all(owner != "pages" for _, owner in FORMAT_SUFFIXES)


def test_detected_by_suffix_and_by_first_bytes(tmp_path, pages_registered):
    (tmp_path / "by_name.pages.tsv").write_bytes(b"a header the sniffer would not know\n")
    (tmp_path / "by_bytes").write_bytes(PAGES_FILE)
    (tmp_path / "by_bytes_in_gzip.gz").write_bytes(gzip.compress(PAGES_FILE))
    (tmp_path / "other.tsv").write_bytes(b"id\tlabel\n1\tx\n")
    got = {p.name: input_format(str(p)) for p in sorted(tmp_path.iterdir())}
    assert got == {"by_bytes": "pages", "by_bytes_in_gzip.gz": "pages", "by_name.pages.tsv": "pages", "other.tsv": ""}
    # A header is a guess, not a binary magic: walking a folder takes such files by name only, and lists the rest.
    assert expand_inputs([str(tmp_path)]) == [str(tmp_path / "by_name.pages.tsv")]
    assert [Path(p).name for p in unread_inputs([str(tmp_path)])] == ["by_bytes", "by_bytes_in_gzip.gz", "other.tsv"]


def test_planned_between_other_formats_and_read_with_a_rejection_and_an_error(tmp_path, pages_registered):
    first, page, last = tmp_path / "1.pages.tsv", tmp_path / "2.html", tmp_path / "3.pages.tsv.gz"
    first.write_bytes(PAGES_FILE)
    page.write_text("<html><body><p>between</p></body></html>")
    last.write_bytes(gzip.compress(PAGES_HEADER + b"https://c.org/\tOnly page.\n"))
    cfg = IngestConfig()
    units = plan_units([str(tmp_path)], cfg)
    assert units == [
        WorkUnit(str(first), 0, -1, "pages"),
        WorkUnit(str(page), 0, -1, "html", (str(page),)),
        WorkUnit(str(last), 0, -1, "pages"),
    ]
    errors: list[dict] = []
    assert outcomes(read_unit(units[0], cfg, errors)) == [
        ("doc", 9, "https://a.org/", b"First page."),
        ("malformed_line", 36),
        ("doc", 56, "https://b.org/x", b"Last page, cut"),
    ]
    assert errors == [{"path": str(first), "offset": 56, "error": "file ends inside a line (truncated?)"}]
    assert outcomes(read_unit(units[2], cfg, errors)) == [("doc", 9, "https://c.org/", b"Only page.")]
    assert len(errors) == 1


def test_registration_refuses_what_would_be_ambiguous(pages_registered):
    assert register_format(PAGES) is PAGES  # the same object again (a plugin module that registers itself): no-op
    with pytest.raises(ValueError, match="'pages' is registered already"):
        register_format(InputFormat(name="pages", plan=plan_pages, read=read_pages))
    with pytest.raises(ValueError, match="suffix '.txt' belongs to format 'text'"):
        register_format(InputFormat(name="notes", suffixes=(".txt",), plan=plan_pages, read=read_pages))
    with pytest.raises(ValueError, match="lower case"):
        InputFormat(name="shouty", suffixes=(".TSV",), plan=plan_pages, read=read_pages)
    assert [owner for _, owner in FORMAT_SUFFIXES].count("pages") == 2


def test_an_entry_point_registers_the_format_in_every_process(tmp_path):
    """A package that names PAGES in the `corpusforge.formats` group: a new interpreter (as a spawned or Ray
    worker is) knows the format as soon as it imports corpus.sources."""
    site = tmp_path / "site"
    dist_info = site / "pages_plugin-0.1.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: pages-plugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[corpusforge.formats]\npages = test_format_registry:PAGES\n")
    path = tmp_path / "a.pages.tsv"
    path.write_bytes(PAGES_FILE)
    script = (
        "import json, sys\n"
        "from corpus.config import IngestConfig\n"
        "from corpus.sources import input_format, plan_units, read_unit\n"
        "(unit,) = plan_units([sys.argv[1]], IngestConfig())\n"
        "items = list(read_unit(unit, IngestConfig(), []))\n"
        "print(json.dumps([input_format(sys.argv[1]), unit.format, [type(i).__name__ for i in items]]))\n"
    )
    pythonpath = os.pathsep.join([str(site), str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": pythonpath},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == ["pages", "pages", ["Document", "Rejection", "Document"]]
