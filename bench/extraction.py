"""Extraction quality against gold, ours next to the raw libraries in the same run.

Two gold sets from `../shared/data/extraction/`:
- trafilatura-eval (990 pages, de/en/fr/zh/...): per page, "with" segments that must appear in the main text and
  "without" segments (boilerplate) that must not. Scored as trafilatura's own evaluation does (tests/eval_common.py,
  `count_item`): whitespace-normalised substring test; a found "with" is a true positive, a missing one a false
  negative, a found "without" a false positive, an absent one a true negative; no output counts every "with" as
  missed. Counts are summed over all pages, then precision, recall, F1.
  Also, where the set has metadata gold (851 pages): title exact match and date exact match.
- cleanportaleval (71 news pages): the gold cleaned text (CleanEval markers removed, entities unescaped) against
  the output as multisets of lowercased 4-word shingles; precision, recall and F1 per page, averaged over pages.

Systems:
- `trafilatura`: `trafilatura.extract(page_bytes, ...)`: bytes in, trafilatura decodes them, exactly as its
  evaluation runs it (tests/evaluate.py); no URL.
- `trafilatura-utf8`: the same on `bytes.decode("utf-8", "replace")`, the naive decoding most scripts use.
- `ours`: `corpus.extract.Extractor.extract_many` over Documents carrying the raw bytes and the page URL (our
  decoding, caps and child process), with `ExtractConfig()` plus any `--set` overrides.
- `resiliparse`: as trafilatura's evaluation runs it (its own encoding detection, `extract_plain_text(tree,
  main_content=True)`).
- `ours-resiliparse`: the Extractor with `backend="resiliparse"`.
trafilatura's options are the pipeline's (`corpus.extract.trafilatura_options(ExtractConfig())`: balanced, tables on,
comments off; the same as its evaluation's), without metadata, which would prepend a header to the text.

    python bench/extraction.py [--data DIR] [--systems trafilatura,ours,...] [--limit N] [--set date_search=extensive]
"""

from __future__ import annotations

import argparse
import gzip
import html
import json
import logging
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from corpus.config import ExtractConfig
from corpus.document import Document
from corpus.extract import Extractor, trafilatura_options
from flows.config import parse_sets  # --set values read as the CLI reads them

