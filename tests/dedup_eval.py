"""A labelled near-duplicate set made from real texts in ../shared/data, for tests/test_dedup.py and bench/dedup.py.

Unrelated documents: paragraphs of three Project Gutenberg books grouped into 120-500-word documents, WikiText-2
sections and AG News items, with any that shares more than 5% of its shingles with an earlier one left out.
Families: an original and one or two variants, each made by one controlled edit (deletions, insertions from
another document, word substitutions, swapped paragraphs, added boilerplate, or only case and whitespace changed)
whose amount is searched until the true Jaccard similarity of the 5-word shingle sets is near a target level.
Levels stay 0.05 away from the 0.8 threshold on both sides, where an estimate with 128 permutations (standard error
0.035) is a coin flip. Every label is the exact Jaccard similarity computed afterwards, for every pair of documents
that shares a shingle, so the truth does not rest on the targets.

Truth for clustering: the connected components of "exact Jaccard >= threshold", in document order; every member
but the first of a component is a duplicate that should be dropped. That is what an exact (non-sketched) dedup
with the same union-find semantics would drop, so precision and recall measure the sketch and the banding only.
"""

from __future__ import annotations

import os
import random
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from corpus.dedup.exact import normalize_text

THRESHOLD = 0.8
NEAR_LEVELS = (0.85, 0.9, 0.95)  # positive targets at threshold 0.8
FAR_LEVELS = (0.5, 0.6, 0.7)  # hard negatives: heavily edited copies
GAP = 0.03  # a variant whose Jaccard lands this close to the threshold is made again with another edit
EDIT_KINDS = ("delete", "insert", "substitute", "swap", "boilerplate")
BOILERPLATE = [
    "Share this article on Facebook, Twitter and LinkedIn. Sign up for our newsletter to get the latest stories "
    "delivered to your inbox every morning. Cookies help us deliver our services; by using them you agree.",
    "Copyright 2024 The Daily Courier. All rights reserved. This material may not be published, broadcast, "
    "rewritten or redistributed without permission. Advertisement. Continue reading below.",
    "Related posts: ten things you did not know about the weather, the best budget travel tips of the year, and "
    "why everyone is talking about sourdough again. Click here to subscribe and never miss an update.",
    "Home | About us | Contact | Privacy policy | Terms of use | Accessibility statement | Careers | Press room | "
    "Site map. Follow us on social media for more news, photos and videos from around the region.",
]


