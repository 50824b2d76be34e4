"""MinHash signatures of a batch of documents, vectorized in numpy, and the LSH banding math.

Shingles. Word `ngram`-grams of the normalized text; a document with fewer words is one shingle. Texts mostly in
scripts written without spaces (Han, kana, Thai, Lao, Khmer, Myanmar, Tibetan) use character `char_ngram`-grams.

Shingle hashes (64-bit). A shingle is a byte span of the normalized batch text (words joined by single spaces), so
its hash is computed from prefix sums over the whole batch at once: with H[i] = sum_{j<i} (c_j + 1) P^j mod 2^64,
the span [s, e) hashes to (H[e] - H[s]) P^-s, which depends only on the span's bytes; the MurmurHash3 finalizer then
spreads the bits. (A polynomial hash modulo 2^64 has structured collisions, e.g. Thue-Morse strings; natural text
does not hit them, and a colliding pair only nudges one Jaccard estimate.)

Permutations. h_i(x) = a_i x + b_i mod 2^64 with odd a_i, a bijection of 64-bit values (datasketch's "affine64"
scheme). Reduction modulo 2^64 is free in numpy, while an exact reduction modulo the Mersenne prime 2^61 - 1 needs a
128-bit product, which numpy lacks: emulating it takes several more passes over the same matrix. Estimates match
the binomial error of ideal permutations (bench/dedup.py). The signature keeps the low 32 bits of each minimum:
equal minima stay equal, different ones collide with probability 2^-32, and it halves the size.

The matrix of permuted hashes is (num_perm, shingles), filled in chunks of CHUNK_BYTES; the minimum per document is
`np.minimum.reduceat` along the shingle axis (the fast direction: over 10x faster than along axis 0 here).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from corpus.dedup.exact import CanonicalBatch

MASK64 = (1 << 64) - 1
EMPTY = np.uint32(0xFFFFFFFF)  # signature value of a document without shingles (never banded)
HASH_BASE = 0x9E3779B97F4A7C15  # odd; fixed forever: shingle hashes must match across runs for the index
SIGNATURE_VERSION = "minhash-affine64-poly64-v1"  # bump when any hash above changes: old indexes become incompatible
CHUNK_BYTES = 8 << 20  # one chunk of the permuted-hash matrix; 8 MiB measured fastest (1 ns per value here)

# Unicode blocks of scripts written without spaces between words (3-byte UTF-8 code points).
UNSEGMENTED_RANGES = [
    (0x0E00, 0x0FFF),  # Thai, Lao, Tibetan
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x3040, 0x30FF),  # Hiragana, Katakana
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
]
UNSEGMENTED_SHARE = 0.3  # a text with at least this share of such characters gets character shingles


def fmix64(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's 64-bit finalizer: every input bit flips about half of the output bits."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


class _Powers:
    """P^i and P^-i modulo 2^64 for i < n, grown on demand and shared by every batch of the process."""

    def __init__(self):
        self.up = np.ones(1, dtype=np.uint64)
        self.down = np.ones(1, dtype=np.uint64)

    def get(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.up) < n:
            size = max(n, 2 * len(self.up), 1 << 16)
            inverse = pow(HASH_BASE, -1, 1 << 64)
            self.up = _power_table(HASH_BASE, size)
            self.down = _power_table(inverse, size)
        return self.up[:n], self.down[:n]


def _power_table(base: int, size: int) -> np.ndarray:
    table = np.full(size, base, dtype=np.uint64)
    table[0] = 1
    return np.cumprod(table, out=table)  # wraps modulo 2^64, as intended


_POWERS = _Powers()


def unsegmented_docs(batch: CanonicalBatch) -> np.ndarray:
    """(D,) bool: documents at least UNSEGMENTED_SHARE of whose characters are in scripts written without spaces."""
    data = batch.data
    lead = np.flatnonzero((data & 0xF0) == 0xE0)  # 3-byte sequences
    lead = lead[lead + 2 < len(data)]
    code = ((data[lead].astype(np.int64) & 0x0F) << 12) | ((data[lead + 1].astype(np.int64) & 0x3F) << 6)
    code |= data[lead + 2].astype(np.int64) & 0x3F
    hit = np.zeros(len(code), dtype=bool)
    for lo, hi in UNSEGMENTED_RANGES:
        hit |= (code >= lo) & (code <= hi)
    if not hit.any():
        return np.zeros(batch.n_docs, dtype=bool)
    doc_of = np.searchsorted(batch.doc_offsets, lead[hit], side="right") - 1
    unsegmented = np.bincount(doc_of, minlength=batch.n_docs)
    return unsegmented >= UNSEGMENTED_SHARE * np.maximum(_chars_per_doc(batch), 1)


def _chars_per_doc(batch: CanonicalBatch) -> np.ndarray:
    starts_char = np.zeros(len(batch.data) + 1, dtype=np.int64)
    np.cumsum((batch.data & 0xC0) != 0x80, out=starts_char[1:])
    return np.diff(starts_char[batch.doc_offsets])


def _char_tokens(batch: CanonicalBatch, docs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Characters (not spaces) of the given documents as byte spans: a character ends where the next one starts."""
    data = batch.data
    char_starts = np.flatnonzero((data & 0xC0) != 0x80)
    char_ends = np.append(char_starts[1:], len(data))
    doc_of = np.searchsorted(batch.doc_offsets, char_starts, side="right") - 1
    take = np.isin(doc_of, docs) & (data[char_starts] != 32)
    return char_starts[take], char_ends[take], doc_of[take]


