"""Declarative keep/drop rules over the annotations (language, lang_score, signals, URL); nothing is recomputed here.

`RULES` is a table of rules (reason, family, fires, detail), checked in order; the first rule that fires names the
reason a document is dropped. Adding a rule is one line. Thresholds live in `FilterConfig`, which also switches each
family (gopher_quality, gopher_repetition, c4, fineweb) on or off; a signal that is None (a language without a
stop-word list, a document without words) never fires a rule.

The URL blocklist is a user's file (`FilterConfig.url_blocklist`), parsed once per process and path (and again when
the file changes): domains match themselves and their subdomains, `word:` entries match whole words of the URL's host
and path.
"""

from __future__ import annotations

import os
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

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


def as_stored(value: float | int) -> float | int:
    """A value at the precision signals are stored with (float32), so that a fraction of exactly 0.3 compares equal
    to a threshold of 0.3 instead of sitting above it by float32 rounding."""
    return float(struct.unpack("f", struct.pack("f", value))[0]) if isinstance(value, float) else value


def below(signal: str, threshold: str, *, inclusive: bool = False) -> tuple[Predicate, Detail]:
    """Fires when the signal is under the config threshold, e.g. n_words < min_words (or at it, `inclusive`,
    where the published rule drops at the threshold too)."""
    sign = "<=" if inclusive else "<"

    def fires(doc: Document, cfg: FilterConfig) -> bool:
        value = _signal(doc, signal)
        if value is None:
            return False
        value, limit = as_stored(value), as_stored(getattr(cfg, threshold))
        return value <= limit if inclusive else value < limit

    def detail(doc: Document, cfg: FilterConfig) -> str:
        return f"{signal}={_format(_signal(doc, signal))} {sign} {threshold}={getattr(cfg, threshold)}"

    return fires, detail


def above(signal: str, threshold: str, *, inclusive: bool = False) -> tuple[Predicate, Detail]:
    """Fires when the signal is over the config threshold, e.g. dup_line_frac > max_dup_line_frac (or at it,
    `inclusive`)."""
    sign = ">=" if inclusive else ">"

    def fires(doc: Document, cfg: FilterConfig) -> bool:
        value = _signal(doc, signal)
        if value is None:
            return False
        value, limit = as_stored(value), as_stored(getattr(cfg, threshold))
        return value >= limit if inclusive else value > limit

    def detail(doc: Document, cfg: FilterConfig) -> str:
        return f"{signal}={_format(_signal(doc, signal))} {sign} {threshold}={getattr(cfg, threshold)}"

    return fires, detail


