"""Declarative keep/drop rules over the annotations (language, lang_score, signals); nothing is recomputed here.

`RULES` is a table of (reason, fires, detail), checked in order; the first rule that fires names the reason a
document is dropped. Adding a rule is one line. Thresholds live in `FilterConfig`; a signal that is None (a
language without a stop-word list, a document without words) never fires a rule.
"""

from __future__ import annotations

from collections.abc import Callable

from corpus.config import FilterConfig
from corpus.document import Document

Predicate = Callable[[Document, FilterConfig], bool]
Detail = Callable[[Document, FilterConfig], str]


def _signal(doc: Document, name: str):
    return doc.signals.get(name)


def _word_lengths_apply(doc: Document, cfg: FilterConfig) -> bool:
    """Word-length rules assume alphabetic words: Han, kana and Thai tokens are characters or phrases, and Hangul
    words are a few syllable blocks."""
    return doc.lang not in cfg.unsegmented_languages and doc.lang not in cfg.syllable_block_languages


def _word_ngrams_apply(doc: Document, cfg: FilterConfig) -> bool:
    return cfg.ngram_rules_for_unsegmented or doc.lang not in cfg.unsegmented_languages


def below(signal: str, threshold: str) -> tuple[Predicate, Detail]:
    """Fires when the signal is under the config threshold, e.g. n_words < min_words."""

    def fires(doc: Document, cfg: FilterConfig) -> bool:
        value = _signal(doc, signal)
        return value is not None and value < getattr(cfg, threshold)

    def detail(doc: Document, cfg: FilterConfig) -> str:
        return f"{signal}={_format(_signal(doc, signal))} < {threshold}={getattr(cfg, threshold)}"

    return fires, detail


def above(signal: str, threshold: str) -> tuple[Predicate, Detail]:
    """Fires when the signal is over the config threshold, e.g. dup_line_frac > max_dup_line_frac."""

    def fires(doc: Document, cfg: FilterConfig) -> bool:
        value = _signal(doc, signal)
        return value is not None and value > getattr(cfg, threshold)

    def detail(doc: Document, cfg: FilterConfig) -> str:
        return f"{signal}={_format(_signal(doc, signal))} > {threshold}={getattr(cfg, threshold)}"

    return fires, detail


def _format(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _first_ngram_over(doc: Document, thresholds: dict[int, float], template: str) -> str | None:
    """Name and values of the first n whose n-gram signal exceeds its threshold, else None."""
    for n, limit in sorted(thresholds.items()):
        value = _signal(doc, template.format(n=n))
        if value is not None and value > limit:
            return f"{template.format(n=n)}={_format(value)} > {limit}"
    return None


def ngram_rule(thresholds_field: str, template: str) -> tuple[Predicate, Detail]:
    """One rule over a family of n-gram signals with per-n thresholds (a dict in the config); by default not for
    unsegmented languages, whose n-grams are of characters."""

    def fires(doc: Document, cfg: FilterConfig) -> bool:
        thresholds = getattr(cfg, thresholds_field)
        return _word_ngrams_apply(doc, cfg) and _first_ngram_over(doc, thresholds, template) is not None

    def detail(doc: Document, cfg: FilterConfig) -> str:
        return _first_ngram_over(doc, getattr(cfg, thresholds_field), template) or ""

    return fires, detail


def _mean_word_len_out_of_range(doc: Document, cfg: FilterConfig) -> bool:
    value = _signal(doc, "mean_word_len")
    return value is not None and not cfg.min_mean_word_len <= value <= cfg.max_mean_word_len


RULES: list[tuple[str, Predicate, Detail]] = [
    (
        "language_not_allowed",
        lambda doc, cfg: bool(cfg.languages) and doc.lang not in cfg.languages,
        lambda doc, cfg: f"lang={doc.lang!r} not in languages={cfg.languages}",
    ),
    (
        "low_lang_score",
        lambda doc, cfg: doc.lang_score < cfg.min_lang_score,
        lambda doc, cfg: f"lang_score={doc.lang_score:.4g} < min_lang_score={cfg.min_lang_score}",
    ),
    ("gopher_min_words", *below("n_words", "min_words")),
    ("gopher_max_words", *above("n_words", "max_words")),
    (
        "gopher_mean_word_len",
        lambda doc, cfg: _word_lengths_apply(doc, cfg) and _mean_word_len_out_of_range(doc, cfg),
        lambda doc, cfg: f"mean_word_len={_format(_signal(doc, 'mean_word_len'))} not in "
        f"[{cfg.min_mean_word_len}, {cfg.max_mean_word_len}]",
    ),
    ("gopher_symbol_ratio", *above("symbol_ratio", "max_symbol_ratio")),
    ("gopher_bullet_lines", *above("bullet_line_frac", "max_bullet_line_frac")),
    ("gopher_ellipsis_lines", *above("ellipsis_line_frac", "max_ellipsis_line_frac")),
    ("gopher_alpha_words", *below("alpha_word_frac", "min_alpha_word_frac")),
    ("gopher_stopwords", *below("n_stopwords", "min_stopwords")),
    ("gopher_dup_lines", *above("dup_line_frac", "max_dup_line_frac")),
    ("gopher_dup_paras", *above("dup_para_frac", "max_dup_para_frac")),
    ("gopher_dup_line_chars", *above("dup_line_char_frac", "max_dup_line_char_frac")),
    ("gopher_dup_para_chars", *above("dup_para_char_frac", "max_dup_para_char_frac")),
    ("gopher_top_ngram", *ngram_rule("max_top_ngram_char_frac", "top_{n}gram_char_frac")),
    ("gopher_dup_ngram", *ngram_rule("max_dup_ngram_char_frac", "dup_{n}gram_char_frac")),
]
REASONS = [reason for reason, _, _ in RULES]


def check(doc: Document, cfg: FilterConfig) -> tuple[str, str] | None:
    """(reason, detail) of the first rule that fires, or None to keep the document (always None when disabled)."""
    if not cfg.enabled:
        return None
    for reason, fires, detail in RULES:
        if fires(doc, cfg):
            return reason, detail(doc, cfg)
    return None
