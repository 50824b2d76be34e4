"""Annotation of extracted documents: language, Gopher quality signals, the `terms` view and keyphrases.

An annotator only adds columns; keeping or dropping is `corpus.filters` (DESIGN.md section 1, STYLE.md: Dolma).
Each document is tokenized once, by the spaCy tokenizer of its detected language (`corpus.annotate.words`); the
signals, `terms` and keyphrase candidates are read from that one Doc through `Doc.to_array`, in bulk.
"""

from __future__ import annotations

import numpy as np

from corpus.annotate.keyphrases import noun_chunk_spans, rank_keyphrases, tight_hyphens
from corpus.annotate.lang import identify_language
from corpus.annotate.signals import line_signals, ngram_signals, word_signals
from corpus.annotate.words import LanguageTokenizer, load_trained_pipeline, spacy_code, tokenizer_for
from corpus.config import AnnotateConfig
from corpus.document import SIGNAL_NAMES, Document

HYPHENS = ("-", "‐", "‑")


class Annotator:
    """Fills lang, lang_score, signals, terms and keyphrases of documents; one per process, reused."""

    def __init__(self, cfg: AnnotateConfig):
        self.cfg = cfg
        self._trained: LanguageTokenizer | None = None

    def _tokenizer(self, lang: str) -> LanguageTokenizer:
        if self.cfg.spacy_model:
            if self._trained is None:
                self._trained = load_trained_pipeline(self.cfg.spacy_model)
            if spacy_code(lang) == self._trained.code:
                return self._trained
        return tokenizer_for(lang)

    def annotate(self, doc: Document) -> Document:
        from spacy.attrs import IS_STOP, LENGTH, LOWER, SPACY

        text = doc.text
        doc.lang, doc.lang_score = identify_language(text[: self.cfg.lang_chars])
        tokenizer = self._tokenizer(doc.lang)
        tokens = tokenizer(text)
        columns = tokens.to_array([LOWER, LENGTH, IS_STOP, tokenizer.word_flag, tokenizer.letter_flag, SPACY])
        lower = columns[:, 0]
        lengths = columns[:, 1].astype(np.int64)
        is_word = columns[:, 3] == 1
        has_letter = columns[:, 4] == 1
        followed_by_space = columns[:, 5] == 1
        is_stop = (columns[:, 2] == 1) if tokenizer.has_stopwords else np.zeros(len(tokens), dtype=bool)

        n_stopwords = int((is_stop & is_word).sum()) if tokenizer.has_stopwords else None
        signals = {
            **line_signals(text),
            **word_signals(text, lengths[is_word], int((has_letter & is_word).sum()), n_stopwords),
            **ngram_signals(lower[is_word], lengths[is_word]),
        }
        doc.signals = {name: signals[name] for name in SIGNAL_NAMES}

        strings = tokens.vocab.strings
        doc.terms = " ".join([strings[h] for h in lower[is_word & ~is_stop].tolist()])

        content = has_letter & is_word & ~is_stop
        hyphen_ids = np.array([strings.add(h) for h in HYPHENS], dtype=np.uint64)
        joins = tight_hyphens(np.isin(lower, hyphen_ids), followed_by_space, content)
        extra = noun_chunk_spans(tokens, content) if tokenizer is self._trained else []
        doc.keyphrases = rank_keyphrases(
            tokens, lower, content, joins, self.cfg.keyphrases_top_k, self.cfg.keyphrase_max_words, extra
        )
        return doc
