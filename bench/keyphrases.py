"""Keyphrase quality and speed on Inspec (Hulth 2003) validation: our SingleRank extractor against YAKE.

    python bench/keyphrases.py [--split validation|training] [--limit N]

Text = title + newline + abstract; reference = the uncontrolled keyphrases. Matching as in pke / Gallina et al.
(JCDL 2020): Porter-stemmed, lowercased, exact match of whole phrases, F@k averaged over documents; predictions
that stem to the same phrase count once. Without NLTK the match falls back to lowercase exact (printed).
Published Inspec *test* F@10 for reference (pke, POS-based candidates): SingleRank 34.15, TextRank 33.95,
TfIdf 35.00. Speed, against `yake.KeywordExtractor(lan="en")` in the same process on the same texts: our extractor
as a user calls it, `extract_keyphrases(text, "en")` (English spaCy tokenization, stop words, candidates, SingleRank;
the speed ratio column), and the whole `Annotator.annotate` (PII, language id, signals, terms, keyphrases).
Needs `pip install yake nltk` for the comparison and the stemmer (bench only, not a package dependency).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from corpus.annotate import Annotator, extract_keyphrases
from corpus.config import AnnotateConfig
from corpus.document import Document


def shared_data() -> Path:
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    return Path(os.environ.get("CORPUSFORGE_SHARED_DATA", default))


def phrase_normalizer():
    """Porter stemming per word when NLTK is there, else lowercase only; returns (function, description)."""
    try:
        from nltk.stem.porter import PorterStemmer
    except ImportError:
        return (lambda phrase: " ".join(phrase.lower().split())), "lowercase exact match (NLTK missing)"
    stemmer = PorterStemmer()
    return (lambda phrase: " ".join(stemmer.stem(w) for w in phrase.lower().split())), "Porter-stemmed exact match"


def f_at_k(predictions: list[list[str]], references: list[list[str]], k: int, normalize) -> tuple[float, float, float]:
    """Mean precision, recall and F1 at k, in percent."""
    precision = recall = f1 = 0.0
    for predicted, gold in zip(predictions, references):
        top = list(dict.fromkeys(normalize(p) for p in predicted[:k]))
        gold_set = {normalize(g) for g in gold}
        hits = sum(p in gold_set for p in top)
        p = hits / len(top) if top else 0.0
        r = hits / len(gold_set) if gold_set else 0.0
        precision, recall = precision + p, recall + r
        f1 += 2 * p * r / (p + r) if p + r else 0.0
    n = len(references)
    return 100 * precision / n, 100 * recall / n, 100 * f1 / n


def timed(function, texts: list[str]) -> tuple[list, float]:
    start = time.perf_counter()
    results = [function(text) for text in texts]
    return results, len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="validation", choices=["validation", "training"])
    parser.add_argument("--limit", type=int, default=0, help="first N documents only (0 = all)")
    args = parser.parse_args()

    path = shared_data() / "keyphrase" / "inspec" / f"{args.split}.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records = records[: args.limit] if args.limit else records
    texts = [f"{r['title']}\n{r['abstract']}" for r in records]
    references = [r["uncontrolled"] for r in records]
    normalize, matching = phrase_normalizer()
    print(f"Inspec {args.split}: {len(texts)} documents, {matching}")

    def annotate_with(cfg: AnnotateConfig):
        annotator = Annotator(cfg)
        annotator.annotate(Document(id="warm", source="bench", offset=0, text=texts[0]))  # builds the pipeline
        return lambda text: annotator.annotate(Document(id="", source="bench", offset=0, text=text)).keyphrases

    extract_keyphrases(texts[0], "en")  # builds the English tokenizer
    ours, ours_rate = timed(lambda text: extract_keyphrases(text, "en", top_k=10), texts)
    annotated, annotate_rate = timed(annotate_with(AnnotateConfig()), texts)
    assert [[p for p, _ in kp] for kp in annotated] == [[p for p, _ in kp] for kp in ours]
    rows = [("corpusforge SingleRank", [[p for p, _ in kp] for kp in ours], ours_rate)]
    print(f"extract_keyphrases: {ours_rate:.0f} docs/s; whole Annotator.annotate: {annotate_rate:.0f} docs/s "
          "(same keyphrases)")

    try:
        import yake
    except ImportError:
        print("yake not installed: pip install yake for the comparison")
    else:
        for n in (3, 4):
            extractor = yake.KeywordExtractor(lan="en", n=n, top=10)
            predicted, rate = timed(lambda text: [k for k, _ in extractor.extract_keywords(text)], texts)
            rows.append((f"yake {yake.__version__ if hasattr(yake, '__version__') else ''} n={n}".replace("  ", " "),
                         predicted, rate))

    print(f"{'extractor':28s} {'F@5':>6s} {'F@10':>6s} {'P@10':>6s} {'R@10':>6s} {'docs/s':>8s} {'speed ratio':>11s}")
    for name, predicted, rate in rows:
        _, _, f5 = f_at_k(predicted, references, 5, normalize)
        p10, r10, f10 = f_at_k(predicted, references, 10, normalize)
        print(f"{name:28s} {f5:6.2f} {f10:6.2f} {p10:6.2f} {r10:6.2f} {rate:8.0f} {ours_rate / rate:10.1f}x")
    print("speed ratio = extract_keyphrases docs/s over the row's docs/s; "
          f"whole annotate over yake n=3: {annotate_rate / rows[1][2]:.1f}x" if len(rows) > 1 else "")


if __name__ == "__main__":
    main()