DATA = Path(os.environ.get("CORPUSFORGE_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
SYSTEMS = ("trafilatura", "trafilatura-utf8", "ours", "resiliparse", "ours-resiliparse")
SHINGLE = 4


@dataclass
class Page:
    name: str
    url: str
    raw: bytes
    gold: dict  # trafilatura-eval: its evaldata entry; cleanportaleval: {"text": gold text}


# --- gold sets --------------------------------------------------------------------------------------------------------


def read_gz(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes())


def trafilatura_eval_pages(root: Path) -> list[Page]:
    """Every annotated page; like upstream's `resolve`, a file is looked up under cache/ first, then eval/."""
    evaldata = json.loads((root / "evaldata.json").read_text(encoding="utf-8"))
    pages = []
    for url, item in evaldata.items():
        candidates = (root / "cache" / f"{item['file']}.gz", root / "eval" / f"{item['file']}.gz")
        path = next(p for p in candidates if p.exists())
        pages.append(Page(item["file"], url, read_gz(path), item))
    return pages


_CLEANEVAL_MARKER = re.compile(r"^\s*<[hpl]>", re.MULTILINE)


def cleaneval_text(gold: str) -> str:
    """Gold text without the `URL:` line and the `<h>`/`<p>`/`<l>` paragraph markers, entities unescaped."""
    lines = [line for line in gold.splitlines() if not line.startswith("URL:")]
    return html.unescape(_CLEANEVAL_MARKER.sub("", "\n".join(lines)))


def cleanportal_pages(root: Path) -> list[Page]:
    pages = []
    for path in sorted((root / "input").glob("*.html.gz")):
        name = path.name.removesuffix(".html.gz")
        gold = (root / "gold" / f"{name}.txt").read_text(encoding="utf-8", errors="replace")
        url = next((line[4:].strip() for line in gold.splitlines() if line.startswith("URL:")), "")
        pages.append(Page(name, url, read_gz(path), {"text": cleaneval_text(gold)}))
    return pages


# --- metrics ----------------------------------------------------------------------------------------------------------


def normalize_space(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def segment_counts(text: str | None, item: dict) -> tuple[int, int, int, int]:
    """(tp, fp, fn, tn) of one page: its "with" and "without" segments searched in the output."""
    if not text:
        return 0, 0, len(item["with"]), len(item["without"])
    found = normalize_space(text)
    tp = sum(normalize_space(s) in found for s in item["with"])
    fp = sum(normalize_space(s) in found for s in item["without"])
    return tp, fp, len(item["with"]) - tp, len(item["without"]) - fp


def precision_recall_f1(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return precision, recall, f1


def shingles(text: str, n: int = SHINGLE) -> Counter:
    words = re.findall(r"\w+", text.lower())
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def shingle_scores(text: str | None, gold: str) -> tuple[float, float, float]:
    """Precision, recall and F1 of the output's word 4-gram multiset against the gold's."""
    ours, truth = shingles(text or ""), shingles(gold)
    common = sum((ours & truth).values())
    precision = common / sum(ours.values()) if ours else 0.0
    recall = common / sum(truth.values()) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


@dataclass
class Score:
    """One system on one set: summed segment counts or per-page shingle scores, metadata hits, time."""

    counts: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # tp, fp, fn, tn
    page_scores: list[tuple[float, float, float]] = field(default_factory=list)
    titles: list[bool] = field(default_factory=list)
    dates: list[bool] = field(default_factory=list)
    seconds: float = 0.0
    pages: int = 0

    def prf(self) -> tuple[float, float, float]:
        if self.page_scores:
            n = len(self.page_scores)
            return tuple(sum(s[i] for s in self.page_scores) / n for i in range(3))
        tp, fp, fn, _ = self.counts
        return precision_recall_f1(tp, fp, fn)


def add_page(score: Score, page: Page, text: str | None, title: str | None = None, date: str | None = None) -> None:
    score.pages += 1
    if "text" in page.gold:
        score.page_scores.append(shingle_scores(text, page.gold["text"]))
        return
    for i, value in enumerate(segment_counts(text, page.gold)):
        score.counts[i] += value
    if title is not None and page.gold.get("title"):
        score.titles.append(normalize_space(title) == normalize_space(page.gold["title"]))
    if date is not None and page.gold.get("date"):
        score.dates.append(date == page.gold["date"])


# --- systems ----------------------------------------------------------------------------------------------------------


def raw_trafilatura(pages: list[Page], score: Score, *, naive_utf8: bool) -> None:
    import trafilatura

    options = {k: v for k, v in trafilatura_options(ExtractConfig()).items() if k != "with_metadata"}
    start = time.perf_counter()
    for page in pages:
        html_input = page.raw.decode("utf-8", "replace") if naive_utf8 else page.raw
        try:
            text = trafilatura.extract(html_input, **options)
        except Exception:  # noqa: BLE001 - a crash is a full miss, as in trafilatura's evaluation
            text = None
        add_page(score, page, text)
    score.seconds = time.perf_counter() - start


def raw_resiliparse(pages: list[Page], score: Score) -> None:
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding
    from resiliparse.parse.html import HTMLTree

    start = time.perf_counter()
    for page in pages:
        try:
            tree = HTMLTree.parse(bytes_to_str(page.raw, detect_encoding(page.raw)))
            text = extract_plain_text(tree, main_content=True)
        except Exception:  # noqa: BLE001
            text = None
        add_page(score, page, text)
    score.seconds = time.perf_counter() - start


def ours(pages: list[Page], score: Score, cfg: ExtractConfig) -> None:
    docs = [
        Document(id=page.name, source="bench", offset=0, url=page.url, raw=page.raw, content_type="text/html")
        for page in pages
    ]
    with Extractor(cfg) as extractor:
        extractor.extract(Document(id="warm-up", source="bench", offset=0, raw=b"<p>warm-up</p>"))  # child start
        start = time.perf_counter()
        results = list(extractor.extract_many(docs))
        score.seconds = time.perf_counter() - start
    for page, result in zip(pages, results):
        if isinstance(result, Document):
            add_page(score, page, result.text, result.title, result.date)
        else:
            add_page(score, page, None, "", "")


def run_system(system: str, pages: list[Page], overrides: dict) -> Score:
    score = Score()
    if system in ("trafilatura", "trafilatura-utf8"):
        raw_trafilatura(pages, score, naive_utf8=system == "trafilatura-utf8")
    elif system == "resiliparse":
        raw_resiliparse(pages, score)
    elif system == "ours":
        ours(pages, score, ExtractConfig(**overrides))
    elif system == "ours-resiliparse":
        ours(pages, score, ExtractConfig(**{**overrides, "backend": "resiliparse"}))
    else:
        raise ValueError(f"unknown system {system!r}; choose from {', '.join(SYSTEMS)}")
    return score


# --- report -----------------------------------------------------------------------------------------------------------


def fraction(hits: list[bool]) -> str:
    return f"{sum(hits) / len(hits):.3f}" if hits else "-"


def print_table(title: str, metric: str, scores: dict[str, Score]) -> None:
    print(f"\n{title} ({metric})")
    print("| system | pages | precision | recall | F1 | title acc | date acc | docs/s |")
    print("|---|---|---|---|---|---|---|---|")
    for system, score in scores.items():
        p, r, f = score.prf()
        rate = score.pages / score.seconds if score.seconds else 0.0
        print(
            f"| {system} | {score.pages} | {p:.3f} | {r:.3f} | **{f:.3f}** | {fraction(score.titles)} "
            f"| {fraction(score.dates)} | {rate:.1f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA / "extraction")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated subset of {', '.join(SYSTEMS)}")
    parser.add_argument("--sets", default="trafilatura-eval,cleanportaleval")
    parser.add_argument("--limit", type=int, default=0, help="first N pages of each set (0 = all)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="ExtractConfig key=value for ours")
    args = parser.parse_args()
    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    logging.getLogger("htmldate").setLevel(logging.CRITICAL)
    overrides = parse_sets(args.overrides)
    systems = [s for s in args.systems.split(",") if s]
    loaders = {
        "trafilatura-eval": (trafilatura_eval_pages, "segment F1 summed over pages, as trafilatura's evaluation"),
        "cleanportaleval": (cleanportal_pages, f"{SHINGLE}-gram word shingle F1, mean over pages"),
    }
    if overrides:
        print(f"ours: ExtractConfig overrides {overrides}")
    for name in args.sets.split(","):
        load, metric = loaders[name]
        pages = load(args.data / name)
        if args.limit:
            pages = pages[: args.limit]
        print_table(name, metric, {system: run_system(system, pages, overrides) for system in systems})


if __name__ == "__main__":
    main()
