"""Declarative keep/drop rules over the annotations (language, lang_score, signals, URL); nothing is recomputed here.

`RULES` is the table of rules (`corpus.families.rules.Rule`: reason, family, fires, detail), checked in order; the
first rule that fires names the reason a document is dropped. The language, language-score and URL rules are this
module's own and always checked; then come the rules of every signal family in registration order (Gopher quality,
Gopher repetition, C4, FineWeb: corpus/families/, one file each with its signals, settings and rules). Thresholds
live in `FilterConfig`, which also switches each family on or off; a signal that is None (a language without a
stop-word list, a document without words) never fires a rule.

The URL blocklist is a user's file (`FilterConfig.url_blocklist`), parsed once per process and path (and again when
the file changes): domains match themselves and their subdomains, `word:` entries match whole words of the URL's host
and path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from corpus import families as signal_families
from corpus.families.gopher import ngram_rule
from corpus.families.rules import Detail, Predicate, Rule, above, as_stored, below, flag, only_for

if TYPE_CHECKING:
    from corpus.config import FilterConfig
    from corpus.document import Document

__all__ = [
    "REASONS",
    "RULES",
    "Detail",
    "Predicate",
    "Rule",
    "UrlBlocklist",
    "above",
    "as_stored",
    "below",
    "check",
    "flag",
    "load_blocklist",
    "ngram_rule",
    "only_for",
    "parse_blocklist",
]


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

# Rules of no family, checked first whatever the family switches say.
CORE_RULES: list[Rule] = [
    Rule(
        "language_not_allowed",
        lambda doc, cfg: bool(cfg.languages) and doc.lang not in cfg.languages,
        lambda doc, cfg: f"lang={doc.lang!r} not in languages={cfg.languages}",
    ),
    Rule(
        "low_lang_score",
        lambda doc, cfg: doc.lang_score < cfg.min_lang_score,
        lambda doc, cfg: f"lang_score={doc.lang_score:.4g} < min_lang_score={cfg.min_lang_score}",
    ),
    Rule("url_blocklist", lambda doc, cfg: _blocked_by(doc, cfg) is not None, _blocked_by),
]
RULES: list[Rule] = []  # CORE_RULES, then the families' rules; kept up to date in place
REASONS: list[str] = []


def _derive_rules() -> None:
    rules = [*CORE_RULES, *signal_families.rules()]
    reasons = [rule.reason for rule in rules]
    taken = sorted({reason for reason in reasons if reasons.count(reason) > 1})
    if taken:
        raise ValueError(f"rule reasons {', '.join(taken)} are taken by the filter's own rules: rename them")
    RULES[:] = rules
    REASONS[:] = reasons


_derive_rules()
signal_families.on_change(_derive_rules)


def check(doc: Document, cfg: FilterConfig) -> tuple[str, str] | None:
    """(reason, detail) of the first rule that fires, or None to keep the document (always None when disabled)."""
    if not cfg.enabled:
        return None
    for rule in RULES:
        if (rule.family is None or getattr(cfg, rule.family)) and rule.fires(doc, cfg):
            return rule.reason, rule.detail(doc, cfg)
    return None
