"""Filter rules: each fires with its own reason on a crafted document; None signals and exempt languages never do."""

from __future__ import annotations

import pytest

from corpus.config import FilterConfig
from corpus.document import SIGNAL_NAMES, Document
from corpus.filters import REASONS, check

# Signals of an ordinary English page: every default rule passes.
GOOD_SIGNALS = {
    "n_chars": 6000,
    "n_words": 1000,
    "n_lines": 40,
    "mean_word_len": 4.8,
    "symbol_ratio": 0.0,
    "bullet_line_frac": 0.1,
    "ellipsis_line_frac": 0.0,
    "alpha_word_frac": 0.95,
    "n_stopwords": 400,
    "stopword_frac": 0.4,
    "dup_line_frac": 0.0,
    "dup_para_frac": 0.0,
    "dup_line_char_frac": 0.0,
    "dup_para_char_frac": 0.0,
    "top_2gram_char_frac": 0.02,
    "top_3gram_char_frac": 0.01,
    "top_4gram_char_frac": 0.01,
    **{f"dup_{n}gram_char_frac": 0.0 for n in range(5, 11)},
}


def make_doc(lang: str = "en", lang_score: float = 0.99, **signals) -> Document:
    assert set(signals) <= set(SIGNAL_NAMES)
    signals = {**GOOD_SIGNALS, **signals}
    return Document(id="d", source="test", offset=0, lang=lang, lang_score=lang_score, signals=signals)


def test_good_signals_are_complete_and_kept():
    assert set(GOOD_SIGNALS) == set(SIGNAL_NAMES)
    assert check(make_doc(), FilterConfig()) is None


FIRING = [
    ("language_not_allowed", make_doc(lang="de"), {"languages": ["en"]}, "lang='de' not in languages=['en']"),
    ("low_lang_score", make_doc(lang_score=0.3), {"min_lang_score": 0.5}, "lang_score=0.3 < min_lang_score=0.5"),
    ("gopher_min_words", make_doc(n_words=12), {}, "n_words=12 < min_words=50"),
    ("gopher_max_words", make_doc(n_words=200_000), {}, "n_words=200000 > max_words=100000"),
    ("gopher_mean_word_len", make_doc(mean_word_len=2.5), {}, "mean_word_len=2.5 not in [3.0, 10.0]"),
    ("gopher_mean_word_len", make_doc(mean_word_len=12.0), {}, "mean_word_len=12 not in [3.0, 10.0]"),
    ("gopher_symbol_ratio", make_doc(symbol_ratio=0.25), {}, "symbol_ratio=0.25 > max_symbol_ratio=0.1"),
    ("gopher_bullet_lines", make_doc(bullet_line_frac=0.95), {}, "bullet_line_frac=0.95 > max_bullet_line_frac=0.9"),
    ("gopher_ellipsis_lines", make_doc(ellipsis_line_frac=0.5), {}, "ellipsis_line_frac=0.5 > max_ellipsis_line_frac=0.3"),
    ("gopher_alpha_words", make_doc(alpha_word_frac=0.5), {}, "alpha_word_frac=0.5 < min_alpha_word_frac=0.8"),
    ("gopher_stopwords", make_doc(n_stopwords=1), {}, "n_stopwords=1 < min_stopwords=2"),
    ("gopher_dup_lines", make_doc(dup_line_frac=0.5), {}, "dup_line_frac=0.5 > max_dup_line_frac=0.3"),
    ("gopher_dup_paras", make_doc(dup_para_frac=0.5), {}, "dup_para_frac=0.5 > max_dup_para_frac=0.3"),
    ("gopher_dup_line_chars", make_doc(dup_line_char_frac=0.25), {}, "dup_line_char_frac=0.25 > max_dup_line_char_frac=0.2"),
    ("gopher_dup_para_chars", make_doc(dup_para_char_frac=0.25), {}, "dup_para_char_frac=0.25 > max_dup_para_char_frac=0.2"),
    ("gopher_top_ngram", make_doc(top_3gram_char_frac=0.19), {}, "top_3gram_char_frac=0.19 > 0.18"),
    ("gopher_dup_ngram", make_doc(dup_10gram_char_frac=0.11), {}, "dup_10gram_char_frac=0.11 > 0.1"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("reason", "doc", "overrides", "detail"), FIRING, ids=[f"{r}-{i}" for i, (r, *_) in enumerate(FIRING)]
)
def test_each_rule_fires_with_its_reason_and_detail(reason, doc, overrides, detail):
    assert check(doc, FilterConfig(**overrides)) == (reason, detail)


def test_every_rule_has_a_firing_case():
    assert {reason for reason, *_ in FIRING} == set(REASONS)


def test_the_first_rule_in_table_order_names_the_reason():
    doc = make_doc(n_words=12, dup_line_frac=0.9, alpha_word_frac=0.1)
    assert check(doc, FilterConfig())[0] == "gopher_min_words"


def test_the_lowest_n_over_its_threshold_is_reported():
    doc = make_doc(dup_5gram_char_frac=0.5, dup_9gram_char_frac=0.5)
    assert check(doc, FilterConfig()) == ("gopher_dup_ngram", "dup_5gram_char_frac=0.5 > 0.15")


def test_disabled_filter_keeps_everything():
    assert check(make_doc(n_words=0), FilterConfig(enabled=False)) is None


def test_none_signals_never_fire():
    doc = make_doc(n_stopwords=None, stopword_frac=None, mean_word_len=None, symbol_ratio=None)
    assert check(doc, FilterConfig()) is None


@pytest.mark.parametrize("lang", ["zh", "ja", "th"])
def test_word_length_and_ngram_rules_skip_unsegmented_languages(lang):
    doc = make_doc(lang=lang, mean_word_len=1.0, dup_5gram_char_frac=0.6, top_2gram_char_frac=0.5)
    assert check(doc, FilterConfig()) is None
    assert check(doc, FilterConfig(ngram_rules_for_unsegmented=True))[0] == "gopher_top_ngram"
    assert check(make_doc(lang=lang, mean_word_len=1.0, dup_line_frac=0.9), FilterConfig())[0] == "gopher_dup_lines"


def test_korean_is_exempt_from_mean_word_length_only():
    assert check(make_doc(lang="ko", mean_word_len=2.8), FilterConfig()) is None
    assert check(make_doc(lang="ko", dup_5gram_char_frac=0.6), FilterConfig())[0] == "gopher_dup_ngram"


def test_thresholds_are_read_from_the_config():
    doc = make_doc(n_words=40)
    assert check(doc, FilterConfig(min_words=30)) is None
    assert check(make_doc(top_2gram_char_frac=0.3), FilterConfig(max_top_ngram_char_frac={2: 0.5})) is None
