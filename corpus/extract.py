"""Main text out of HTML: trafilatura (or resiliparse) in a child process, with size caps before parsing and a
per-page timeout.

trafilatura (through lxml) can take unbounded time and memory on hostile pages, and a C-level crash would take
the whole worker down with it. So the extractor runs in one long-lived child process per `Extractor` (spawn
context, fed through a Pipe); a page that times out or kills the child becomes a rejection and a fresh child takes
over. Cheap checks (size, binary magic, number of start tags) and charset decoding run in the parent before any
parsing.

`extract_many` keeps one page in flight: the child extracts page i+1 while the caller annotates page i, so one
worker uses up to two cores (`ExtractConfig.overlap`).

Metadata: a Document keeps only title and date, so the child asks trafilatura for the text alone and takes the
title (trafilatura's own chain: OpenGraph/meta tags, JSON-LD, then `<h1>`/`<title>`) and the date (htmldate, called
as trafilatura calls it) itself, skipping the author, site name, category, tag and license searches that
`with_metadata=True` also runs. On the bundled sample trafilatura's metadata costs 15.4 ms a page, of which the
title takes 0.8 ms and htmldate 7.8 ms (2.1 ms without its extensive free-text search, `date_search="fast"`).
The title and date are the same as trafilatura's for the same date settings (checked on all 990 pages of its
benchmark).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import multiprocessing
import re
import signal
import time
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from corpus.config import ExtractConfig
from corpus.document import REJECTED_TEXT_PREFIX, Document
from corpus.repeats import RepeatMemo
from corpus.safe import safe_text
from corpus.sources import Rejection
from corpus.sources.decode import decode_html, sniff_binary

STAGE = "extract"
_START_TAG = re.compile(r"<[A-Za-z]")
# A fresh child imports trafilatura and lxml (about a second); startup is not charged to the page's timeout.
CHILD_START_TIMEOUT_S = 120.0
_CHILD_EXIT_WAIT_S = 2.0
# A child serves the units of one worker process one after another (starting one costs about half a CPU second:
# a Python and trafilatura's imports); it is replaced after this many pages so that its memory stays bounded.
PAGES_PER_CHILD = 5000
# Backend -> (module that must be importable, pyproject extra that installs it).
OPTIONAL_BACKENDS = {"resiliparse": ("resiliparse", "resiliparse")}
# trafilatura truncates metadata fields longer than this (settings.Document.clean_and_trim); we do the same.
_MAX_TITLE_CHARS = 10_000

# (html, url, with_text) -> (text, title, date); the text is "" when not asked for (a payload whose text is known).
PageExtractor = Callable[[str, str, bool], tuple[str, str, str]]


def count_start_tags(html: str) -> int:
    """Number of "<" followed by a letter: a cheap upper bound on the elements a parser would build."""
    return len(_START_TAG.findall(html))


# libxml2 (under lxml, under trafilatura) builds no element deeper than this: markup nested deeper loses its
# content, and a page whose text is all that deep comes back empty (INDEX.md: "nothing for nesting deeper than 256").
PARSER_MAX_DEPTH = 256
_TAG = re.compile(rb"<(/?)([A-Za-z][A-Za-z0-9-]*)[^>]*?(/?)>")
# Elements that do not nest what follows them: void elements, and those whose end tag HTML lets be left out (a
# parser closes them itself; html and body are implied anyway).
_NOT_NESTING = frozenset(
    b"area base br col embed hr img input link meta param source track wbr keygen command basefont frame isindex "
    b"html head body p li dt dd option optgroup tr td th thead tbody tfoot colgroup caption rb rt rtc rp".split()
)


def nesting_depth(raw: bytes, stop_at: int = PARSER_MAX_DEPTH) -> int:
    """How deep the page's elements nest, counted from its tags (an estimate: a parser may close some itself), up
    to `stop_at`. Only asked when a page gave no text, to tell why."""
    depth = deepest = 0
    for match in _TAG.finditer(raw):
        closing, name, self_closing = match.groups()
        name = name.lower()
        if self_closing or name in _NOT_NESTING:
            continue
        if closing:
            depth = max(depth - 1, 0)
            continue
        depth += 1
        if depth > deepest:
            deepest = depth
            if deepest >= stop_at:
                break
    return deepest


# A document type declaration with an internal subset (`<!DOCTYPE x [<!ENTITY ...>]>`): no HTML page needs one, and
# it is how entity-expansion bombs ("billion laughs") and external entities (XXE) reach an XML parser. trafilatura
# treats such a page as not HTML and returns nothing; `strip_doctype_subset` replaces the declaration.
_XML_DECLARATION = re.compile(r"<\?xml[^>]*>")
_DOCTYPE_WITH_SUBSET = re.compile(r"<!DOCTYPE[^>\[]*\[", re.IGNORECASE)
_SUBSET_END = re.compile(r"\]\s*>")


def strip_doctype_subset(page: str) -> str:
    """`page` with a leading DOCTYPE that declares entities replaced by `<!DOCTYPE html>` (the entities are never
    defined, so references to them stay literal text); any other page unchanged.

    The prolog (BOM, XML declaration, comments) is skipped by a linear scan, not a regex with nested repetition:
    pages that start with many comments would make such a regex backtrack for seconds."""
    head = page[:4096]
    if "<!" not in head or "[" not in head:  # the declaration comes first: most pages are settled here
        return page
    pos = len(page) - len(page.lstrip("\ufeff \t\r\n"))
    declaration = _XML_DECLARATION.match(page, pos)
    if declaration:
        pos = declaration.end()
    while True:
        pos += len(page[pos:pos + 4096]) - len(page[pos:pos + 4096].lstrip())
        if not page.startswith("<!--", pos):
            break
        close = page.find("-->", pos + 4)
        if close < 0:
            return page
        pos = close + 3
    match = _DOCTYPE_WITH_SUBSET.match(page, pos)
    if match is None:
        return page
    end = _SUBSET_END.search(page, match.end())
    if end is None:
        return page  # never closed: the whole page is a declaration, and extraction finds nothing in it
    return f"{page[:pos]}<!DOCTYPE html>{page[end.end():]}"


def trafilatura_options(cfg: ExtractConfig) -> dict:
    """Keyword arguments for trafilatura.bare_extraction / extract that give what the Extractor gives (text and
    metadata). The child itself passes with_metadata=False and takes title and date separately."""
    return {
        "fast": cfg.fast,
        "favor_precision": cfg.favor == "precision",
        "favor_recall": cfg.favor == "recall",
        "include_tables": cfg.include_tables,
        "include_comments": cfg.include_comments,
        "with_metadata": True,
    }


def date_options(cfg: ExtractConfig) -> dict | None:
    """htmldate.find_date keyword arguments for `cfg.date_search` (trafilatura's own defaults, with the extensive
    free-text search switchable), or None when no date is wanted."""
    if cfg.date_search == "off":
        return None
    return {"original_date": True, "extensive_search": cfg.date_search == "extensive"}


def resiliparse_options(cfg: ExtractConfig) -> dict:
    """Keyword arguments for resiliparse's extract_plain_text that implement `cfg` (favor/fast do not apply)."""
    return {
        "main_content": True,
        "preserve_formatting": True,
        "list_bullets": True,
        "alt_texts": False,  # image descriptions are not running text
        "links": False,
        "form_fields": False,
        "noscript": False,
        "comments": cfg.include_comments,
        "skip_elements": None if cfg.include_tables else ["table"],
    }


