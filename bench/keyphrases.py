"""Keyphrase quality and speed on the issue-4 benchmarks: our SingleRank extractor against YAKE.

    python bench/keyphrases.py [--dataset NAME ...] [--split validation|training] [--limit N]

Datasets (/work/shared/data/keyphrase, see its SOURCE.md; default all four, in this order):
- inspec: Inspec (Hulth 2003) `--split` (validation); text = title + newline + abstract, reference = the
  uncontrolled keyphrases. English.
- semeval2017: LIAAD SemEval2017 (493 ScienceDirect paragraphs). English.
- kpcrowd: LIAAD 500N-KPCrowd-v1.1 (500 broadcast-news transcripts, crowd-sourced keys; 50 texts in LIAAD's copy
  are under 200 characters, a headline only). English.
- wikinews: LIAAD WikiNews (100 French news articles). French.
LIAAD texts are used as stored (the files the YAKE paper scored), reference = all their keys.

Both extractors run in the dataset's language: `extract_keyphrases(text, lang)` and
`yake.KeywordExtractor(lan=lang)` (n=3 and n=4, top 10). Matching as in pke / Gallina et al. (JCDL 2020):
stemmed, lowercased, exact match of whole whitespace-split phrases, F@k averaged over documents; predictions that
stem to the same phrase count once. Stemmer per language, as pke does: English uses NLTK's Porter stemmer, French
NLTK's Snowball French stemmer. Without NLTK the match falls back to lowercase exact (printed).
Published figures for reference (SOURCE.md; other splits and reference sets, compare with care): Inspec *test*
F@10 (pke, POS-based candidates) SingleRank 34.15, TextRank 33.95, TfIdf 35.00; YAKE README F1@10 on the LIAAD
files: SemEval2017 32.9, 500N-KPCrowd 17.3, WikiNews 45.0.
Speed, against YAKE in the same process on the same texts: our extractor as a user calls it (the language's spaCy
tokenization, stop words, candidates, SingleRank; the speed ratio column), and the whole `Annotator.annotate` (PII,
language id, signals, terms, keyphrases; it picks the language itself, so its keyphrases can differ where language
id disagrees with the dataset or PII is replaced: the number of documents with the same keyphrases is printed).
The last line is one JSON object with every figure.
Needs `pip install yake nltk` for the comparison and the stemmers (bench only, not a package dependency).
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

DATASETS = ("inspec", "semeval2017", "kpcrowd", "wikinews")
LIAAD_FILES = {"semeval2017": "SemEval2017", "kpcrowd": "500N-KPCrowd-v1.1", "wikinews": "WikiNews"}
# LIAAD files name their language in English; the extractors take ISO 639-1 codes.
LIAAD_LANGS = {"english": "en", "french": "fr"}
NLTK_STEMMERS = {"en": "Porter", "fr": "Snowball French"}


def shared_data() -> Path:
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    return Path(os.environ.get("CORPUSFORGE_SHARED_DATA", default))


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def load_dataset(name: str, split: str) -> tuple[str, str, list[str], list[list[str]]]:
    """(title, language code, texts, reference keyphrases) of one benchmark."""
    root = shared_data() / "keyphrase"
    if name == "inspec":
        records = read_jsonl(root / "inspec" / f"{split}.jsonl")
        return (f"Inspec {split}", "en", [f"{r['title']}\n{r['abstract']}" for r in records],
                [r["uncontrolled"] for r in records])
    records = read_jsonl(root / "liaad" / f"{LIAAD_FILES[name]}.jsonl")
    langs = {LIAAD_LANGS[r["lang"]] for r in records}
    assert len(langs) == 1, f"{name}: one language per dataset expected, found {langs}"
    return LIAAD_FILES[name], langs.pop(), [r["text"] for r in records], [r["keyphrases"] for r in records]


def phrase_normalizer(lang: str):
    """Per-word stemming of lowercased phrases (Porter for en, Snowball French for fr) when NLTK is there, else
    lowercase only; returns (function, description)."""
    try:
        from nltk.stem.porter import PorterStemmer
        from nltk.stem.snowball import SnowballStemmer
    except ImportError:
        return (lambda phrase: " ".join(phrase.lower().split())), "lowercase exact match (NLTK missing)"
    stemmer = PorterStemmer() if lang == "en" else SnowballStemmer("french")
    stem, description = stemmer.stem, f"{NLTK_STEMMERS[lang]}-stemmed exact match"
    return (lambda phrase: " ".join(stem(w) for w in phrase.lower().split())), description


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


def annotate_with(annotator: Annotator, warm_text: str):
    annotator.annotate(Document(id="warm", source="bench", offset=0, text=warm_text))  # builds the pipeline
    return lambda text: annotator.annotate(Document(id="", source="bench", offset=0, text=text)).keyphrases


def phrases(keyphrases: list[tuple[str, float]]) -> list[str]:
    return [phrase for phrase, _ in keyphrases]


def yake_rows(lang: str, texts: list[str]) -> list[tuple[str, list[list[str]], float]]:
    """(name, predictions, docs/s) of YAKE with 3- and 4-word n-grams; [] when yake is not installed."""
    try:
        import yake
    except ImportError:
        print("yake not installed: pip install yake for the comparison")
        return []
    rows = []
    for n in (3, 4):
        extractor = yake.KeywordExtractor(lan=lang, n=n, top=10)
        predicted, rate = timed(lambda text: [k for k, _ in extractor.extract_keywords(text)], texts)
        rows.append((f"yake {getattr(yake, '__version__', '')} n={n}".replace("  ", " "), predicted, rate))
    return rows


def evaluate(name: str, split: str, limit: int, annotator: Annotator) -> dict:
    """Prints one dataset's table and returns its figures."""
    title, lang, texts, references = load_dataset(name, split)
    if limit:
        texts, references = texts[:limit], references[:limit]
    normalize, matching = phrase_normalizer(lang)
    print(f"\n{title} ({lang}): {len(texts)} documents, {matching}")

    extract_keyphrases(texts[0], lang)  # builds the language's tokenizer
    ours, ours_rate = timed(lambda text: phrases(extract_keyphrases(text, lang, top_k=10)), texts)
    annotated, annotate_rate = timed(annotate_with(annotator, texts[0]), texts)
    same = sum(phrases(a) == o for a, o in zip(annotated, ours))
    agreement = "same keyphrases" if same == len(texts) else f"same keyphrases on {same}/{len(texts)} documents"
    print(f"extract_keyphrases: {ours_rate:.0f} docs/s; whole Annotator.annotate: {annotate_rate:.0f} docs/s "
          f"({agreement})")
    rows = [("corpusforge SingleRank", ours, ours_rate), *yake_rows(lang, texts)]

    figures = []
    print(f"{'extractor':28s} {'F@5':>6s} {'F@10':>6s} {'P@10':>6s} {'R@10':>6s} {'docs/s':>8s} {'speed ratio':>11s}")
    for extractor, predicted, rate in rows:
        _, _, f5 = f_at_k(predicted, references, 5, normalize)
        p10, r10, f10 = f_at_k(predicted, references, 10, normalize)
        print(f"{extractor:28s} {f5:6.2f} {f10:6.2f} {p10:6.2f} {r10:6.2f} {rate:8.0f} {ours_rate / rate:10.1f}x")
        figures.append({"extractor": extractor, "f1_at_5": round(f5, 2), "f1_at_10": round(f10, 2),
                        "precision_at_10": round(p10, 2), "recall_at_10": round(r10, 2),
                        "docs_per_s": round(rate, 1), "speed_ratio": round(ours_rate / rate, 2)})
    if len(rows) > 1:
        print("speed ratio = extract_keyphrases docs/s over the row's docs/s; "
              f"whole annotate over yake n=3: {annotate_rate / rows[1][2]:.1f}x")
    return {"dataset": title, "lang": lang, "documents": len(texts), "matching": matching,
            "annotate_docs_per_s": round(annotate_rate, 1), "annotate_same_keyphrases": same, "rows": figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", action="append", choices=DATASETS,
                        help="benchmark to run; repeat for several (default: all four)")
    parser.add_argument("--split", default="validation", choices=["validation", "training"], help="Inspec split")
    parser.add_argument("--limit", type=int, default=0, help="first N documents of each dataset only (0 = all)")
    args = parser.parse_args()

    annotator = Annotator(AnnotateConfig())
    results = [evaluate(name, args.split, args.limit, annotator) for name in args.dataset or DATASETS]
    print(json.dumps({"keyphrase_benchmarks": results}))


if __name__ == "__main__":
    main()
