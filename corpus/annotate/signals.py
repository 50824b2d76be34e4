"""Quality signals of Gopher (Rae et al. 2021, appendix A1), computed once per document for the filter rules.

Words come from the annotator's spaCy tokenization (punctuation, symbol and whitespace tokens are not words), so
counts are language-aware: Han and kana characters are words of their own. Line and paragraph signals read the text.
The n-gram signals follow the paper's definitions, which datatrove approximates:

- top n-gram (n = 2..4): characters covered by the occurrences of the most frequent word n-gram, over all word
  characters; 0 when no n-gram occurs twice (a unique n-gram is no repetition).
- duplicate n-grams (n = 5..10): characters covered by every occurrence of any n-gram that occurs more than once,
  overlapping occurrences counted once, over all word characters.

Word n-grams are compared through 64-bit rolling hashes of the words' spaCy hashes: numpy does the work, and a
collision (chance about m²/2⁶⁴ for m n-grams) can only overstate repetition by one n-gram.
"""

from __future__ import annotations

import re

import numpy as np

BULLETS = ("•", "‣", "○", "●", "◦", "▪", "■", "□", "⁃", "·", "–", "-", "*")
ELLIPSES = ("...", "…")
TOP_NGRAM_SIZES = (2, 3, 4)
DUP_NGRAM_SIZES = (5, 6, 7, 8, 9, 10)
_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_PARAGRAPH_BREAK = re.compile(r"\n[^\S\n]*\n\s*")


def non_empty_lines(text: str) -> list[str]:
    return [line for line in (raw.strip() for raw in text.splitlines()) if line]


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


def line_signals(text: str) -> dict:
    """Line and paragraph signals; lines are stripped and blank lines ignored."""
    lines = non_empty_lines(text)
    paras = paragraphs(text)
    dup_lines, dup_line_chars = repeated_items(lines)
    dup_paras, dup_para_chars = repeated_items(paras)
    n_chars = len(text)
    return {
        "n_chars": n_chars,
        "n_lines": len(lines),
        "bullet_line_frac": _ratio(sum(line.startswith(BULLETS) for line in lines), len(lines)),
        "ellipsis_line_frac": _ratio(sum(line.endswith(ELLIPSES) for line in lines), len(lines)),
        "dup_line_frac": _ratio(dup_lines, len(lines)),
        "dup_para_frac": _ratio(dup_paras, len(paras)),
        "dup_line_char_frac": _ratio(dup_line_chars, n_chars),
        "dup_para_char_frac": _ratio(dup_para_chars, n_chars),
    }


def word_signals(text: str, word_lengths: np.ndarray, n_letter_words: int, n_stopwords: int | None) -> dict:
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