def require_backend(backend: str) -> None:
    """Raise ImportError naming the extra to install when `backend`'s package is missing."""
    if backend not in OPTIONAL_BACKENDS:
        return
    module, extra = OPTIONAL_BACKENDS[backend]
    if importlib.util.find_spec(module) is None:
        raise ImportError(
            f"ExtractConfig.backend={backend!r} needs the {module} package: pip install 'corpusforge[{extra}]' "
            f"(or set extract.backend to 'trafilatura')"
        )


# --- the child: page extractors --------------------------------------------------------------------------------------


def title_and_date(tree, url: str, date_params: dict | None) -> tuple[str, str]:
    """The title and date trafilatura's `extract_metadata` would give for a parsed page, without its other fields."""
    from html import unescape

    from htmldate import find_date
    from trafilatura.metadata import examine_meta, extract_meta_json, extract_title, extract_url
    from trafilatura.utils import line_processing

    if tree is None:
        return "", ""
    meta = examine_meta(tree)
    try:
        meta = extract_meta_json(tree, meta)
    except Exception:  # noqa: BLE001 - broken JSON-LD: trafilatura ignores it the same way
        pass
    title = meta.title or extract_title(tree) or ""
    if len(title) > _MAX_TITLE_CHARS:
        title = title[: _MAX_TITLE_CHARS - 1] + "…"
    if title:
        title = line_processing(unescape(title)) or ""
    date = ""
    if date_params is not None:
        page_url = meta.url or extract_url(tree, url or None)
        max_date = datetime.now().astimezone().strftime("%Y-%m-%d")  # as trafilatura's set_date_params
        date = find_date(tree, url=page_url, max_date=max_date, **date_params) or ""
    return title, date


