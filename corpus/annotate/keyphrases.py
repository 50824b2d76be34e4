"""Keyphrases from one tokenized document: stop-word-delimited candidates ranked by SingleRank.

Candidates (RAKE-style, no part-of-speech tagger needed, so every language works): maximal runs of content tokens
(tokens with a letter that are not stop words), split at stop words, punctuation, numbers and line breaks; a hyphen
written without spaces ("multi-step", "closed-loop") stays inside a run. Runs longer than `max_words` content
tokens are dropped, as they are rarely phrases. Optional extra candidate spans (noun chunks from a trained
pipeline) join the same ranking.

Scoring is SingleRank (Wan & Xiao 2008, as pke implements it): content words are nodes, co-occurrence within
`WINDOW` tokens adds edge weight, weighted PageRank scores the words, and a phrase scores the sum of its words'
scores; the sum is then raised for phrases that occur early (title, lead) by the factor
1 + 1 / (1 + start / POSITION_SCALE): 2 at the first token, 1.5 at token 50, fading towards 1.

bench/keyphrases.py on Inspec validation (500 abstracts, Porter-stemmed exact match): F@10 30.2 (YAKE 19.3 on the
same texts); the hyphen rule added 4.0 points and the position factor 0.7 while tuning. Without a part-of-speech
tagger, verbs and adverbs stay inside candidates ("scheme ensures"): pke's POS-based SingleRank reports 34.2 on the
Inspec test split. Speed, same run and texts: `extract_keyphrases` (tokenizing included) about 1,800 docs/s on one
core against YAKE's 140-200, 9x or more.

`extract_keyphrases(text, lang)` is the entry point for a text; the annotator calls `keyphrases_of` on the
tokenization it already has.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from corpus.annotate.words import TokenView, tokenize, tokenizer_for

WINDOW = 10
DAMPING = 0.85
MAX_ITERATIONS = 50
TOLERANCE = 1e-6
POSITION_SCALE = 50
# Longer "phrases" are runs of letters without spaces (base64, unsegmented scripts), not keyphrases.
MAX_PHRASE_CHARS = 100
HYPHENS = ("-", "‐", "‑")


@lru_cache(maxsize=1)
def _hyphen_hashes() -> tuple[int, ...]:
    from spacy.strings import hash_string

    return tuple(np.uint64(hash_string(h)) for h in HYPHENS)


def content_runs(in_run: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) token indices of the maximal runs of True in `in_run`."""
    edges = np.diff(np.concatenate(([0], in_run.astype(np.int8), [0])))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def tight_hyphens(is_hyphen: np.ndarray, followed_by_space: np.ndarray, content: np.ndarray) -> np.ndarray:
    """Hyphen tokens glued to content tokens on both sides, e.g. the '-' of 'multi-step'."""
    joins = np.zeros(len(content), dtype=bool)
    if len(content) > 2:
        glued = ~followed_by_space
        joins[1:-1] = is_hyphen[1:-1] & glued[:-2] & glued[1:-1] & content[:-2] & content[2:]
    return joins