def _format(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _first_ngram_over(doc: Document, thresholds: dict[int, float], template: str) -> str | None:
    """Name and values of the first n whose n-gram signal exceeds its threshold, else None."""
    for n, limit in sorted(thresholds.items()):
        value = _signal(doc, template.format(n=n))
        if value is not None and as_stored(value) > as_stored(float(limit)):
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


def flag(signal: str, switch: str) -> tuple[Predicate, Detail]:
    """Fires when a boolean signal is set and its config switch is on, e.g. c4_curly_brace with c4_drop_curly_brace."""

    def fires(doc: Document, cfg: FilterConfig) -> bool:
        return getattr(cfg, switch) and _signal(doc, signal) is True

    return fires, lambda doc, cfg: f"{signal}=True"


def only_for(applies: Predicate, rule: tuple[Predicate, Detail]) -> tuple[Predicate, Detail]:
    """The rule, checked only for documents where `applies` holds."""
    fires, detail = rule
    return (lambda doc, cfg: applies(doc, cfg) and fires(doc, cfg)), detail


def _has_sentence_marks(doc: Document, cfg: FilterConfig) -> bool:
    return doc.lang not in cfg.no_sentence_mark_languages


def _words_are_words(doc: Document, cfg: FilterConfig) -> bool:
    """Per-word ratios assume words: Han/kana characters and Thai phrases are not."""
    return doc.lang not in cfg.unsegmented_languages


# --- URL blocklist -----------------------------------------------------------------------------------------------

_URL_WORD = re.compile(r"[^\W_]+")
_DOMAIN = re.compile(r"^[\w-]+(?:\.[\w-]+)*$")  # one label blocks a top-level domain
_ADDRESS = re.compile(r"^(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f:]+)$", re.IGNORECASE)


@dataclass(frozen=True)
class UrlBlocklist:
    domains: dict[str, str]  # normalized domain -> entry as written
    words: dict[str, str]  # single word -> entry
    phrases: dict[str, str]  # " several words " -> entry

    def match(self, url: str) -> str | None:
        """The entry that blocks `url`, or None."""
        try:
            parts = urlsplit(url if "//" in url else f"//{url}")
            host = _normalize_domain(parts.hostname or "")
        except ValueError:  # e.g. a malformed IPv6 host
            return None
        labels = host.split(".")
        for i in range(len(labels)):
            entry = self.domains.get(".".join(labels[i:]))
            if entry is not None:
                return entry
        if self.words or self.phrases:
            words = _URL_WORD.findall(f"{host} {parts.path}".lower())
            for word in words:
                if word in self.words:
                    return self.words[word]
            joined = f" {' '.join(words)} "
            for phrase, entry in self.phrases.items():
                if phrase in joined:
                    return entry
        return None


def _normalize_domain(domain: str) -> str:
    """Lowercase ASCII form: internationalized names in punycode, as URLs may carry either."""
    domain = domain.lower().rstrip(".")
    try:
        return domain.encode("idna").decode("ascii") if not domain.isascii() else domain
    except UnicodeError:
        return domain


def parse_blocklist(lines, source: str = "<blocklist>") -> UrlBlocklist:
    """Entries of a blocklist file's lines; a line that is no entry raises ValueError naming its number."""
    domains, words, phrases = {}, {}, {}
    for number, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.lower().startswith("word:"):
            tokens = _URL_WORD.findall(line[5:].lower())
            if not tokens:
                raise ValueError(f"{source}:{number}: 'word:' needs a word, got {raw.strip()!r}")
            if len(tokens) == 1:
                words[tokens[0]] = line
            else:
                phrases[f" {' '.join(tokens)} "] = line
            continue
        fields = line.split()
        if len(fields) == 2 and _ADDRESS.match(fields[0]):  # hosts-file line: "0.0.0.0 example.com"
            fields = fields[1:]
        domain = fields[0].removeprefix("*.").lstrip(".")
        if len(fields) != 1 or not _DOMAIN.match(domain):
            raise ValueError(
                f"{source}:{number}: expected a domain ('example.com') or 'word:xxx', got {raw.strip()!r}"
            )
        domains[_normalize_domain(domain)] = line
    return UrlBlocklist(domains, words, phrases)


@lru_cache(maxsize=4)
def _load_blocklist(path: str, mtime_ns: int, size: int) -> UrlBlocklist:
    with open(path, encoding="utf-8", errors="replace") as lines:
        return parse_blocklist(lines, path)


def load_blocklist(path: str) -> UrlBlocklist:
    """The parsed blocklist file, cached per process by path, modification time and size."""
    stat = os.stat(path)
    return _load_blocklist(os.path.abspath(path), stat.st_mtime_ns, stat.st_size)


def _blocked_by(doc: Document, cfg: FilterConfig) -> str | None:
    return load_blocklist(cfg.url_blocklist).match(doc.url) if cfg.url_blocklist and doc.url else None


# --- the rule table ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    reason: str
    family: str | None  # the FilterConfig switch of its family; None: always checked
    fires: Predicate
    detail: Detail


RULES: list[Rule] = [
    Rule(
        "language_not_allowed",
        None,
        lambda doc, cfg: bool(cfg.languages) and doc.lang not in cfg.languages,
        lambda doc, cfg: f"lang={doc.lang!r} not in languages={cfg.languages}",
    ),
    Rule(
        "low_lang_score",
        None,
        lambda doc, cfg: doc.lang_score < cfg.min_lang_score,
        lambda doc, cfg: f"lang_score={doc.lang_score:.4g} < min_lang_score={cfg.min_lang_score}",
    ),
    Rule("url_blocklist", None, lambda doc, cfg: _blocked_by(doc, cfg) is not None, _blocked_by),
    Rule("gopher_min_words", "gopher_quality", *below("n_words", "min_words")),
    Rule("gopher_max_words", "gopher_quality", *above("n_words", "max_words")),
    Rule(
        "gopher_mean_word_len",
        "gopher_quality",
        lambda doc, cfg: _word_lengths_apply(doc, cfg) and _mean_word_len_out_of_range(doc, cfg),
        lambda doc, cfg: f"mean_word_len={_format(_signal(doc, 'mean_word_len'))} not in "
        f"[{cfg.min_mean_word_len}, {cfg.max_mean_word_len}]",
    ),
    Rule("gopher_symbol_ratio", "gopher_quality", *above("symbol_ratio", "max_symbol_ratio")),
    Rule("gopher_bullet_lines", "gopher_quality", *above("bullet_line_frac", "max_bullet_line_frac")),
    Rule("gopher_ellipsis_lines", "gopher_quality", *above("ellipsis_line_frac", "max_ellipsis_line_frac")),
    Rule("gopher_alpha_words", "gopher_quality", *below("alpha_word_frac", "min_alpha_word_frac")),
    Rule("gopher_stopwords", "gopher_quality", *below("n_stopwords", "min_stopwords")),
    Rule("gopher_dup_lines", "gopher_repetition", *above("dup_line_frac", "max_dup_line_frac")),
    Rule("gopher_dup_paras", "gopher_repetition", *above("dup_para_frac", "max_dup_para_frac")),
    Rule("gopher_dup_line_chars", "gopher_repetition", *above("dup_line_char_frac", "max_dup_line_char_frac")),
    Rule("gopher_dup_para_chars", "gopher_repetition", *above("dup_para_char_frac", "max_dup_para_char_frac")),
    Rule("gopher_top_ngram", "gopher_repetition", *ngram_rule("max_top_ngram_char_frac", "top_{n}gram_char_frac")),
    Rule("gopher_dup_ngram", "gopher_repetition", *ngram_rule("max_dup_ngram_char_frac", "dup_{n}gram_char_frac")),
    Rule("c4_lorem_ipsum", "c4", *flag("c4_lorem_ipsum", "c4_drop_lorem_ipsum")),
    Rule("c4_curly_brace", "c4", *flag("c4_curly_brace", "c4_drop_curly_brace")),
    Rule("c4_javascript_lines", "c4", *above("c4_javascript_line_frac", "max_c4_javascript_line_frac")),
    Rule("c4_policy_lines", "c4", *above("c4_policy_line_frac", "max_c4_policy_line_frac")),
    Rule(
        "fineweb_line_punct",
        "fineweb",
        *only_for(_has_sentence_marks, below("fineweb_line_punct_frac", "min_fineweb_line_punct_frac", inclusive=True)),
    ),
    Rule("fineweb_short_lines", "fineweb", *above("fineweb_short_line_frac", "max_fineweb_short_line_frac", inclusive=True)),
    Rule("fineweb_char_dup", "fineweb", *above("fineweb_char_dup_frac", "max_fineweb_char_dup_frac", inclusive=True)),
    Rule(
        "fineweb_newline_ratio",
        "fineweb",
        *only_for(_words_are_words, above("fineweb_newline_ratio", "max_fineweb_newline_ratio")),
    ),
]
REASONS = [rule.reason for rule in RULES]


def check(doc: Document, cfg: FilterConfig) -> tuple[str, str] | None:
    """(reason, detail) of the first rule that fires, or None to keep the document (always None when disabled)."""
    if not cfg.enabled:
        return None
    for rule in RULES:
        if (rule.family is None or getattr(cfg, rule.family)) and rule.fires(doc, cfg):
            return rule.reason, rule.detail(doc, cfg)
    return None