def trafilatura_extractor(options: dict) -> PageExtractor:
    import trafilatura
    from trafilatura.utils import load_html

    text_options = {k: v for k, v in options["text"].items() if k != "with_metadata"}
    date_params = options["date"]

    def main_text(html: str, url: str) -> str:
        # Without metadata, bare_extraction's text does not depend on the URL: the page alone decides it.
        result = trafilatura.bare_extraction(html, url=url or None, output_format="python", **text_options)
        if result is None:
            return ""
        text = result.text or ""
        if text_options["include_comments"] and result.comments:
            text = f"{text}\n{result.comments}"  # what trafilatura.extract returns for txt output
        return text

    def extract(html: str, url: str, with_text: bool) -> tuple[str, str, str]:
        text = main_text(html, url) if with_text else ""
        if with_text and not text.strip():
            return "", "", ""
        # A fresh parse (about 1 ms) instead of a tree shared with the text extraction, which prunes it in place.
        title, date = title_and_date(load_html(html), url, date_params)
        return text, title, date

    return extract


def resiliparse_extractor(options: dict) -> PageExtractor:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.html import HTMLTree

    def extract(html: str, url: str, with_text: bool) -> tuple[str, str, str]:
        tree = HTMLTree.parse(html)
        return extract_plain_text(tree, **options), (tree.title or "").strip(), ""

    return extract


PAGE_EXTRACTORS: dict[str, Callable[[dict], PageExtractor]] = {
    "trafilatura": trafilatura_extractor,
    "resiliparse": resiliparse_extractor,
}


