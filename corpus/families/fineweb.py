"""FineWeb's quality rules (Penedo et al. 2024, datatrove's FineWebQualityFilter): document ratios over lines and
words, computed in corpus/annotate/signals.py (`fineweb_signals`), dropping at their thresholds as datatrove does."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyarrow as pa
from pydantic import Field

from corpus.annotate.signals import fineweb_signals
from corpus.families import SignalFamily
from corpus.families.rules import Rule, above, below, only_for

if TYPE_CHECKING:
    from corpus.config import FilterConfig
    from corpus.document import Document


def has_sentence_marks(doc: Document, cfg: FilterConfig) -> bool:
    return doc.lang not in cfg.no_sentence_mark_languages


def words_are_words(doc: Document, cfg: FilterConfig) -> bool:
    """Per-word ratios assume words: Han/kana characters and Thai phrases are not (`unsegmented_languages`, a
    setting of corpus/families/gopher.py)."""
    return doc.lang not in cfg.unsegmented_languages


FINEWEB = SignalFamily(
    name="fineweb",
    fields=[
        ("fineweb_line_punct_frac", pa.float32()),
        ("fineweb_short_line_frac", pa.float32()),
        ("fineweb_char_dup_frac", pa.float32()),
        ("fineweb_newline_ratio", pa.float32()),
    ],
    compute=fineweb_signals,
    settings={
        "min_fineweb_line_punct_frac": (
            float,
            Field(
                0.12,
                ge=0,
                le=1,
                description="FineWeb: minimum fraction of lines ending in a sentence mark (line_punct_thr).",
            ),
        ),
        "max_fineweb_short_line_frac": (
            float,
            Field(
                0.67,
                ge=0,
                le=1,
                description="FineWeb: maximum fraction of lines of at most 30 columns (short_line_thr; Han, kana and "
                "Hangul count two columns).",
            ),
        ),
        "max_fineweb_char_dup_frac": (
            float,
            Field(
                0.01,
                ge=0,
                le=1,
                description="FineWeb: maximum fraction of characters in lines that repeat an earlier line "
                "(char_duplicates_ratio).",
            ),
        ),
        "max_fineweb_newline_ratio": (
            float,
            Field(
                0.3,
                ge=0,
                description="FineWeb: maximum newlines per word (new_line_ratio; not applied to "
                "`unsegmented_languages`, whose tokens are characters or phrases).",
            ),
        ),
        "no_sentence_mark_languages": (
            list[str],
            Field(
                default_factory=lambda: ["th", "lo"],
                description="Languages that end sentences with a space, not a mark (Thai, Lao): the line-punctuation "
                "rule fineweb_line_punct does not apply.",
            ),
        ),
    },
    rules=[
        Rule(
            "fineweb_line_punct",
            *only_for(has_sentence_marks, below("fineweb_line_punct_frac", "min_fineweb_line_punct_frac", inclusive=True)),
        ),
        Rule("fineweb_short_lines", *above("fineweb_short_line_frac", "max_fineweb_short_line_frac", inclusive=True)),
        Rule("fineweb_char_dup", *above("fineweb_char_dup_frac", "max_fineweb_char_dup_frac", inclusive=True)),
        Rule("fineweb_newline_ratio", *only_for(words_are_words, above("fineweb_newline_ratio", "max_fineweb_newline_ratio"))),
    ],
    switch="Apply the FineWeb quality rules (fineweb_*).",
)
