"""Personal data in extracted text: e-mail addresses, IP addresses and phone numbers, found by regular expressions
and replaced by placeholders.

Each kind is found in one scan of the text with patterns compiled once (e-mail: from each '@'), and no scan runs
where the text cannot hold the kind (no digit, no '@', no ':'). Matches are then checked where a pattern alone
would over-match:

- e-mail: local part (at most 64 characters), '@', dotted domain ending in a letters-only top-level domain.
- IPv4: four dotted numbers 0-255 without leading zeros, not inside a longer dotted number, not four single
  digits, not a package version ("novas-3.1.1.3", "==3.1.1.3"), not after a word that makes it a version or
  section number ("version 1.2.3.4", "v 1.2.3.4", "§ 1.2.3.4") and not a heading number ("4.8.3.1. Keyword").
- IPv6: candidates of hex groups and colons, validated by `ipaddress`, with at least two non-empty groups and a
  digit (so C++'s "::" and Rust's "a::b" paths stay).
- phone: international ("+" country code, 8-15 digits), national with a trunk 0 and at least one separator
  (9-12 digits: "020 7946 0958", "(030) 1234567", "089/123456"), North American ("(555) 123-4567",
  "555-123-4567"). Dates (2024-01-15, 01.02.2024), times, version numbers, ISBNs (978-3-16-148410-0) and plain
  digit runs do not match: none has a "+", a trunk 0 with 9+ digits or the 3-3-4 shape. Nor does a number inside
  a space-separated list of numbers ("8 13 21 34 55 89 144 233 377 610 987 1597", table columns).

Overlaps go to the kind found first (e-mail, then IP, then phone).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

PII_KINDS = ("email", "ip", "phone")
DEFAULT_PLACEHOLDERS = {"email": "<EMAIL>", "ip": "<IP>", "phone": "<PHONE>"}

# Scanning starts at each '@': the domain forwards by regex, the local part backwards (at most 64 characters, RFC 5321).
_EMAIL_DOMAIN = re.compile(r"@(?:[\w-]+\.)+[^\W\d_]{2,}(?![\w-])")
# the whole run of local-part characters before the '@' (the lookbehind sees past the search window)
_EMAIL_LOCAL_PART = re.compile(r"(?<![\w.%+-])[\w.%+-]{1,64}\Z")
_EMAIL_LOCAL_MAX = 64

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# Patterns open with a lookahead for their first character: re then skips ahead to candidate positions in C, about
# twice as fast as trying the lookbehinds everywhere.
# not inside a longer dotted number, nor a package version ("novas-3.1.1.3", "novas==3.1.1.3")
_IPV4 = re.compile(rf"(?=\d)(?<![\w.])(?<!\w-)(?<!==){_OCTET}(?:\.{_OCTET}){{3}}(?![\w]|\.\d)")
# Words after which a dotted number is a version, release or section number, not an address.
_NUMBERING_WORDS = (
    "v", "version", "versions", "ver", "release", "rel", "build", "section", "sect", "chapter", "ch", "step", "§",
)  # fmt: skip
_CONTEXT_CHARS = 16
# hex groups and colons, with an IPv4 tail for the mapped forms ("::ffff:192.0.2.1")
_IPV6_CANDIDATE = re.compile(
    r"(?=[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:)(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.\d{1,3}){0,3}"
    r"(?![\w:]|\.\d)"
)

_PHONE = re.compile(
    r"""
    (?=[+(\d])
    (?<![\w+]) (?<!\d[.,/:-]) (?<!\d\ )                   # not inside a word, a longer number or a number list
    (?:
        (?P<international> \+[1-9]\d{0,2} (?:[ .-]?(?:\(\d{1,4}\)|\d{1,8}+)){1,6}+ )
      | (?P<national> (?:\(0\d{1,4}\)\ ?|0\d{1,4}[ /.-]) \d{2,8} (?:[ .-]\d{2,8}){0,3} )
      | (?P<north_american> (?:1[ .-])? (?:\([2-9]\d{2}\)\ ?|[2-9]\d{2}[ .-]) \d{3}[ .-]\d{4} )
    )
    (?![\w+]|[.,/:-]\d|\ \d)                               # nor followed by more of one
    """,
    re.VERBOSE,
)
_PHONE_DIGITS = {"international": (8, 15), "national": (9, 12), "north_american": (10, 11)}
_DIGIT = re.compile(r"\d")


@dataclass(frozen=True)
class PiiMatch:
    start: int
    end: int
    kind: str


def _emails(text: str) -> list[PiiMatch]:
    found = []
    at = text.find("@")
    while at != -1:
        domain = _EMAIL_DOMAIN.match(text, at)
        local = domain and _EMAIL_LOCAL_PART.search(text, max(0, at - _EMAIL_LOCAL_MAX), at)
        if local:
            found.append(PiiMatch(local.start(), domain.end(), "email"))
        at = text.find("@", domain.end() if domain else at + 1)
    return found


def _is_numbering(text: str, start: int, end: int) -> bool:
    """A dotted quad that numbers a version or section: four single digits ("novas (3.1.1.3)"; the addresses that
    look so, 1.1.1.1 or 8.8.4.4, are public resolvers, not anyone's data), after "version", "§"..., or heading a line
    as "4.8.3.1."."""
    if end - start == 7:
        return True
    window = text[max(0, start - _CONTEXT_CHARS) : start]
    if text.startswith(".", end) and not window.rsplit("\n", 1)[-1].strip():
        return True
    before = window.rstrip(" \t\xa0:.#").lower()
    return any(before.endswith(word) and not before[: -len(word)][-1:].isalpha() for word in _NUMBERING_WORDS)


def _is_ipv6(candidate: str) -> bool:
    groups = [g for g in candidate.split(":") if g]
    if len(groups) < 2 or not _DIGIT.search(candidate):
        return False
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return False
    return True


def _ips(text: str) -> list[PiiMatch]:
    found = []
    if "." in text:
        for m in _IPV4.finditer(text):
            if not _is_numbering(text, m.start(), m.end()):
                found.append(PiiMatch(m.start(), m.end(), "ip"))
    if ":" in text:
        found.extend(PiiMatch(m.start(), m.end(), "ip") for m in _IPV6_CANDIDATE.finditer(text) if _is_ipv6(m.group()))
    return found


def _phones(text: str) -> list[PiiMatch]:
    found = []
    for m in _PHONE.finditer(text):
        low, high = _PHONE_DIGITS[m.lastgroup]
        if low <= sum(c.isdigit() for c in m.group()) <= high:
            found.append(PiiMatch(m.start(), m.end(), "phone"))
    return found


_FINDERS = {"email": _emails, "ip": _ips, "phone": _phones}


def _without_overlaps(candidates: list[PiiMatch], kept: list[PiiMatch]) -> list[PiiMatch]:
    """The candidates (of one kind, in any order) that overlap neither `kept` (sorted, disjoint) nor an earlier
    candidate; one sweep over both lists."""
    accepted: list[PiiMatch] = []
    j, last_end = 0, -1
    for candidate in sorted(candidates, key=lambda m: m.start):
        while j < len(kept) and kept[j].end <= candidate.start:
            j += 1
        if candidate.start < last_end or (j < len(kept) and kept[j].start < candidate.end):
            continue
        accepted.append(candidate)
        last_end = candidate.end
    return accepted


def find_pii(text: str, kinds=PII_KINDS) -> list[PiiMatch]:
    """Non-overlapping matches of the given kinds, in text order; a span found by an earlier kind wins."""
    if not text or (not _DIGIT.search(text) and "@" not in text):
        return []
    kept: list[PiiMatch] = []
    for kind in PII_KINDS:
        if kind in kinds:
            kept = sorted(kept + _without_overlaps(_FINDERS[kind](text), kept), key=lambda m: m.start)
    return kept


@dataclass
class Redaction:
    text: str
    counts: dict[str, int]  # kind -> matches replaced
    spans: list[tuple[int, int]]  # (start, end) of each placeholder in the new text


def redact(text: str, placeholders: dict[str, str] = DEFAULT_PLACEHOLDERS, kinds=PII_KINDS) -> Redaction:
    """The text with each match replaced by its kind's placeholder, how many per kind, and where they now are."""
    counts = dict.fromkeys(kinds, 0)
    matches = find_pii(text, kinds)
    if not matches:
        return Redaction(text, counts, [])
    pieces: list[str] = []
    spans: list[tuple[int, int]] = []
    position = length = 0
    for match in matches:
        pieces.append(text[position : match.start])
        length += match.start - position
        placeholder = placeholders[match.kind]
        pieces.append(placeholder)
        spans.append((length, length + len(placeholder)))
        length += len(placeholder)
        position = match.end
        counts[match.kind] += 1
    pieces.append(text[position:])
    return Redaction("".join(pieces), counts, spans)
