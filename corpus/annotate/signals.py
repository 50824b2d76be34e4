"""Quality signals of Gopher (Rae et al. 2021, appendix A1), C4 and FineWeb, computed once per document for the
filter rules.

Each signal family (corpus/families/: fields, settings and rules) computes its signals from one `SignalInput`, which
holds the document's words and splits its lines and paragraphs once for all families; `gopher_quality_signals`,
`gopher_repetition_signals`, `c4_signals` and `fineweb_signals` are the built-in families' computations.
`line_signals` and `word_signals` give the same signals grouped by what they read, for plain-text tests and benches.

Words come from the annotator's spaCy tokenization (punctuation, symbol and whitespace tokens are not words), so
counts are language-aware: Han and kana characters are words of their own. Line and paragraph signals read the text.
The n-gram signals follow the paper's definitions, which datatrove approximates:

- top n-gram (n = 2..4): characters covered by the occurrences of the most frequent word n-gram, over all word
  characters; 0 when no n-gram occurs twice (a unique n-gram is no repetition).
- duplicate n-grams (n = 5..10): characters covered by every occurrence of any n-gram that occurs more than once,
  overlapping occurrences counted once, over all word characters.

Word n-grams are compared through 64-bit rolling hashes of the words' spaCy hashes: numpy does the work, and a
collision (chance about m²/2⁶⁴ for m n-grams) can only overstate repetition by one n-gram.

C4 (Raffel et al. 2020, as tensorflow_datasets' c4_utils and datatrove's C4QualityFilter implement it) removes
lines; we keep the text as extracted, so its line rules become per-document fractions (`c4_*_line_frac`) and its
two page rules become flags computed exactly where C4 applies them: "lorem ipsum" and "{" only count in a line C4
would otherwise keep (ending in a terminal mark, not an ellipsis, after Wikipedia-style citations are cut; at least
3 words; no word over 1,000 characters; for "{", no "javascript"). FineWeb (Penedo et al. 2024, datatrove's
FineWebQualityFilter) rules are document ratios already (`fineweb_*`).

Made sensible beyond English: terminal marks include other scripts' sentence ends (。！？ ؟ ۔ । ...), words per line
come from the language's tokenizer (a Chinese line of 3 characters has 3 words), and a short line is measured in
columns with Han, kana and Hangul counting two (a 30-character Chinese line says about what 60 Latin characters do).
Made sensible for tables as trafilatura writes them ('| cell | cell |'): a row ends where its last cell's text ends,
and the rule under a header row ('|---|---|') is formatting, not a line. On the bundled sample these two kept 20
pages (Wikipedia "in the news" tables in he, pt, no...) that the line-punctuation rule dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

import numpy as np

BULLETS = ("•", "‣", "○", "●", "◦", "▪", "■", "□", "⁃", "·", "–", "-", "*")
ELLIPSES = ("...", "…")
TOP_NGRAM_SIZES = (2, 3, 4)
DUP_NGRAM_SIZES = (5, 6, 7, 8, 9, 10)
_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")
# exactly the line boundaries of str.splitlines, so token offsets map to its lines
_LINE_BREAK = re.compile(r"\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")

# Sentence ends: C4's and datatrove's ASCII marks and quotes, then other scripts' (CJK, Arabic, Urdu, Devanagari,
# Armenian, Ethiopic, Myanmar, Khmer, Tibetan, the Greek question mark) and closing quotes after them.
TERMINAL_MARKS = (
    ".", "!", "?", '"', "'",
    "。", "！", "？", "．", "｡", "」", "』", "”", "’", "»",
    "؟", "۔", "।", "॥", "։", "።", "፧", "။", "។", "៕", "།", "\u037e", "‼", "⁇", "⁈", "⁉", "‽",
)  # fmt: skip
C4_ELLIPSIS = "..."
C4_MIN_LINE_WORDS = 3
C4_MAX_WORD_CHARS = 1000
C4_POLICY_PHRASES = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")
# the rule under a table's header row, as trafilatura writes tables: formatting, not a line of text
_TABLE_RULE = re.compile(r"\|(?:\s*:?-+:?\s*\|)+$")
_C4_CITATIONS_AT_END = re.compile(r"(?:\[\d*\]|\[edit\]|\[citation needed\])+$")
FINEWEB_SHORT_LINE_COLUMNS = 30
_WIDE_CHAR = re.compile(
    r"[\u1100-\u115f\u2e80-\u303e\u3041-\u33ff\u3400-\u4dbf\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7a3"
    r"\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60\uffe0-\uffe6\U00020000-\U0003fffd]"
)


def paragraphs(text: str) -> list[str]:
    """Blocks separated by at least one blank line."""
    return [p for p in (raw.strip() for raw in _PARAGRAPH_BREAK.split(text)) if p]


def repeated_items(items: list[str]) -> tuple[int, int]:
    """How many items repeat an earlier one, and how many characters those repeats hold."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def words_per_line(text: str, word_starts: np.ndarray) -> np.ndarray:
    """Words on each line of `text.splitlines()`, from the character offsets of the document's words."""
    breaks = np.fromiter((m.end() for m in _LINE_BREAK.finditer(text)), dtype=np.int64)
    n_lines = len(breaks) + (not breaks.size or breaks[-1] < len(text))
    line_of_word = np.searchsorted(breaks, word_starts, side="right")
    return np.bincount(line_of_word, minlength=n_lines)[:n_lines]