def shared_data_dir() -> Path | None:
    path = Path(os.environ.get("CORPUSFORGE_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
    return path if path.is_dir() else None


def shingle_set(text: str, ngram: int = 5) -> set[str]:
    """The same shingles as corpus.dedup for a word-segmented text, as strings."""
    words = normalize_text(text).split(" ") if text.strip() else []
    if 0 < len(words) < ngram:
        return {" ".join(words)}
    return {" ".join(words[i : i + ngram]) for i in range(len(words) - ngram + 1)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


# --- real texts --------------------------------------------------------------------------------------------------


def gutenberg_documents(data_dir: Path, min_words: int = 120, max_words: int = 500) -> list[str]:
    """Book text between the Gutenberg START/END markers, consecutive paragraphs grouped into documents."""
    docs = []
    for path in sorted((data_dir / "english-text" / "gutenberg").glob("pg*.txt")):
        text = path.read_text(encoding="utf-8-sig", errors="replace").replace("\r\n", "\n")
        start, end = re.search(r"\*\*\* ?START OF.*\n", text), re.search(r"\*\*\* ?END OF", text)
        body = text[start.end() if start else 0 : end.start() if end else len(text)]
        paragraphs = [" ".join(p.split()) for p in body.split("\n\n") if len(p.split()) >= 8]
        docs.extend(_group(paragraphs, min_words, max_words))
    return docs


def wikitext_documents(data_dir: Path, min_words: int = 120, max_words: int = 500) -> list[str]:
    """WikiText-2 (validation) paragraphs, grouped within each article."""
    path = data_dir / "english-text" / "wikitext-2" / "valid.txt"
    docs, paragraphs = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if re.fullmatch(r"= [^=].* =", line):  # a new article
            docs.extend(_group(paragraphs, min_words, max_words))
            paragraphs = []
        elif line and not line.startswith("="):
            paragraphs.append(line)
    return docs + _group(paragraphs, min_words, max_words)


def agnews_documents(data_dir: Path) -> list[str]:
    path = data_dir / "classification" / "agnews" / "dev.tsv"
    rows = path.read_text(encoding="utf-8").splitlines()
    return [row.split("\t")[0] for row in rows if len(row.split("\t")[0].split()) >= 25]


def _group(paragraphs: list[str], min_words: int, max_words: int) -> list[str]:
    docs, current, words = [], [], 0
    for paragraph in paragraphs:
        n = len(paragraph.split())
        if current and words + n > max_words:
            if words >= min_words:
                docs.append("\n\n".join(current))
            current, words = [], 0
        current.append(paragraph)
        words += n
    if words >= min_words:
        docs.append("\n\n".join(current))
    return docs


def unrelated(texts: list[str], max_shared: float = 0.05) -> list[str]:
    """Texts in order, leaving out any that shares more than `max_shared` of its shingles with one kept before."""
    owner: dict[str, int] = {}
    kept: list[str] = []
    for text in texts:
        shingles = shingle_set(text)
        overlap = defaultdict(int)
        for s in shingles:
            if s in owner:
                overlap[owner[s]] += 1
        if shingles and max(overlap.values(), default=0) <= max_shared * len(shingles):
            for s in shingles:
                owner.setdefault(s, len(kept))
            kept.append(text)
    return kept


# --- controlled edits --------------------------------------------------------------------------------------------


def edit(text: str, kind: str, amount: float, rng: random.Random, donor: str) -> str:
    """Apply `amount` (0..1) of one kind of edit; the same rng state and amount give the same result."""
    paragraphs = [p.split() for p in text.split("\n\n")]
    if kind == "swap":
        order = list(range(len(paragraphs)))
        for _ in range(max(1, round(amount * len(order)))):
            i, j = rng.randrange(len(order)), rng.randrange(len(order))
            order[i], order[j] = order[j], order[i]
        return "\n\n".join(" ".join(paragraphs[i]) for i in order)
    if kind == "boilerplate":
        words = " ".join(BOILERPLATE).split()
        extra = words[: max(1, round(amount * len(text.split())))]
        head, tail = extra[: len(extra) // 3], extra[len(extra) // 3 :]
        return "\n\n".join([" ".join(head), text, " ".join(tail)]).strip()
    words = text.split()
    donor_words = donor.split()
    n_edits = max(1, round(amount * len(words) / 4))  # spans of about 4 words
    for _ in range(n_edits):
        at = rng.randrange(len(words))
        span = rng.randint(1, 7)
        if kind == "delete" and len(words) > span + 5:
            del words[at : at + span]
        elif kind == "insert":
            d = rng.randrange(max(1, len(donor_words) - span))
            words[at:at] = donor_words[d : d + span]
        elif kind == "substitute":
            words[at] = rng.choice(donor_words) if donor_words else words[at][::-1]
    return " ".join(words)


def case_and_space_copy(text: str, rng: random.Random) -> str:
    """The same normalized text: other case and whitespace only (an exact duplicate)."""
    words = text.split()
    return "  ".join(w.upper() if rng.random() < 0.3 else w for w in words) + "\n"


def variant_at(text: str, kind: str, target: float, seed: int, donor: str) -> tuple[str, float]:
    """Search the edit amount whose result has Jaccard nearest `target` with `text`; (variant, true Jaccard)."""
    base = shingle_set(text)
    lo, hi = 0.0, 1.0
    best = (text, 1.0)
    for _ in range(12):
        amount = (lo + hi) / 2
        candidate = edit(text, kind, amount, random.Random(seed), donor)
        similarity = jaccard(base, shingle_set(candidate))
        if abs(similarity - target) < abs(best[1] - target):
            best = (candidate, similarity)
        if abs(similarity - target) <= 0.01:
            break
        lo, hi = (amount, hi) if similarity > target else (lo, amount)
    return best


# --- the set -----------------------------------------------------------------------------------------------------


@dataclass
class LabelledDoc:
    doc_id: str
    text: str
    family: int  # -1: unrelated singleton
    kind: str  # "original", "unrelated", an edit kind, or "exact"
    target: float  # aimed Jaccard to the family's original (1.0 for originals)


@dataclass
class LabelledSet:
    docs: list[LabelledDoc]
    pairs: dict[tuple[int, int], float] = field(default_factory=dict)  # (i, j), i < j -> exact Jaccard, if > 0

    def variant_pairs(self) -> list[tuple[int, int, float, str]]:
        """(original, variant, exact Jaccard, edit kind) for every variant."""
        original = {d.family: i for i, d in enumerate(self.docs) if d.kind == "original"}
        out = []
        for i, d in enumerate(self.docs):
            if d.family >= 0 and d.kind != "original":
                a, b = sorted((original[d.family], i))
                out.append((a, b, self.pairs.get((a, b), 0.0), d.kind))
        return out

    def true_duplicates(self, threshold: float) -> set[str]:
        """Ids of documents that an exact-Jaccard dedup would drop: all but the first of each component."""
        parent = list(range(len(self.docs)))

        def root(i):
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for (i, j), similarity in self.pairs.items():
            if similarity >= threshold:
                a, b = root(i), root(j)
                parent[max(a, b)] = min(a, b)
        return {d.doc_id for i, d in enumerate(self.docs) if root(i) != i}


def make_labelled_set(data_dir: Path, n_families: int = 300, n_unrelated: int = 300, seed: int = 0) -> LabelledSet:
    rng = random.Random(seed)
    pool = gutenberg_documents(data_dir) + wikitext_documents(data_dir)
    short = agnews_documents(data_dir)
    rng.shuffle(pool)
    rng.shuffle(short)
    pool = unrelated(pool[: n_families + n_unrelated] + short[: n_unrelated // 3])
    rng.shuffle(pool)
    if len(pool) < n_families + 10:
        raise ValueError(f"only {len(pool)} unrelated texts found in {data_dir}")
    originals, singles = pool[:n_families], pool[n_families : n_families + n_unrelated]
    docs: list[LabelledDoc] = []
    for family, text in enumerate(originals):
        docs.append(LabelledDoc("", text, family, "original", 1.0))
        for _ in range(rng.choice((1, 1, 2))):
            donor = singles[rng.randrange(len(singles))] if singles else ""
            if rng.random() < 0.1:
                docs.append(LabelledDoc("", case_and_space_copy(text, rng), family, "exact", 1.0))
                continue
            for _attempt in range(5):  # some edits cannot reach some levels (boilerplate is finite)
                kind = rng.choice(EDIT_KINDS)
                target = rng.choice(NEAR_LEVELS + FAR_LEVELS)
                variant, similarity = variant_at(text, kind, target, rng.randrange(1 << 30), donor)
                if abs(similarity - THRESHOLD) > GAP:
                    docs.append(LabelledDoc("", variant, family, kind, target))
                    break
    docs += [LabelledDoc("", text, -1, "unrelated", 1.0) for text in singles]
    rng.shuffle(docs)  # variants may come before their original: "first seen" is input order
    for i, doc in enumerate(docs):
        doc.doc_id = f"doc-{i:05d}-{doc.kind}"
    return LabelledSet(docs, exact_pairs([d.text for d in docs]))


def exact_pairs(texts: list[str]) -> dict[tuple[int, int], float]:
    """Exact Jaccard of every pair of texts that shares at least one shingle."""
    sets = [shingle_set(t) for t in texts]
    holders: dict[str, list[int]] = defaultdict(list)
    for i, shingles in enumerate(sets):
        for s in shingles:
            holders[s].append(i)
    candidates = set()
    for ids in holders.values():
        if len(ids) < 200:  # a shingle in 200+ documents is boilerplate: pairs come through their other shingles
            candidates.update((a, b) for k, a in enumerate(ids) for b in ids[k + 1 :])
    return {(a, b): jaccard(sets[a], sets[b]) for a, b in sorted(candidates)}


def evaluate(labelled: LabelledSet, dropped_ids: set[str], threshold: float) -> dict[str, float]:
    """Precision and recall of the dropped documents against the exact-Jaccard truth."""
    truth = labelled.true_duplicates(threshold)
    hit = len(truth & dropped_ids)
    return {
        "precision": hit / len(dropped_ids) if dropped_ids else 1.0,
        "recall": hit / len(truth) if truth else 1.0,
        "true_duplicates": len(truth),
        "dropped": len(dropped_ids),
        "false_drops": len(dropped_ids - truth),
        "missed": len(truth - dropped_ids),
    }
