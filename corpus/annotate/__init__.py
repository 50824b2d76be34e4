"""Annotation of extracted documents: PII replacement, language, quality signals, the `terms` view and keyphrases.

An annotator only adds columns; keeping or dropping is `corpus.filters` (DESIGN.md section 1, STYLE.md: Dolma).
Each document is tokenized once, by the spaCy tokenizer of its detected language (`corpus.annotate.words`); the
signals, `terms` and keyphrase candidates are read from that one tokenization as arrays (`TokenView`).

The steps, in order, are public functions so that `bench/annotate.py` can time each: `redact_pii`,
`identify_language`, `tokenize`, `signals_of`, `terms_of`, `keyphrases_of`. `signals_of` computes the signals of
every registered signal family (corpus/families/), each from the same `SignalInput`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from corpus import families
from corpus.annotate import words
from corpus.annotate.keyphrases import candidate_words, extract_keyphrases, keyphrases_of, noun_chunk_spans
from corpus.annotate.lang import identify_language
from corpus.annotate.pii import PII_KINDS, Redaction, redact
from corpus.annotate.signals import SignalInput
from corpus.annotate.words import (
    LanguageTokenizer,
    TokenView,
    load_trained_pipeline,
    spacy_code,
    tokenize,
    tokenizer_for,
)

if TYPE_CHECKING:  # not at run time: the signal families import this package while corpus.document is importing
    from corpus.config import AnnotateConfig
    from corpus.document import Document

__all__ = [
    "PII_KINDS",
    "Annotator",
    "extract_keyphrases",
    "identify_language",
    "keyphrases_of",
    "redact_pii",
    "signals_of",
    "terms_of",
    "tokenize",
]

def redact_pii(doc: Document, cfg: AnnotateConfig) -> Redaction:
    """Replace PII in the title and text by placeholders; the counts cover both, the spans are those in the text."""
    placeholders = cfg.pii_placeholders
    title = redact(doc.title, placeholders, cfg.pii_kinds)
    body = redact(doc.text, placeholders, cfg.pii_kinds)
    doc.title, doc.text = title.text, body.text
    counts = {kind: title.counts[kind] + body.counts[kind] for kind in body.counts}
    return Redaction(body.text, counts, body.spans)


def signals_of(text: str, view: TokenView, pii_counts: dict[str, int] | None, lang: str = "") -> dict:
    """Every signal of every registered family (corpus.families), in the order of SIGNAL_NAMES; a signal its
    family's computation leaves out is None, as are the PII counts of kinds that were not replaced."""
    source = SignalInput.of_view(text, view, lang=lang, pii_counts=pii_counts)
    signals: dict = {}
    for family in families.families():
        values = family.compute(source)
        for name in family.signal_names:
            signals[name] = values.get(name)
    return signals


def terms_of(view: TokenView) -> str:
    """Lowercased words without stop words and punctuation, space-separated."""
    strings = view.doc.vocab.strings
    return " ".join([strings[h] for h in view.lower[view.is_word & ~view.is_stop].tolist()])


class Annotator:
    """Fills lang, lang_score, signals, terms and keyphrases of documents; one per process, reused.

    With `pii` on (the default), e-mail addresses, IP addresses and phone numbers in `text` (and `title`) are
    replaced by placeholders first. This is the one annotation that rewrites `text`, against the rule that `text`
    stays as extracted (DESIGN.md section 1): personal data must not reach the shards, the tokenizer or the model,
    and replacing it before tokenizing means no derived view (signals, `terms`, keyphrases) sees it either.
    Placeholder tokens are not words: they never enter `terms`, keyphrases or word counts.
    """

    def __init__(self, cfg: AnnotateConfig):
        self.cfg = cfg
        self._trained: LanguageTokenizer | None = None
        self._trained_lexemes = 0  # its vocabulary's size when loaded

    def tokenizer(self, lang: str) -> LanguageTokenizer:
        if self.cfg.spacy_model:
            # reloaded once it has met MAX_LEXEMES new strings, to bound memory as tokenizer_for does
            if self._trained is None or len(self._trained.nlp.vocab) > self._trained_lexemes + words.MAX_LEXEMES:
                self._trained = load_trained_pipeline(self.cfg.spacy_model)
                self._trained_lexemes = len(self._trained.nlp.vocab)
            if spacy_code(lang) == self._trained.code:
                return self._trained
        return tokenizer_for(lang)

    def annotate(self, doc: Document) -> Document:
        redaction = redact_pii(doc, self.cfg) if self.cfg.pii else None
        doc.lang, doc.lang_score = identify_language(doc.text[: self.cfg.lang_chars])
        if self.cfg.languages and doc.lang not in self.cfg.languages:
            return doc
        tokenizer = self.tokenizer(doc.lang)
        view = tokenize(tokenizer, doc.text)
        if redaction is not None:
            view.drop_spans(redaction.spans)
        doc.signals = signals_of(doc.text, view, redaction.counts if redaction else None, doc.lang)
        doc.terms = terms_of(view)
        extra = noun_chunk_spans(view.doc, candidate_words(view)) if tokenizer.trained else []
        doc.keyphrases = keyphrases_of(view, self.cfg.keyphrases_top_k, self.cfg.keyphrase_max_words, extra)
        return doc

