"""Filter rules: each fires with its own reason on a crafted document; None signals and exempt languages never do."""

from __future__ import annotations

import os

import pytest

from corpus.config import FilterConfig
from corpus.document import SIGNAL_NAMES, Document
from corpus.filters import REASONS, RULES, check, load_blocklist, parse_blocklist

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
    "c4_terminal_punct_line_frac": 0.7,
    "c4_few_words_line_frac": 0.1,
    "c4_javascript_line_frac": 0.0,
    "c4_policy_line_frac": 0.0,
    "c4_lorem_ipsum": False,
    "c4_curly_brace": False,
    "fineweb_line_punct_frac": 0.7,
    "fineweb_short_line_frac": 0.2,
    "fineweb_char_dup_frac": 0.0,
    "fineweb_newline_ratio": 0.04,
    "pii_emails": 0,
    "pii_ips": 0,
    "pii_phones": 0,
}


def make_doc(lang: str = "en", lang_score: float = 0.99, url: str = "https://example.org/a", **signals) -> Document:
    assert set(signals) <= set(SIGNAL_NAMES)
    signals = {**GOOD_SIGNALS, **signals}
    return Document(id="d", source="test", offset=0, url=url, lang=lang, lang_score=lang_score, signals=signals)


@pytest.fixture
def blocklist(tmp_path):
    path = tmp_path / "blocklist.txt"
    path.write_text(
        "# domains block themselves and their subdomains\n"
        "casino.example\n"
        "*.ads.example.net   # wildcard form\n"
        "0.0.0.0 tracker.example.org\n"
        "\n"
        "word:poker\n"
        "word:Free Money\n"
    )
    return str(path)


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
    ("c4_lorem_ipsum", make_doc(c4_lorem_ipsum=True), {}, "c4_lorem_ipsum=True"),
    ("c4_curly_brace", make_doc(c4_curly_brace=True), {"c4_drop_curly_brace": True}, "c4_curly_brace=True"),
    ("c4_javascript_lines", make_doc(c4_javascript_line_frac=0.5), {}, "c4_javascript_line_frac=0.5 > max_c4_javascript_line_frac=0.3"),
    ("c4_policy_lines", make_doc(c4_policy_line_frac=0.4), {}, "c4_policy_line_frac=0.4 > max_c4_policy_line_frac=0.3"),
    ("fineweb_line_punct", make_doc(fineweb_line_punct_frac=0.1), {}, "fineweb_line_punct_frac=0.1 <= min_fineweb_line_punct_frac=0.12"),
    ("fineweb_short_lines", make_doc(fineweb_short_line_frac=0.7), {}, "fineweb_short_line_frac=0.7 >= max_fineweb_short_line_frac=0.67"),
    ("fineweb_char_dup", make_doc(fineweb_char_dup_frac=0.02), {}, "fineweb_char_dup_frac=0.02 >= max_fineweb_char_dup_frac=0.01"),
    ("fineweb_newline_ratio", make_doc(fineweb_newline_ratio=0.5), {}, "fineweb_newline_ratio=0.5 > max_fineweb_newline_ratio=0.3"),
    ("url_blocklist", make_doc(url="https://www.casino.example/x"), {"url_blocklist": "BLOCKLIST"}, "casino.example"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("reason", "doc", "overrides", "detail"), FIRING, ids=[f"{r}-{i}" for i, (r, *_) in enumerate(FIRING)]
)
def test_each_rule_fires_with_its_reason_and_detail(reason, doc, overrides, detail, blocklist):
    overrides = {k: blocklist if v == "BLOCKLIST" else v for k, v in overrides.items()}
    assert check(doc, FilterConfig(**overrides)) == (reason, detail)


def test_every_rule_has_a_firing_case():
    assert {reason for reason, *_ in FIRING} == set(REASONS)


def test_the_first_rule_in_table_order_names_the_reason():
    doc = make_doc(n_words=12, dup_line_frac=0.9, alpha_word_frac=0.1)
    assert check(doc, FilterConfig())[0] == "gopher_min_words"


def test_values_exactly_at_a_threshold_follow_the_published_rule_despite_float32_storage():
    import numpy as np

    stored = lambda x: float(np.float32(x))  # noqa: E731  signals come back from Arrow as float32
    assert check(make_doc(dup_line_frac=stored(0.3)), FilterConfig()) is None  # Gopher drops above 0.3 only
    assert check(make_doc(fineweb_char_dup_frac=stored(0.01)), FilterConfig())[0] == "fineweb_char_dup"  # datatrove: >=
    assert check(make_doc(fineweb_line_punct_frac=stored(0.12)), FilterConfig())[0] == "fineweb_line_punct"  # <=


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


