"""Tokenizer quality: compression (UTF-8 bytes per token), fertility (tokens per word) and exactness of
decode(encode(text))."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from itertools import islice

EVAL_BATCH_TEXTS = 256

# Scripts written without spaces between words: Han, Hiragana, Katakana (with its phonetic extensions and the
# halfwidth forms), Thai, Lao, Myanmar, Khmer. Korean separates words with spaces and is not among them.
_UNSEGMENTED = (
    "\u0e00-\u0e7f\u0e80-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f"
)
# A word unit: one character of an unsegmented script, or a run of other non-whitespace characters.
_WORD_UNIT = re.compile(f"[{_UNSEGMENTED}]|[^\\s{_UNSEGMENTED}]+")


def _batches(texts: Iterable[str], size: int = EVAL_BATCH_TEXTS) -> Iterator[list[str]]:
    iterator = iter(texts)
    while batch := list(islice(iterator, size)):
        yield batch


def bytes_per_token(tokenizer, texts: Iterable[str]) -> float:
    """UTF-8 bytes of `texts` divided by the tokens `tokenizer` (a tokenizers.Tokenizer) gives them; higher
    compresses better. No special tokens are added. Returns 0.0 when the texts hold no token."""
    n_bytes = n_tokens = 0
    for batch in _batches(texts):
        n_bytes += sum(len(text.encode("utf-8")) for text in batch)
        n_tokens += sum(len(encoding.ids) for encoding in tokenizer.encode_batch(batch, add_special_tokens=False))
    return n_bytes / n_tokens if n_tokens else 0.0


def round_trip_failures(tokenizer, texts: Iterable[str]) -> list[int]:
    """Indices of the texts for which decode(encode(text)) != text.

    A byte-level BPE reproduces any string exactly except where the NFC normalizer rewrote it (a decomposed
    "e" + U+0301 comes back as the single character "é"), so a failure here is either unnormalized input or a bug.
    """
    failures: list[int] = []
    start = 0
    for batch in _batches(texts):
        encodings = tokenizer.encode_batch(batch, add_special_tokens=False)
        decoded = tokenizer.decode_batch([e.ids for e in encodings], skip_special_tokens=False)
        failures.extend(start + i for i, (text, back) in enumerate(zip(batch, decoded, strict=True)) if text != back)
        start += len(batch)
    return failures


def word_units(text: str) -> int:
    """Words of `text` for fertility: whitespace-separated words, except that each character of a script written
    without spaces (Chinese, Japanese kana and kanji, Thai, Lao, Khmer, Myanmar) counts as one word by itself: one
    code point, combining marks included.

    So "Hello, world." has 2, "東京は大きい" 6 and "iPhoneを買った" 5 ("iPhone" plus 4 characters). Punctuation stays
    with its word (whitespace splitting), and a run of punctuation between unsegmented characters counts as one.
    """
    return len(_WORD_UNIT.findall(text))


def fertility(tokenizer, texts: Iterable[str]) -> float:
    """Tokens per word over `texts` (sum of tokens / sum of `word_units`): 1.0 means one token per word, higher
    splits words into more pieces. For unsegmented scripts the unit is the character (see `word_units`), so figures
    for Chinese or Thai are tokens per character and compare across tokenizers, not across languages. No special
    tokens are added; returns 0.0 when the texts hold no word."""
    n_words = n_tokens = 0
    for batch in _batches(texts):
        n_words += sum(word_units(text) for text in batch)
        n_tokens += sum(len(encoding.ids) for encoding in tokenizer.encode_batch(batch, add_special_tokens=False))
    return n_tokens / n_words if n_words else 0.0