def cooccurrence_edges(node_of_token: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Directed edge lists (both directions) between distinct content words fewer than `window` tokens apart; a pair
    that co-occurs k times is k parallel edges (collapsing them costs more in np.unique than it saves in PageRank)."""
    sources, targets = [], []
    for offset in range(1, window):
        left, right = node_of_token[:-offset], node_of_token[offset:]
        linked = (left >= 0) & (right >= 0) & (left != right)
        sources.append(left[linked])
        targets.append(right[linked])
    return np.concatenate(sources + targets), np.concatenate(targets + sources)


def pagerank(sources: np.ndarray, targets: np.ndarray, n_nodes: int) -> np.ndarray:
    """Weighted PageRank by power iteration; parallel edges add weight, isolated nodes spread their mass evenly."""
    teleport = np.full(n_nodes, 1.0 / n_nodes)
    out_weight = np.bincount(sources, minlength=n_nodes).astype(np.float64)
    dangling = np.flatnonzero(out_weight == 0)
    edge_share = 1.0 / out_weight[sources]  # the share of its source's score an edge passes on
    scores = teleport
    for _ in range(MAX_ITERATIONS):
        spread = np.bincount(targets, weights=scores[sources] * edge_share, minlength=n_nodes)
        if len(dangling):
            spread = spread + scores[dangling].sum() * teleport
        updated = DAMPING * spread + (1 - DAMPING) * teleport
        converged = np.abs(updated - scores).sum() < n_nodes * TOLERANCE
        scores = updated
        if converged:
            break
    return scores


def rank_keyphrases(
    view: TokenView,
    content: np.ndarray,
    joins: np.ndarray,
    top_k: int,
    max_words: int,
    extra_spans: list[tuple[int, int]] = (),
) -> list[tuple[str, float]]:
    """Top `top_k` (phrase, score) of a tokenized document, best first; phrases lowercased, one per distinct word
    sequence.

    content: per token, a candidate word; joins: per token, a connector kept inside a run (see `tight_hyphens`);
    extra_spans: more candidate (start, end) token spans.
    """
    positions = np.flatnonzero(content)
    if top_k <= 0 or len(positions) == 0:
        return []
    unique_words, nodes = np.unique(view.lower[positions], return_inverse=True)
    node_of_token = np.full(len(content), -1, dtype=np.int64)
    node_of_token[positions] = nodes
    word_scores = pagerank(*cooccurrence_edges(node_of_token, WINDOW), len(unique_words))

    starts, ends = content_runs(content | joins)
    if extra_spans:
        starts = np.concatenate((starts, [s for s, _ in extra_spans])).astype(np.int64)
        ends = np.concatenate((ends, [e for _, e in extra_spans])).astype(np.int64)
    token_scores = np.concatenate(([0.0], np.cumsum(np.where(content, word_scores[node_of_token], 0.0))))
    content_count = np.concatenate(([0], np.cumsum(content)))
    n_words = content_count[ends] - content_count[starts]
    scores = (token_scores[ends] - token_scores[starts]) * (1 + 1 / (1 + starts / POSITION_SCALE))
    scores[(n_words == 0) | (n_words > max_words)] = -1.0

    # A phrase's occurrences share the word sum, so its first (most boosted) occurrence sorts first.
    ranked: list[tuple[str, float]] = []
    seen: set[tuple[int, ...]] = set()
    for index in np.lexsort((starts, -scores)):
        if scores[index] < 0 or len(ranked) == top_k:
            break
        start, end = int(starts[index]), int(ends[index])
        key = tuple(node for node in node_of_token[start:end].tolist() if node >= 0)
        if key in seen:
            continue
        seen.add(key)
        first_char, end_char = view.starts[start], view.starts[end - 1] + view.lengths[end - 1]
        phrase = " ".join(view.text[first_char:end_char].lower().split())
        if len(phrase) <= MAX_PHRASE_CHARS:
            ranked.append((phrase, float(scores[index])))
    return ranked


def noun_chunk_spans(doc, content: np.ndarray) -> list[tuple[int, int]]:
    """Noun chunks of a parsed Doc trimmed to their content words ("the new model" -> "new model"); [] unparsed."""
    if not doc.has_annotation("DEP"):
        return []
    spans = []
    try:
        chunks = list(doc.noun_chunks)
    except (NotImplementedError, ValueError):  # languages without a noun-chunk iterator
        return []
    for chunk in chunks:
        start, end = chunk.start, chunk.end
        while start < end and not content[start]:
            start += 1
        while end > start and not content[end - 1]:
            end -= 1
        if start < end:
            spans.append((start, end))
    return spans


def candidate_words(view: TokenView) -> np.ndarray:
    """Tokens that can be part of a keyphrase: words with a letter that are not stop words."""
    return view.has_letter & view.is_word & ~view.is_stop


def keyphrases_of(
    view: TokenView, top_k: int, max_words: int, extra_spans: list[tuple[int, int]] = ()
) -> list[tuple[str, float]]:
    """Top `top_k` (phrase, score) of a tokenized document, best first (see `rank_keyphrases`)."""
    if top_k <= 0:
        return []
    content = candidate_words(view)
    is_hyphen = np.zeros(len(view), dtype=bool)
    for hyphen in _hyphen_hashes():  # three comparisons beat np.isin's sort
        is_hyphen |= view.lower == hyphen
    joins = tight_hyphens(is_hyphen, view.followed_by_space, content)
    return rank_keyphrases(view, content, joins, top_k, max_words, extra_spans)


def extract_keyphrases(text: str, lang: str, top_k: int = 10, max_words: int = 4) -> list[tuple[str, float]]:
    """Keyphrases of a text in language `lang` (a py3langid / ISO 639-1 code), best first, with their scores.

    The same extractor the annotator runs on every document: the language's spaCy tokenizer and stop words, then
    candidates and SingleRank as above. For many texts, call it in one process: tokenizers are built once.
    """
    return keyphrases_of(tokenize(tokenizer_for(lang), text), top_k, max_words)