@dataclass
class Shingles:
    hashes: np.ndarray  # (S,) uint64, the shingles of document i at hashes[offsets[i]:offsets[i + 1]]
    offsets: np.ndarray  # (D + 1,) int64

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)


def shingle_hashes(batch: CanonicalBatch, ngram: int, char_ngram: int) -> Shingles:
    """64-bit hashes of every document's shingles (repeats kept: the minimum does not care)."""
    starts, ends, token_doc = batch.word_starts, batch.word_ends, batch.word_doc
    n_per_doc = np.full(batch.n_docs, ngram, dtype=np.int64)
    unsegmented = unsegmented_docs(batch)
    if unsegmented.any():
        char_docs = np.flatnonzero(unsegmented)
        n_per_doc[char_docs] = char_ngram
        words = ~np.isin(token_doc, char_docs)
        c_starts, c_ends, c_doc = _char_tokens(batch, char_docs)
        starts = np.concatenate([starts[words], c_starts])
        ends = np.concatenate([ends[words], c_ends])
        token_doc = np.concatenate([token_doc[words], c_doc])
        order = np.argsort(starts, kind="stable")
        starts, ends, token_doc = starts[order], ends[order], token_doc[order]

    tokens = np.bincount(token_doc, minlength=batch.n_docs)
    token_offsets = np.zeros(batch.n_docs + 1, dtype=np.int64)
    np.cumsum(tokens, out=token_offsets[1:])
    # A document with fewer tokens than n is one shingle of all of them; one without tokens has none.
    counts = np.where(tokens >= n_per_doc, tokens - n_per_doc + 1, (tokens > 0).astype(np.int64))
    offsets = np.zeros(batch.n_docs + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    shingle_doc = np.repeat(np.arange(batch.n_docs), counts)
    first = token_offsets[shingle_doc] + np.arange(offsets[-1]) - offsets[shingle_doc]
    last = first + np.minimum(tokens, n_per_doc)[shingle_doc] - 1
    return Shingles(_span_hashes(batch.data, starts[first], ends[last]), offsets)


def _span_hashes(data: np.ndarray, span_starts: np.ndarray, span_ends: np.ndarray) -> np.ndarray:
    up, down = _POWERS.get(len(data) + 1)
    prefix = np.zeros(len(data) + 1, dtype=np.uint64)
    np.cumsum((data.astype(np.uint64) + np.uint64(1)) * up[: len(data)], out=prefix[1:])
    return fmix64((prefix[span_ends] - prefix[span_starts]) * down[span_starts])


@dataclass(frozen=True)
class MinHasher:
    """Signatures of one parameter set; every run that shares an index must use the same one."""

    num_perm: int = 128
    ngram: int = 5
    char_ngram: int = 5
    seed: int = 1

    @classmethod
    def from_config(cls, cfg) -> MinHasher:
        return cls(cfg.num_perm, cfg.ngram, cfg.char_ngram, cfg.seed)

    @property
    def params(self) -> dict[str, str]:
        """What makes two signatures comparable; stored with every key file and index."""
        return {
            "signature": SIGNATURE_VERSION,
            "num_perm": str(self.num_perm),
            "ngram": str(self.ngram),
            "char_ngram": str(self.char_ngram),
            "seed": str(self.seed),
        }

    @cached_property
    def permutations(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(self.seed)
        a = rng.integers(0, 1 << 63, self.num_perm, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        b = rng.integers(0, 1 << 64, self.num_perm, dtype=np.uint64)
        return a[:, None], b[:, None]  # (P, 1) each

    def signatures(self, batch: CanonicalBatch) -> tuple[np.ndarray, np.ndarray]:
        """(D, num_perm) uint32 signatures and (D,) shingle counts; documents without shingles get all-EMPTY rows."""
        shingles = shingle_hashes(batch, self.ngram, self.char_ngram)
        return self.minimum_per_doc(shingles), shingles.counts.astype(np.int32)

    def minimum_per_doc(self, shingles: Shingles) -> np.ndarray:
        a, b = self.permutations
        offsets, hashes = shingles.offsets, shingles.hashes
        n_docs, total = len(offsets) - 1, len(hashes)
        minima = np.full((self.num_perm, n_docs), np.uint64(MASK64), dtype=np.uint64)  # (P, D)
        chunk_len = max(256, CHUNK_BYTES // (8 * self.num_perm))
        buffer = np.empty((self.num_perm, min(chunk_len, max(total, 1))), dtype=np.uint64)  # (P, chunk_len)
        for lo in range(0, total, chunk_len):
            hi = min(total, lo + chunk_len)
            # Documents overlapping [lo, hi), each cut to its part inside the chunk (empty documents skipped).
            d_lo = int(np.searchsorted(offsets, lo, side="right")) - 1
            d_hi = int(np.searchsorted(offsets, hi, side="left"))
            docs = np.arange(d_lo, d_hi)
            seg_starts = np.maximum(offsets[d_lo:d_hi], lo)
            seg_ends = np.minimum(offsets[d_lo + 1 : d_hi + 1], hi)
            docs, seg_starts = docs[seg_ends > seg_starts], seg_starts[seg_ends > seg_starts]
            chunk = buffer[:, : hi - lo]
            np.multiply(a, hashes[lo:hi], out=chunk)
            chunk += b
            part = np.minimum.reduceat(chunk, seg_starts - lo, axis=1)  # (P, len(docs))
            minima[:, docs] = np.minimum(minima[:, docs], part)
        signatures = minima.T.astype(np.uint32)  # low 32 bits, (D, P)
        signatures[np.diff(offsets) == 0] = EMPTY
        return np.ascontiguousarray(signatures)


def estimated_jaccard(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Share of agreeing positions of row-aligned signatures (..., P) -> (...,) float32."""
    return (left == right).mean(axis=-1, dtype=np.float32)


# --- LSH banding math --------------------------------------------------------------------------------------------


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """P(a pair with Jaccard `similarity` agrees on all rows of at least one band) = 1 - (1 - s^r)^b."""
    return 1.0 - (1.0 - similarity**rows) ** bands


def threshold_for(bands: int, rows: int) -> float:
    """Where the S-curve is steepest, approximately: (1/b)^(1/r)."""
    return (1.0 / bands) ** (1.0 / rows)


def s_curve(bands: int, rows: int, points: int = 11) -> list[tuple[float, float]]:
    """(Jaccard, probability of becoming a candidate) at `points` evenly spaced similarities from 0 to 1."""
    return [(i / (points - 1), candidate_probability(i / (points - 1), bands, rows)) for i in range(points)]


def format_s_curve(bands: int, rows: int, points: int = 11) -> str:
    lines = [f"LSH bands={bands} rows={rows}: steepest near (1/b)^(1/r) = {threshold_for(bands, rows):.3f}"]
    lines += [f"  J={s:.2f}  P(candidate)={p:.3f}  {'#' * round(p * 40)}" for s, p in s_curve(bands, rows, points)]
    return "\n".join(lines)


def derive_bands_rows(threshold: float, num_perm: int, miss_weight: float) -> tuple[int, int]:
    """Bands and rows (b * r <= num_perm) minimizing the weighted areas of false candidates and missed pairs.

    False candidates: the area under P(s) for s in [0, threshold]; missed pairs: the area under 1 - P(s) for s in
    [threshold, 1] (datasketch's criterion). `miss_weight` in (0, 1) weighs the second; the first gets the rest.
    """
    below = np.linspace(0.0, threshold, 201)
    above = np.linspace(threshold, 1.0, 201)
    best, best_error = (1, 1), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            false_candidates = np.trapezoid(1 - (1 - below**rows) ** bands, below)
            missed = np.trapezoid((1 - above**rows) ** bands, above)
            error = (1 - miss_weight) * false_candidates + miss_weight * missed
            if error < best_error:
                best, best_error = (bands, rows), error
    return best


def lsh_params(cfg) -> tuple[int, int]:
    """The configured bands and rows, or those derived from the threshold (see DedupConfig's docstring)."""
    if cfg.bands and cfg.rows:
        return cfg.bands, cfg.rows
    return _derived(cfg.threshold, cfg.num_perm, 0.95 if cfg.verify else 0.5)


_DERIVED: dict[tuple, tuple[int, int]] = {}


def _derived(threshold: float, num_perm: int, miss_weight: float) -> tuple[int, int]:
    key = (threshold, num_perm, miss_weight)
    if key not in _DERIVED:
        _DERIVED[key] = derive_bands_rows(threshold, num_perm, miss_weight)
    return _DERIVED[key]


def band_keys(signatures: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(D, P) uint32 signatures -> (bands, D) uint64 keys: equal keys <=> (up to ~2^-64) equal rows in that band.

    A band's values are folded with key = (key ^ value) * m (a bijection in each value, m odd); keys are only
    compared for equality, so no finalizer. With an even number of rows two adjacent uint32 values are read as
    one uint64, halving the passes.
    """
    signatures = np.ascontiguousarray(signatures)
    if rows % 2 == 0:
        values, width = signatures.view(np.uint64), rows // 2  # (D, P/2): adjacent pairs of values
    else:
        values, width = signatures, rows
    used = values[:, : bands * width].reshape(len(signatures), bands, width)  # (D, b, width)
    key = np.zeros((len(signatures), bands), dtype=np.uint64)
    multiplier = np.uint64(0x9FB21C651E98DF25)
    for t in range(width):
        key ^= used[:, :, t]
        key *= multiplier
    return np.ascontiguousarray(key.T)

