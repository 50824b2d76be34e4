"""Tokenizer quality: compression (UTF-8 bytes per token) and exactness of decode(encode(text))."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice

EVAL_BATCH_TEXTS = 256


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
