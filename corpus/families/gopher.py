"""Gopher's quality and repetition families (Rae et al. 2021, appendix A1; thresholds as published and as datatrove
implements them). The signals are computed in corpus/annotate/signals.py, which explains their definitions.

The language settings at the end of `gopher_repetition` (`unsegmented_languages`, `syllable_block_languages`,
`ngram_rules_for_unsegmented`) say where word-based rules do not apply; the quality rules and FineWeb's newline rule
read them too. They are declared here for their place in the `filter` section, after the Gopher thresholds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
from pydantic import Field

from corpus.annotate.signals import DUP_NGRAM_SIZES, TOP_NGRAM_SIZES, gopher_quality_signals, gopher_repetition_signals
from corpus.families import SignalFamily
from corpus.families.rules import Detail, Predicate, Rule, above, as_stored, below, format_value, signal

if TYPE_CHECKING:
    from corpus.config import FilterConfig
    from corpus.document import Document


def word_lengths_apply(doc: Document, cfg: FilterConfig) -> bool:
    """Word-length rules assume alphabetic words: Han, kana and Thai tokens are characters or phrases, and Hangul
    words are a few syllable blocks."""
    return doc.lang not in cfg.unsegmented_languages and doc.lang not in cfg.syllable_block_languages


def _mean_word_len_out_of_range(doc: Document, cfg: FilterConfig) -> bool:
    value = signal(doc, "mean_word_len")
    return value is not None and not cfg.min_mean_word_len <= value <= cfg.max_mean_word_len


GOPHER_QUALITY = SignalFamily(
    name="gopher_quality",
    fields=[
        ("n_chars", pa.int64()),
        ("n_words", pa.int64()),
        ("n_lines", pa.int64()),
        ("mean_word_len", pa.float32()),
        ("symbol_ratio", pa.float32()),
        ("bullet_line_frac", pa.float32()),
        ("ellipsis_line_frac", pa.float32()),
        ("alpha_word_frac", pa.float32()),
        ("n_stopwords", pa.int64()),
        ("stopword_frac", pa.float32()),
    ],
    compute=gopher_quality_signals,
    settings={
        "min_words": (int, Field(50, ge=0, description="Gopher: minimum words.")),
        "max_words": (int, Field(100_000, gt=0, description="Gopher: maximum words.")),
        "min_mean_word_len": (
            float,
            Field(3.0, ge=0, description="Gopher: minimum mean word length (not applied to unsegmented scripts)."),
        ),
        "max_mean_word_len": (float, Field(10.0, gt=0, description="Gopher: maximum mean word length.")),
        "max_symbol_ratio": (float, Field(0.1, ge=0, description="Gopher: maximum ratio of '#' and '...' to words.")),
        "max_bullet_line_frac": (
            float,
            Field(0.9, ge=0, le=1, description="Gopher: maximum fraction of lines starting with a bullet."),
        ),
        "max_ellipsis_line_frac": (
            float,
            Field(0.3, ge=0, le=1, description="Gopher: maximum fraction of lines ending in an ellipsis."),
        ),
        "min_alpha_word_frac": (float, Field(0.8, ge=0, le=1, description="Gopher: minimum fraction of words with a letter.")),
        "min_stopwords": (
            int,
            Field(2, ge=0, description="Gopher: minimum stop words (languages with a stop-word list only)."),
        ),
    },
    rules=[
        Rule("gopher_min_words", *below("n_words", "min_words")),
        Rule("gopher_max_words", *above("n_words", "max_words")),
        Rule(
            "gopher_mean_word_len",
            lambda doc, cfg: word_lengths_apply(doc, cfg) and _mean_word_len_out_of_range(doc, cfg),
            lambda doc, cfg: f"mean_word_len={format_value(signal(doc, 'mean_word_len'))} not in "
            f"[{cfg.min_mean_word_len}, {cfg.max_mean_word_len}]",
        ),
        Rule("gopher_symbol_ratio", *above("symbol_ratio", "max_symbol_ratio")),
        Rule("gopher_bullet_lines", *above("bullet_line_frac", "max_bullet_line_frac")),
        Rule("gopher_ellipsis_lines", *above("ellipsis_line_frac", "max_ellipsis_line_frac")),
        Rule("gopher_alpha_words", *below("alpha_word_frac", "min_alpha_word_frac")),
        Rule("gopher_stopwords", *below("n_stopwords", "min_stopwords")),
    ],
    switch="Apply the Gopher quality rules (gopher_min_words ... gopher_stopwords).",
)


def word_ngrams_apply(doc: Document, cfg: FilterConfig) -> bool:
    return cfg.ngram_rules_for_unsegmented or doc.lang not in cfg.unsegmented_languages


def _first_ngram_over(doc: Document, thresholds: dict[int, float], template: str) -> str | None:
    """Name and values of the first n whose n-gram signal exceeds its threshold, else None."""
    for n, limit in sorted(thresholds.items()):
        value = signal(doc, template.format(n=n))
        if value is not None and as_stored(value) > as_stored(float(limit)):
            return f"{template.format(n=n)}={format_value(value)} > {limit}"
    return None


def ngram_rule(thresholds_field: str, template: str) -> tuple[Predicate, Detail]:
    """One rule over a family of n-gram signals with per-n thresholds (a dict in the config); by default not for
    unsegmented languages, whose n-grams are of characters."""

    def fires(doc: Document, cfg: FilterConfig) -> bool:
        thresholds = getattr(cfg, thresholds_field)
        return word_ngrams_apply(doc, cfg) and _first_ngram_over(doc, thresholds, template) is not None

    def detail(doc: Document, cfg: FilterConfig) -> str:
        return _first_ngram_over(doc, getattr(cfg, thresholds_field), template) or ""

    return fires, detail


GOPHER_REPETITION = SignalFamily(
    name="gopher_repetition",
    fields=[
        ("dup_line_frac", pa.float32()),
        ("dup_para_frac", pa.float32()),
        ("dup_line_char_frac", pa.float32()),
        ("dup_para_char_frac", pa.float32()),
        *((f"top_{n}gram_char_frac", pa.float32()) for n in TOP_NGRAM_SIZES),
        *((f"dup_{n}gram_char_frac", pa.float32()) for n in DUP_NGRAM_SIZES),
    ],
    compute=gopher_repetition_signals,
    settings={
        "max_dup_line_frac": (float, Field(0.3, ge=0, le=1, description="Gopher repetition: duplicate lines fraction.")),
        "max_dup_para_frac": (
            float,
            Field(0.3, ge=0, le=1, description="Gopher repetition: duplicate paragraphs fraction."),
        ),
        "max_dup_line_char_frac": (
            float,
            Field(0.2, ge=0, le=1, description="Gopher repetition: characters in duplicate lines."),
        ),
        "max_dup_para_char_frac": (
            float,
            Field(0.2, ge=0, le=1, description="Gopher repetition: characters in duplicate paragraphs."),
        ),
        "max_top_ngram_char_frac": (
            dict[int, float],
            Field(
                default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16},
                description="Gopher repetition: characters covered by the most frequent n-gram, per n.",
            ),
        ),
        "max_dup_ngram_char_frac": (
            dict[int, float],
            Field(
                default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
                description="Gopher repetition: characters covered by duplicated n-grams, per n.",
            ),
        ),
        # where words are not words: read by the quality rules and FineWeb's newline rule too
        "unsegmented_languages": (
            list[str],
            Field(
                default_factory=lambda: ["zh", "ja", "th", "lo", "km", "my", "bo"],
                description="Languages written without spaces between words: word-length rules do not apply.",
            ),
        ),
        "syllable_block_languages": (
            list[str],
            Field(
                default_factory=lambda: ["ko"],
                description="Languages written with spaces but in syllable blocks (Hangul), whose words average under 3 "
                "characters: the mean-word-length rule does not apply (it dropped 4 of the 6 Korean sample pages).",
            ),
        ),
        "ngram_rules_for_unsegmented": (
            bool,
            Field(
                False,
                description="Apply the top/duplicate n-gram rules to `unsegmented_languages` too. Their tokens are "
                "single Han/kana characters or Thai phrases, not words: a repeated 5-character term is no boilerplate "
                "(with this on, all Japanese sample pages are dropped).",
            ),
        ),
    },
    rules=[
        Rule("gopher_dup_lines", *above("dup_line_frac", "max_dup_line_frac")),
        Rule("gopher_dup_paras", *above("dup_para_frac", "max_dup_para_frac")),
        Rule("gopher_dup_line_chars", *above("dup_line_char_frac", "max_dup_line_char_frac")),
        Rule("gopher_dup_para_chars", *above("dup_para_char_frac", "max_dup_para_char_frac")),
        Rule("gopher_top_ngram", *ngram_rule("max_top_ngram_char_frac", "top_{n}gram_char_frac")),
        Rule("gopher_dup_ngram", *ngram_rule("max_dup_ngram_char_frac", "dup_{n}gram_char_frac")),
    ],
    switch="Apply the Gopher repetition rules (gopher_dup_* and gopher_top_ngram / gopher_dup_ngram).",
)