def _line_text_end(line: str) -> str:
    """The line without the closing '|' of a table row as trafilatura writes tables ('| cell | last cell. |')."""
    return line.rstrip("| ") if line.endswith("|") else line


def _ends_sentence_for_c4(line: str) -> bool:
    line = _line_text_end(line)
    if line.endswith("]"):
        line = _C4_CITATIONS_AT_END.sub("", line).rstrip()
    return line.endswith(TERMINAL_MARKS) and not line.endswith(C4_ELLIPSIS)


def _ends_sentence_for_fineweb(line: str) -> bool:
    return _line_text_end(line).endswith(TERMINAL_MARKS)


def _has_overlong_word(line: str) -> bool:
    return len(line) > C4_MAX_WORD_CHARS and max(map(len, line.split())) > C4_MAX_WORD_CHARS


def _is_short_line(line: str) -> bool:
    return len(line) <= FINEWEB_SHORT_LINE_COLUMNS and (
        len(line) + len(_WIDE_CHAR.findall(line)) <= FINEWEB_SHORT_LINE_COLUMNS
    )


def _c4_keeps(line: str, words: int, ends_sentence: bool) -> bool:
    """Whether C4's line filters (before its javascript and policy ones) keep the line."""
    return ends_sentence and words >= C4_MIN_LINE_WORDS and not _has_overlong_word(line)


def c4_signals(text: str, lines: list[str], line_words: list[int]) -> dict:
    """C4's line rules as fractions of the (stripped, non-empty) lines, and its two page rules as flags.

    Each phrase is looked for in the whole lowercased text first (a substring search in C); lines are only visited
    for the phrases that occur.
    """
    n_lines = len(lines)
    terminal = [_ends_sentence_for_c4(line) for line in lines]
    lowered_text = text.lower()
    has_javascript = "javascript" in lowered_text
    policy_phrases = [phrase for phrase in C4_POLICY_PHRASES if phrase in lowered_text]
    javascript = policy = 0
    lorem = curly = False
    if has_javascript or policy_phrases or "lorem ipsum" in lowered_text or "{" in text:
        for line, words, ends in zip(lines, line_words, terminal):
            lowered = line.lower()
            is_javascript = has_javascript and "javascript" in lowered
            javascript += is_javascript
            policy += any(phrase in lowered for phrase in policy_phrases)
            if ("lorem ipsum" in lowered or "{" in line) and _c4_keeps(line, words, ends):
                lorem = lorem or "lorem ipsum" in lowered
                curly = curly or ("{" in line and not is_javascript)
    return {
        "c4_terminal_punct_line_frac": _ratio(sum(terminal), n_lines),
        "c4_few_words_line_frac": _ratio(sum(words < C4_MIN_LINE_WORDS for words in line_words), n_lines),
        "c4_javascript_line_frac": _ratio(javascript, n_lines),
        "c4_policy_line_frac": _ratio(policy, n_lines),
        "c4_lorem_ipsum": lorem,
        "c4_curly_brace": curly,
    }


def text_lines(text: str, word_starts: np.ndarray | None = None) -> tuple[list[str], list[int]]:
    """The lines the line signals count (stripped; blank lines and table rules '|---|---|' left out) and the words
    on each.

    word_starts: character offsets of the document's words, to count words per line; without them, whitespace
    splits the lines (right for space-separated languages only).
    """
    raw_lines = text.splitlines()
    if word_starts is None:
        raw_words = [len(line.split()) for line in raw_lines]
    else:
        raw_words = words_per_line(text, word_starts).tolist()
    lines, line_words = [], []
    for raw, words in zip(raw_lines, raw_words):
        line = raw.strip()
        if line and not (line[0] == "|" and _TABLE_RULE.match(line)):
            lines.append(line)
            line_words.append(words)
    return lines, line_words