def _child_main(conn, backend: str, options: dict) -> None:
    """Child process loop: (html, url, with_text) in, ("ok", text, title, date) or ("error", message) out; None
    stops it."""
    # The parent ends this child (None, or a kill on timeout); a Ctrl-C sent to the process group is the parent's.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)  # it logs every discarded page as an error
    logging.getLogger("htmldate").setLevel(logging.CRITICAL)
    try:
        extract_page = PAGE_EXTRACTORS[backend](options)
    except ImportError as exc:
        conn.send(("failed", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ready",))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent went away
            return
        if message is None:
            return
        html, url, with_text = message
        try:
            text, title, date = extract_page(html, url, with_text)
            # NFC, as trafilatura.extract returns it: composed and decomposed accents must not differ downstream.
            conn.send(("ok", unicodedata.normalize("NFC", text), unicodedata.normalize("NFC", title), date))
        except Exception as exc:  # noqa: BLE001 - any library error is the page's rejection, not ours
            conn.send(("error", f"{type(exc).__name__}: {str(exc)[:500]}"))


# --- the parent ------------------------------------------------------------------------------------------------------


@dataclass
class _Page:
    """A decoded page for the child, with the text and title already known when its payload was seen before."""

    html: str
    known: tuple[str, str] | None = None


@dataclass
class _InFlight:
    """A page handed to the child: its document, when it was sent, and the outcome if sending already failed."""

    doc: Document
    sent_at: float
    outcome: tuple[str, ...] | None = None
    known: tuple[str, str] | None = None  # text and title of a repeated payload: the child gives the date only


# Idle children by backend and options, handed from one Extractor (one work unit) to the next in this process;
# daemonic, so they end with it.
_idle_children: dict[str, tuple] = {}


class Extractor:
    """`extract(doc)` -> the doc with text/title/date, or a Rejection; `extract_many(docs)` the same for a stream,
    overlapped with the caller's work. Use as a context manager; on close its child waits for the next Extractor
    of the same options in this process."""

    def __init__(self, cfg: ExtractConfig, repeats: RepeatMemo | None = None):
        require_backend(cfg.backend)
        self.cfg = cfg
        self.repeats = repeats if repeats is not None else RepeatMemo(None)
        if cfg.backend == "trafilatura":
            self._options = {"text": trafilatura_options(cfg), "date": date_options(cfg)}
            self._wants_date = self._options["date"] is not None
        else:
            self._wants_date = False
            self._options = resiliparse_options(cfg)
        self._context = multiprocessing.get_context("spawn")
        self._key = json.dumps([cfg.backend, self._options], sort_keys=True, default=str)
        self._process = None
        self._conn = None
        self._pages = 0  # sent to the current child, over all the Extractors it served
        self._awaited = 0  # pages sent whose result was not read: a child with one cannot serve anyone else
        self.restarts = 0  # children replaced after a timeout or crash

    def __enter__(self) -> Extractor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- the child -------------------------------------------------------------------------------------------------

    def _start_child(self) -> None:
        idle = _idle_children.pop(self._key, None)
        if idle is not None:
            process, conn, pages = idle
            if process.is_alive():
                self._process, self._conn, self._pages = process, conn, pages
                return
            conn.close()
        self._pages = 0
        parent_conn, child_conn = self._context.Pipe()
        process = self._context.Process(
            target=_child_main,
            args=(child_conn, self.cfg.backend, self._options),
            name="corpusforge-extract",
            daemon=True,
        )
        process.start()
        child_conn.close()  # so that recv() in the parent sees EOF when the child dies
        try:
            if not parent_conn.poll(CHILD_START_TIMEOUT_S):
                raise TimeoutError(f"no sign of life within {CHILD_START_TIMEOUT_S}s")
            status, *detail = parent_conn.recv()
        except (EOFError, OSError) as exc:
            process.kill()
            process.join(_CHILD_EXIT_WAIT_S)
            # A page cannot cause this; the environment can (spawn re-imports the main module: it must be a file).
            raise RuntimeError(f"extraction child failed to start (exit code {process.exitcode}): {exc!r}") from exc
        if status == "failed":
            process.join(_CHILD_EXIT_WAIT_S)
            raise RuntimeError(f"extraction backend {self.cfg.backend!r} failed to load in the child: {detail[0]}")
        self._process, self._conn = process, parent_conn

    def _stop_child(self, *, kill: bool) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        self._awaited = 0
        if process is None:
            return
        if not kill:
            try:
                conn.send(None)
            except OSError:
                pass
            process.join(_CHILD_EXIT_WAIT_S)
        if process.is_alive():
            process.kill()
            process.join(_CHILD_EXIT_WAIT_S)
        conn.close()

    def close(self) -> None:
        process = self._process
        reusable = process is not None and process.is_alive() and not self._awaited and self._pages < PAGES_PER_CHILD
        if reusable and self._key not in _idle_children:
            _idle_children[self._key] = (process, self._conn, self._pages)
            self._process = self._conn = None
            return
        self._stop_child(kill=False)

    def _crashed(self, exc: BaseException) -> tuple[str, str]:
        """The child died (EOF on the pipe, or a broken pipe on send): reap it and describe how it ended."""
        self._process.join(_CHILD_EXIT_WAIT_S)
        exitcode = self._process.exitcode
        self._stop_child(kill=True)
        self.restarts += 1
        return ("crashed", f"child exited with code {exitcode} ({type(exc).__name__})")

    def _send(self, doc: Document, page: _Page) -> _InFlight:
        if self._process is None:
            self._start_child()
        try:
            self._awaited += 1
            self._conn.send((page.html, doc.url, page.known is None))
            self._pages += 1
        except OSError as exc:
            return _InFlight(doc, time.monotonic(), self._crashed(exc), page.known)
        return _InFlight(doc, time.monotonic(), known=page.known)

    def _receive(self, job: _InFlight) -> tuple[str, ...]:
        """("ok", text, title, date) | ("error", msg) | ("timeout", msg) | ("crashed", msg) for the page in flight.

        The timeout counts from the send: time the caller spent elsewhere while the child worked is not a grace."""
        if job.outcome is not None:
            return job.outcome
        remaining = self.cfg.timeout_s - (time.monotonic() - job.sent_at)
        try:
            if not self._conn.poll(max(remaining, 0.0)):
                self._stop_child(kill=True)
                self.restarts += 1
                return ("timeout", f"no result within timeout_s={self.cfg.timeout_s}")
            outcome = self._conn.recv()
            self._awaited -= 1
            return outcome
        except (EOFError, OSError) as exc:
            return self._crashed(exc)

    def _collect(self, job: _InFlight) -> Document | Rejection:
        status, *values = self._receive(job)
        if status == "ok":
            text, title, date = values
            if job.known is not None:
                return self._finish(job.doc, *job.known, date)
            return self._finish(job.doc, text.strip(), title, date, fresh=True)
        reason = {"timeout": "extraction_timeout", "crashed": "extraction_crashed"}.get(status, "extraction_error")
        return self._reject(job.doc, reason, safe_text(values[0]))  # a library's message may quote the page

    # --- documents -------------------------------------------------------------------------------------------------

    def _prepare(self, doc: Document) -> _Page | Document | Rejection:
        """The decoded page to send to the child, or the final result when the parent's checks or the repeated
        payloads settle it."""
        cfg = self.cfg
        self.repeats.key_of(doc)
        known = self.repeats.extracted(doc)
        if known is not None and not self._wants_date:
            return self._finish(doc, *known, "")
        raw = doc.raw or b""
        if len(raw) > cfg.max_html_bytes:
            return self._reject(doc, "html_too_large", f"{len(raw)} bytes > max_html_bytes {cfg.max_html_bytes}")
        magic = sniff_binary(raw[:64])
        if magic:
            return self._reject(doc, "binary_payload", f"starts like {magic}; content_type={doc.content_type or '-'}")
        page = decode_html(raw, doc.charset)
        if not page.strip():
            return self._reject(doc, "empty_extraction", "empty payload")
        if doc.content_type == "text/plain":
            return self._finish(doc, page.strip(), "", "", fresh=True)
        if page.count("<") > cfg.max_elements:  # count() is a fast upper bound; the regex only when it is exceeded
            n_tags = count_start_tags(page)
            if n_tags > cfg.max_elements:
                return self._reject(doc, "too_many_elements", f"{n_tags} start tags > max_elements {cfg.max_elements}")
        return _Page(strip_doctype_subset(page), known)

    def extract(self, doc: Document) -> Document | Rejection:
        page = self._prepare(doc)
        if not isinstance(page, _Page):
            return page
        return self._collect(self._send(doc, page))

    def extract_many(self, docs: Iterable[Document]) -> Iterator[Document | Rejection]:
        """One result per document, in input order. With `cfg.overlap`, the next page is sent to the child before
        the current result is yielded, so the child extracts while the caller works on the result."""
        if self.cfg.overlap is False:  # "auto" left undecided means one process here: overlap pays
            for doc in docs:
                yield self.extract(doc)
            return
        in_flight: _InFlight | None = None
        settled: list[Document | Rejection] = []  # results of documents after the one in flight, in input order
        try:
            for doc in docs:
                page = self._prepare(doc)
                if not isinstance(page, _Page):
                    if in_flight is None:
                        yield page
                    else:
                        settled.append(page)
                    continue
                previous = None
                if in_flight is not None:
                    previous, in_flight = self._collect(in_flight), None
                in_flight = self._send(doc, page)
                if previous is not None:
                    yield previous
                waiting, settled = settled, []
                yield from waiting
            if in_flight is not None:
                last, in_flight = self._collect(in_flight), None
                yield last
            yield from settled
        finally:
            if in_flight is not None:  # the caller stopped early: drain, or the next page would read this result
                self._collect(in_flight)

    def _finish(self, doc: Document, text: str, title: str, date: str, *, fresh: bool = False) -> Document | Rejection:
        """The document with its fields, or its rejection; `fresh`: the text was extracted here, not known."""
        if not text:
            if doc.raw and doc.content_type != "text/plain":
                depth = nesting_depth(doc.raw)
                if depth >= PARSER_MAX_DEPTH - 2:  # html and body count too
                    detail = f"no main text found: elements nest {depth}+ deep, the parser stops at {PARSER_MAX_DEPTH}"
                    return self._reject(doc, "too_deeply_nested", detail)
            return self._reject(doc, "empty_extraction", "no main text found")
        if len(text) > self.cfg.max_doc_chars:
            doc.text, doc.title = text[:REJECTED_TEXT_PREFIX], title  # what the rejected row shows
            return self._reject(doc, "text_too_long", f"{len(text)} chars > max_doc_chars {self.cfg.max_doc_chars}")
        doc.text, doc.title, doc.date = text, title, date
        doc.raw = None  # the payload is no longer needed; free it before the document travels on
        if fresh:
            self.repeats.publish(doc, text, title)
        return doc

    @staticmethod
    def _reject(doc: Document, reason: str, detail: str) -> Rejection:
        doc.raw = None
        return Rejection(doc, STAGE, reason, detail)