def test_c4_curly_brace_is_off_by_default_and_lorem_ipsum_can_be_switched_off():
    assert check(make_doc(c4_curly_brace=True), FilterConfig()) is None
    assert check(make_doc(c4_lorem_ipsum=True), FilterConfig(c4_drop_lorem_ipsum=False)) is None


@pytest.mark.parametrize("family", ["gopher_quality", "gopher_repetition", "c4", "fineweb"])
def test_each_family_switches_off_all_its_rules(family):
    for rule in RULES:
        if rule.family != family:
            continue
        case = next(doc for reason, doc, _, _ in FIRING if reason == rule.reason)
        overrides = {"c4_drop_curly_brace": True}
        assert check(case, FilterConfig(**overrides))[0] == rule.reason
        assert check(case, FilterConfig(**overrides, **{family: False})) is None, rule.reason


def test_every_rule_but_language_and_url_belongs_to_a_family():
    assert {rule.family for rule in RULES} == {None, "gopher_quality", "gopher_repetition", "c4", "fineweb"}
    assert [rule.reason for rule in RULES if rule.family is None] == [
        "language_not_allowed", "low_lang_score", "url_blocklist",
    ]  # fmt: skip


@pytest.mark.parametrize("lang", ["zh", "ja", "th"])
def test_newline_ratio_is_not_applied_where_tokens_are_not_words(lang):
    assert check(make_doc(lang=lang, fineweb_newline_ratio=0.9), FilterConfig()) is None
    assert check(make_doc(lang="ko", fineweb_newline_ratio=0.9), FilterConfig())[0] == "fineweb_newline_ratio"


def test_line_punctuation_is_not_required_of_scripts_without_sentence_marks():
    assert check(make_doc(lang="th", fineweb_line_punct_frac=0.0), FilterConfig()) is None
    assert check(make_doc(lang="zh", fineweb_line_punct_frac=0.0), FilterConfig())[0] == "fineweb_line_punct"


# --- URL blocklist ---------------------------------------------------------------------------------------------

BLOCKED = [
    ("https://casino.example/", "casino.example"),
    ("http://WWW.Casino.Example:8080/page?q=1", "casino.example"),
    ("https://a.b.ads.example.net/x", "*.ads.example.net"),
    ("https://ads.example.net/", "*.ads.example.net"),
    ("http://tracker.example.org/pixel.gif", "0.0.0.0 tracker.example.org"),
    ("https://games.example.com/online-poker/rules", "word:poker"),
    ("https://poker.example.com/", "word:poker"),
    ("https://example.com/get/free-money-now", "word:Free Money"),
]
NOT_BLOCKED = [
    "https://notcasino.example/",  # a longer name, not a subdomain
    "https://casino.example.org/",  # the domain as a label elsewhere
    "https://example.com/pokerface",  # a word inside a longer word
    "https://example.com/money/free",  # the two words, not in order
    "https://example.com/?q=poker",  # the query is not host or path
    "",
]


@pytest.mark.parametrize(("url", "entry"), BLOCKED)
def test_blocklist_matches_domains_subdomains_and_whole_words(blocklist, url, entry):
    assert load_blocklist(blocklist).match(url) == entry
    assert check(make_doc(url=url), FilterConfig(url_blocklist=blocklist)) == ("url_blocklist", entry)


@pytest.mark.parametrize("url", NOT_BLOCKED)
def test_blocklist_does_not_match_lookalikes(blocklist, url):
    assert load_blocklist(blocklist).match(url) is None
    assert check(make_doc(url=url), FilterConfig(url_blocklist=blocklist)) is None


def test_internationalized_domains_match_in_either_form():
    blocklist = parse_blocklist(["bücher.example"])
    assert blocklist.match("https://www.xn--bcher-kva.example/") == "bücher.example"
    assert blocklist.match("https://bücher.example/") == "bücher.example"


def test_blocklist_is_parsed_once_and_again_after_the_file_changes(blocklist):
    assert load_blocklist(blocklist) is load_blocklist(blocklist)
    with open(blocklist, "a") as f:
        f.write("other.example\n")
    stat = os.stat(blocklist)
    os.utime(blocklist, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert load_blocklist(blocklist).match("https://other.example/") == "other.example"


def test_a_line_that_is_no_entry_names_file_and_line():
    with pytest.raises(ValueError, match=r"list.txt:2: expected a domain"):
        parse_blocklist(["good.example", "https://bad.example/path"], "list.txt")
    with pytest.raises(ValueError, match=r"list.txt:1: 'word:' needs a word"):
        parse_blocklist(["word: --"], "list.txt")