@dataclass
class SignalInput:
    """What a signal family computes from (`corpus.families.SignalFamily.compute`): the document's text, its words
    as the annotator's one tokenization found them (arrays over words only: punctuation, symbols, whitespace and PII
    placeholders are not words), its language and PII counts, and the lines and paragraphs every line-based family
    reads, split once on first use and shared.

    The word arrays are None where there are no words to give (`line_signals` on plain text).
    """

    text: str
    word_starts: np.ndarray | None = None  # character offset of each word in `text`
    word_lengths: np.ndarray | None = None  # characters of each word
    word_ids: np.ndarray | None = None  # spaCy hash of each lowercased word (uint64)
    n_letter_words: int = 0  # words with a letter
    n_stopwords: int | None = None  # None: the language has no usable stop-word list
    lang: str = ""
    pii_counts: dict[str, int] | None = None  # kind -> replacements; None: PII replacement is off

    @classmethod
    def of_view(cls, text: str, view, *, lang: str = "", pii_counts: dict[str, int] | None = None) -> SignalInput:
        """The input of a document tokenized into `view` (a corpus.annotate.words.TokenView)."""
        words = view.is_word
        return cls(
            text=text,
            word_starts=view.starts[words],
            word_lengths=view.lengths[words],
            word_ids=view.lower[words],
            n_letter_words=int((view.has_letter & words).sum()),
            n_stopwords=int((view.is_stop & words).sum()) if view.has_stopwords else None,
            lang=lang,
            pii_counts=pii_counts,
        )

    @cached_property
    def _lines(self) -> tuple[list[str], list[int]]:
        return text_lines(self.text, self.word_starts)

    @property
    def lines(self) -> list[str]:
        """Stripped non-blank lines, table rules left out (`text_lines`)."""
        return self._lines[0]

    @property
    def line_words(self) -> list[int]:
        """Words on each of `lines`."""
        return self._lines[1]

    @cached_property
    def paragraphs(self) -> list[str]:
        return paragraphs(self.text)

    @cached_property
    def repeated_lines(self) -> tuple[int, int]:
        """How many lines repeat an earlier one, and their characters."""
        return repeated_items(self.lines)

    @cached_property
    def repeated_paragraphs(self) -> tuple[int, int]:
        return repeated_items(self.paragraphs)


# --- the signals of each built-in family, from a SignalInput ---------------------------------------------------------


def gopher_line_signals(s: SignalInput) -> dict:
    n_lines = len(s.lines)
    return {
        "n_chars": len(s.text),
        "n_lines": n_lines,
        "bullet_line_frac": _ratio(sum(line.startswith(BULLETS) for line in s.lines), n_lines),
        "ellipsis_line_frac": _ratio(sum(line.endswith(ELLIPSES) for line in s.lines), n_lines),
    }


def gopher_word_signals(text: str, word_lengths: np.ndarray, n_letter_words: int, n_stopwords: int | None) -> dict:
    """Word-count signals; `n_stopwords` is None for a language without a usable stop-word list."""
    n_words = len(word_lengths)
    symbols = text.count("#") + sum(text.count(e) for e in ELLIPSES)
    return {
        "n_words": n_words,
        "mean_word_len": float(word_lengths.mean()) if n_words else None,
        "symbol_ratio": _ratio(symbols, n_words),
        "alpha_word_frac": _ratio(n_letter_words, n_words),
        "n_stopwords": n_stopwords,
        "stopword_frac": _ratio(n_stopwords, n_words) if n_stopwords is not None else None,
    }


def gopher_quality_signals(s: SignalInput) -> dict:
    """Gopher's quality signals (and the plain counts n_chars, n_lines, stopword_frac)."""
    return {**gopher_line_signals(s), **gopher_word_signals(s.text, s.word_lengths, s.n_letter_words, s.n_stopwords)}


def gopher_repeated_text_signals(s: SignalInput) -> dict:
    dup_lines, dup_line_chars = s.repeated_lines
    dup_paras, dup_para_chars = s.repeated_paragraphs
    n_chars = len(s.text)
    return {
        "dup_line_frac": _ratio(dup_lines, len(s.lines)),
        "dup_para_frac": _ratio(dup_paras, len(s.paragraphs)),
        "dup_line_char_frac": _ratio(dup_line_chars, n_chars),
        "dup_para_char_frac": _ratio(dup_para_chars, n_chars),
    }


def gopher_repetition_signals(s: SignalInput) -> dict:
    """Gopher's repetition signals: repeated lines and paragraphs, top and duplicated word n-grams."""
    return {**gopher_repeated_text_signals(s), **ngram_signals(s.word_ids, s.word_lengths)}


def fineweb_line_signals(s: SignalInput) -> dict:
    n_lines = len(s.lines)
    return {
        "fineweb_line_punct_frac": _ratio(sum(map(_ends_sentence_for_fineweb, s.lines)), n_lines),
        "fineweb_short_line_frac": _ratio(sum(map(_is_short_line, s.lines)), n_lines),
        # datatrove divides by the characters that are not newlines
        "fineweb_char_dup_frac": _ratio(s.repeated_lines[1], len(s.text) - s.text.count("\n")),
    }


