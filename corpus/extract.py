"""Main text out of HTML: trafilatura in a child process, with size caps before parsing and a per-page timeout.

trafilatura (through lxml) can take unbounded time and memory on hostile pages, and a C-level crash would take
the whole worker down with it. So it runs in one long-lived child process per `Extractor` (spawn context, fed
through a Pipe); a page that times out or kills the child becomes a rejection and a fresh child takes over.
Cheap checks (size, binary magic, number of start tags) run in the parent before any parsing.
"""

from __future__ import annotations

import logging
import multiprocessing
import re

from corpus.config import ExtractConfig
from corpus.document import REJECTED_TEXT_PREFIX, Document
from corpus.sources import Rejection
from corpus.sources.decode import decode_html, sniff_binary

STAGE = "extract"
_START_TAG = re.compile(r"<[A-Za-z]")
# A fresh child imports trafilatura and lxml (about a second); startup is not charged to the page's timeout.
CHILD_START_TIMEOUT_S = 120.0
_CHILD_EXIT_WAIT_S = 2.0


def count_start_tags(html: str) -> int:
    """Number of "<" followed by a letter: a cheap upper bound on the elements a parser would build."""
    return len(_START_TAG.findall(html))


def trafilatura_options(cfg: ExtractConfig) -> dict:
    """Keyword arguments for trafilatura.bare_extraction / extract that implement `cfg`."""
    return {
        "fast": cfg.fast,
        "favor_precision": cfg.favor == "precision",
        "favor_recall": cfg.favor == "recall",
        "include_tables": cfg.include_tables,
        "include_comments": cfg.include_comments,
        "with_metadata": True,
    }


def _child_main(conn, options: dict) -> None:
    """Child process loop: (html, url) in, ("ok", text, title, date) or ("error", message) out; None stops it."""
    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)  # it logs every discarded page as an error
    logging.getLogger("htmldate").setLevel(logging.CRITICAL)
    import trafilatura

    conn.send(("ready",))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):  # the parent went away
            return
        if message is None:
            return
        html, url = message
        try:
            result = trafilatura.bare_extraction(html, url=url or None, output_format="python", **options)
            if result is None:
                conn.send(("ok", "", "", ""))
                continue
            text = result.text or ""
            if options["include_comments"] and result.comments:
                text = f"{text}\n{result.comments}"  # what trafilatura.extract returns for txt output
            conn.send(("ok", text, result.title or "", result.date or ""))
        except Exception as exc:  # noqa: BLE001 - any library error is the page's rejection, not ours
            conn.send(("error", f"{type(exc).__name__}: {str(exc)[:500]}"))


class Extractor:
    """`extract(doc)` -> the doc with text/title/date, or a Rejection. Use as a context manager."""

    def __init__(self, cfg: ExtractConfig):
        self.cfg = cfg
        self._options = trafilatura_options(cfg)
        self._context = multiprocessing.get_context("spawn")
        self._process = None
        self._conn = None
        self.restarts = 0  # children replaced after a timeout or crash

    def __enter__(self) -> Extractor:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # --- the child -------------------------------------------------------------------------------------------------

    def _start_child(self) -> None:
        parent_conn, child_conn = self._context.Pipe()
        process = self._context.Process(
            target=_child_main, args=(child_conn, self._options), name="corpusforge-extract", daemon=True
        )
        process.start()
        child_conn.close()  # so that recv() in the parent sees EOF when the child dies
        try:
            if not parent_conn.poll(CHILD_START_TIMEOUT_S):
                raise TimeoutError(f"no sign of life within {CHILD_START_TIMEOUT_S}s")
            parent_conn.recv()
        except (EOFError, OSError) as exc:
            process.kill()
            process.join(_CHILD_EXIT_WAIT_S)
            # A page cannot cause this; the environment can (spawn re-imports the main module: it must be a file).
            raise RuntimeError(f"extraction child failed to start (exit code {process.exitcode}): {exc!r}") from exc
        self._process, self._conn = process, parent_conn

    def _stop_child(self, *, kill: bool) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
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
        self._stop_child(kill=False)

    def _run(self, html: str, url: str) -> tuple[str, ...]:
        """("ok", text, title, date) | ("error", msg) | ("timeout", msg) | ("crashed", msg) for one page."""
        if self._process is None:
            self._start_child()
        try:
            self._conn.send((html, url))
            if not self._conn.poll(self.cfg.timeout_s):
                self._stop_child(kill=True)
                self.restarts += 1
                return ("timeout", f"no result within timeout_s={self.cfg.timeout_s}")
            return self._conn.recv()
        except (EOFError, OSError) as exc:  # the child died: EOF on the pipe, or a broken pipe on send
            self._process.join(_CHILD_EXIT_WAIT_S)
            exitcode = self._process.exitcode
            self._stop_child(kill=True)
            self.restarts += 1
            return ("crashed", f"child exited with code {exitcode} ({type(exc).__name__})")

    # --- one document ----------------------------------------------------------------------------------------------

    def extract(self, doc: Document) -> Document | Rejection:
        cfg = self.cfg
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
            return self._finish(doc, page.strip(), "", "")
        if page.count("<") > cfg.max_elements:  # count() is a fast upper bound; the regex only when it is exceeded
            n_tags = count_start_tags(page)
            if n_tags > cfg.max_elements:
                return self._reject(doc, "too_many_elements", f"{n_tags} start tags > max_elements {cfg.max_elements}")
        status, *values = self._run(page, doc.url)
        if status == "ok":
            text, title, date = values
            return self._finish(doc, text.strip(), title, date)
        reason = {"timeout": "extraction_timeout", "crashed": "extraction_crashed"}.get(status, "extraction_error")
        return self._reject(doc, reason, values[0])

    def _finish(self, doc: Document, text: str, title: str, date: str) -> Document | Rejection:
        if not text:
            return self._reject(doc, "empty_extraction", "no main text found")
        if len(text) > self.cfg.max_doc_chars:
            doc.text, doc.title = text[:REJECTED_TEXT_PREFIX], title  # what the rejected row shows
            return self._reject(doc, "text_too_long", f"{len(text)} chars > max_doc_chars {self.cfg.max_doc_chars}")
        doc.text, doc.title, doc.date = text, title, date
        doc.raw = None  # the payload is no longer needed; free it before the document travels on
        return doc

    @staticmethod
    def _reject(doc: Document, reason: str, detail: str) -> Rejection:
        doc.raw = None
        return Rejection(doc, STAGE, reason, detail)
