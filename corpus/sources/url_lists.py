"""URL lists: a text file whose lines are all http(s) URLs is a list of pages to crawl, not text to read.

Format "urls" specializes "text": a file detected as text (by its name) is a URL list when `is_url_list` says so.
It has no reader: `corpus.sources.crawl.crawl_url_lists` fetches the URLs into WARC files, which are read instead,
and planning a URL list raises ValueError to say so.
"""

from __future__ import annotations

import re

from corpus.config import IngestConfig
from corpus.sources import InputFormat, WorkUnit, inputs_with_formats, register_format

URL_LIST_SCAN_BYTES = 1 << 20
_URL_LINE = re.compile(r"https?://\S+", re.IGNORECASE)


def is_url_list(path: str) -> bool:
    """True for a text file whose non-blank lines (in the first MB; `#` comments allowed) are all http(s) URLs."""
    try:
        with open(path, "rb") as f:
            head = f.read(URL_LIST_SCAN_BYTES)
    except OSError:
        return False
    lines = head.decode("utf-8", "replace").splitlines()
    if len(head) == URL_LIST_SCAN_BYTES and lines:
        lines = lines[:-1]  # the last line may be cut by the scan limit
    urls = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return bool(urls) and all(_URL_LINE.fullmatch(url) for url in urls)


def url_list_inputs(paths: list[str], fmt: str = "auto") -> list[str]:
    """The inputs that are URL lists (to crawl before reading); `plan_units` refuses them."""
    return [path for path, file_fmt in inputs_with_formats(paths, fmt) if file_fmt == URL_LIST.name]


def _crawl_first(paths: list[str], cfg: IngestConfig) -> list[WorkUnit]:
    raise ValueError(
        f"input {paths[0]!r} is a list of URLs: crawl it first (corpusforge crawl, or run --input, which crawls it)"
    )


URL_LIST = register_format(
    InputFormat(name="urls", specializes="text", claims=is_url_list, plan=_crawl_first, read=None)
)