def fineweb_newline_ratio(text: str, n_words: int) -> float | None:
    return _ratio(text.count("\n"), n_words)


def fineweb_signals(s: SignalInput) -> dict:
    """FineWeb's quality signals."""
    return {**fineweb_line_signals(s), "fineweb_newline_ratio": fineweb_newline_ratio(s.text, len(s.word_lengths))}


# --- the built-in signals grouped by what they read (plain text, word arrays), for tests and benchmarks ------------


def line_signals(text: str, word_starts: np.ndarray | None = None) -> dict:
    """Line and paragraph signals (Gopher, C4, FineWeb); lines are stripped, and blank lines and table rules
    ('|---|---|') ignored.

    word_starts: character offsets of the document's words, to count words per line; without them, whitespace
    splits the lines (right for space-separated languages only).
    """
    s = SignalInput(text, word_starts=word_starts)
    return {
        **gopher_line_signals(s),
        **gopher_repeated_text_signals(s),
        **c4_signals(text, s.lines, s.line_words),
        **fineweb_line_signals(s),
    }


def word_signals(text: str, word_lengths: np.ndarray, n_letter_words: int, n_stopwords: int | None) -> dict:
    """Word-count signals (Gopher, FineWeb); `n_stopwords` is None for a language without a usable stop-word list."""
    return {
        **gopher_word_signals(text, word_lengths, n_letter_words, n_stopwords),
        "fineweb_newline_ratio": fineweb_newline_ratio(text, len(word_lengths)),
    }


def _covered_chars(starts: np.ndarray, n: int, word_lengths: np.ndarray) -> int:
    """Characters of the words covered by n-grams starting at `starts` (sorted, distinct); overlaps count once."""
    delta = np.zeros(len(word_lengths) + 1, dtype=np.int64)
    delta[starts] += 1
    delta[starts + n] -= 1
    return int(word_lengths[np.cumsum(delta[:-1]) > 0].sum())


def _occurrences(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each key, an id shared by equal keys and how often its key occurs (np.unique without its overhead)."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    is_first = np.concatenate(([True], ordered[1:] != ordered[:-1]))
    group_of_sorted = np.cumsum(is_first) - 1
    group_sizes = np.diff(np.concatenate((np.flatnonzero(is_first), [len(keys)])))
    groups = np.empty(len(keys), dtype=np.int64)
    groups[order] = group_of_sorted
    return groups, group_sizes[groups]


def ngram_signals(word_ids: np.ndarray, word_lengths: np.ndarray) -> dict:
    """top_{2,3,4}gram_char_frac and dup_{5..10}gram_char_frac over a document's words (None without words).

    Only n-grams whose (n-1)-word prefix repeats can repeat, so each n looks at the positions that survived n-1:
    the arrays shrink fast on natural text.
    """
    ids = np.asarray(word_ids, dtype=np.uint64)
    lengths = np.asarray(word_lengths, dtype=np.int64)
    names = [f"top_{n}gram_char_frac" for n in TOP_NGRAM_SIZES] + [f"dup_{n}gram_char_frac" for n in DUP_NGRAM_SIZES]
    total_chars = int(lengths.sum())
    if total_chars == 0:
        return dict.fromkeys(names)
    out = dict.fromkeys(names, 0.0)
    char_prefix = np.concatenate(([0], np.cumsum(lengths)))
    starts = np.arange(len(ids))  # positions whose (n-1)-gram occurs more than once
    hashes = ids
    for n in range(2, max(DUP_NGRAM_SIZES) + 1):
        valid = starts + n <= len(ids)
        starts, hashes = starts[valid], hashes[valid]
        if len(starts) == 0:
            break
        # hash of words[i:i+n] from the hash of words[i:i+n-1]; uint64 arithmetic wraps, as intended
        hashes = hashes * _HASH_MULTIPLIER + ids[starts + n - 1]
        groups, occurrences = _occurrences(hashes)
        if n in TOP_NGRAM_SIZES and occurrences.max() > 1:
            top = np.flatnonzero(occurrences == occurrences.max())
            ngram_chars = char_prefix[starts[top] + n] - char_prefix[starts[top]]
            chosen_group = groups[top[np.argmax(ngram_chars)]]  # ties: more characters, then earliest
            covered = _covered_chars(starts[groups == chosen_group], n, lengths)
            out[f"top_{n}gram_char_frac"] = covered / total_chars
        repeated = occurrences > 1
        starts, hashes = starts[repeated], hashes[repeated]
        if n in DUP_NGRAM_SIZES:
            out[f"dup_{n}gram_char_frac"] = _covered_chars(starts, n, lengths) / total_chars
    return out
