"""Docs/s of each annotate step on the bundled sample's extracted texts, and what the default filters drop there.

    python bench/annotate.py [--input FILE.warc.gz] [--limit N]

Texts: every response record of the WARC, decoded and extracted with trafilatura under our default extract options
(not timed). Steps, each timed over all texts before the next starts, in the annotator's order: PII replacement,
language id, tokenization (spaCy, language-aware, to arrays), signals (Gopher, C4, FineWeb), terms, keyphrases.
Tokenizers are built before the clock on a few words of each language; their vocabularies grow during the run, as in
a worker. Then the whole `Annotator.annotate` per document, for comparison (vocabularies warm by then).

Filters: `FilterConfig()` defaults over those annotated documents: drops by reason (the first rule that fires, as the
filter stage records it), how many documents each rule would drop on its own, and kept documents per language.
"""

from __future__ import annotations

import argparse
import collections
import logging
import time
from pathlib import Path

from corpus.annotate import (
    Annotator,
    identify_language,
    keyphrases_of,
    redact_pii,
    signals_of,
    terms_of,
    tokenize,
)
from corpus.config import AnnotateConfig, ExtractConfig, FilterConfig
from corpus.document import Document
from corpus.filters import RULES, check

SAMPLE = Path(__file__).resolve().parents[1] / "corpus" / "sample_data" / "sample.warc.gz"


def extracted_documents(path: Path, limit: int) -> list[Document]:
    import trafilatura
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    from corpus.extract import trafilatura_options
    from corpus.sources.decode import decode_html

    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    options = trafilatura_options(ExtractConfig())
    options.pop("with_metadata")
    docs = []
    with open(path, "rb") as stream:
        for record in ArchiveIterator(stream, record_types=WarcRecordType.response):
            url = record.headers.get("WARC-Target-URI", "")
            text = trafilatura.extract(decode_html(record.reader.read()), url=url or None, **options)
            if text:
                docs.append(Document(id=record.record_id, source=str(path), offset=0, url=url, text=text))
            if len(docs) == limit:
                break
    return docs


def time_steps(docs: list[Document], cfg: AnnotateConfig) -> list[tuple[str, float]]:
    """Seconds of each step over all documents, the steps run one after another as `Annotator.annotate` does."""
    annotator = Annotator(cfg)
    seconds = []

    def step(name: str, function, items: list) -> list:
        start = time.perf_counter()
        results = [function(item) for item in items]
        seconds.append((name, time.perf_counter() - start))
        return results

    redactions = step("PII replacement", lambda doc: redact_pii(doc, cfg), docs)
    languages = step("language id", lambda doc: identify_language(doc.text[: cfg.lang_chars]), docs)
    tokenizers = [annotator.tokenizer(lang) for lang, _ in languages]
    for tokenizer in {id(t): t for t in tokenizers}.values():  # pipelines built before the clock
        tokenizer("a few words")

    def tokenize_document(item):
        (doc, redaction), tokenizer = item
        view = tokenize(tokenizer, doc.text)
        view.drop_spans(redaction.spans)
        return view

    views = step("tokenization", tokenize_document, list(zip(zip(docs, redactions), tokenizers)))
    step("signals", lambda item: signals_of(item[0].text, item[1], item[2].counts), list(zip(docs, views, redactions)))
    step("terms", terms_of, views)
    step("keyphrases", lambda view: keyphrases_of(view, cfg.keyphrases_top_k, cfg.keyphrase_max_words), views)
    return seconds


def print_steps(seconds: list[tuple[str, float]], n_docs: int, n_chars: int, whole_seconds: float) -> None:
    total = sum(s for _, s in seconds)
    print(f"{'step':18s} {'docs/s':>9s} {'MB/s':>7s} {'share':>6s}")
    for name, s in seconds + [("sum of steps", total)]:
        print(f"{name:18s} {n_docs / s:9.0f} {n_chars / s / 1e6:7.2f} {s / total:6.1%}")
    rate = n_docs / whole_seconds
    print(f"{'Annotator.annotate':18s} {rate:9.0f} {n_chars / whole_seconds / 1e6:7.2f}   (warm vocab)")


def print_filter_report(docs: list[Document], cfg: FilterConfig) -> None:
    first = collections.Counter()
    alone = collections.Counter()
    kept_by_lang, total_by_lang = collections.Counter(), collections.Counter()
    for doc in docs:
        verdict = check(doc, cfg)
        first[verdict[0] if verdict else "kept"] += 1
        total_by_lang[doc.lang] += 1
        kept_by_lang[doc.lang] += verdict is None
        for rule in RULES:
            if (rule.family is None or getattr(cfg, rule.family)) and rule.fires(doc, cfg):
                alone[rule.reason] += 1
    n = len(docs)
    print(f"\nFilterConfig() defaults on {n} documents: kept {first['kept']} ({first['kept'] / n:.1%})")
    print(f"{'reason':26s} {'dropped':>8s} {'fires alone':>12s}")
    for rule in RULES:
        if first[rule.reason] or alone[rule.reason]:
            print(f"{rule.reason:26s} {first[rule.reason]:8d} {alone[rule.reason]:12d}")
    print("kept per language: " + ", ".join(
        f"{lang or '?'} {kept_by_lang[lang]}/{total}" for lang, total in total_by_lang.most_common()
    ))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=SAMPLE)
    parser.add_argument("--limit", type=int, default=0, help="first N extracted documents only (0 = all)")
    args = parser.parse_args()

    docs = extracted_documents(args.input, args.limit)
    n_chars = sum(len(doc.text) for doc in docs)
    print(f"{args.input.name}: {len(docs)} extracted documents, {n_chars / 1e6:.2f} M characters")
    cfg = AnnotateConfig()
    originals = [doc.text for doc in docs]
    seconds = time_steps(docs, cfg)

    annotated = [Document(id=d.id, source=d.source, offset=0, url=d.url, text=t) for d, t in zip(docs, originals)]
    annotator = Annotator(cfg)
    start = time.perf_counter()
    for doc in annotated:
        annotator.annotate(doc)
    print_steps(seconds, len(docs), n_chars, time.perf_counter() - start)
    print_filter_report(annotated, FilterConfig())


if __name__ == "__main__":
    main()
