"""Settings of the corpus stages, each next to the stage it configures; `flows/config.py` composes the tree."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    """Base of every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class IngestConfig(Section):
    unit_bytes: int = Field(32 << 20, gt=0, description="Target size in bytes of one work unit (a byte range of an input file).")
    max_record_bytes: int = Field(10 << 20, gt=0, description="Records with a larger payload are rejected as `too_large`.")
    max_records: int = Field(0, ge=0, description="Stop after this many records per work unit (0 = all). For quick trials.")
    content_types: list[str] = Field(
        default_factory=lambda: ["text/html", "application/xhtml+xml", "text/plain"],
        description="Payload MIME types that go on to extraction; others are rejected as `unsupported_content_type`.",
    )


class ExtractConfig(Section):
    timeout_s: float = Field(10.0, gt=0, description="Per-document extraction timeout; the worker is restarted after one.")
    max_html_bytes: int = Field(5 << 20, gt=0, description="Pages larger than this are rejected before parsing (`html_too_large`).")
    max_elements: int = Field(200_000, gt=0, description="Pages with more start tags than this are rejected before parsing.")
    favor: str = Field("balanced", pattern="^(balanced|precision|recall)$", description="trafilatura's trade-off.")
    fast: bool = Field(False, description="trafilatura fast mode (no fallback extractors): ~1.4x faster, slightly lower F1.")
    include_tables: bool = Field(True, description="Keep text of HTML tables.")
    include_comments: bool = Field(False, description="Keep user comments under articles.")
    max_doc_chars: int = Field(1_000_000, gt=0, description="Extracted texts longer than this are rejected (`text_too_long`).")


class AnnotateConfig(Section):
    lang_chars: int = Field(2000, gt=0, description="Characters of text given to the language identifier.")
    keyphrases_top_k: int = Field(10, ge=0, description="Keyphrases kept per document (0 disables keyphrases).")
    keyphrase_max_words: int = Field(4, gt=0, description="Longest candidate phrase, in words.")
    spacy_model: str = Field(
        "",
        description="Name or path of an installed spaCy pipeline to use instead of the blank tokenizer of the "
        "detected language (adds noun chunks as keyphrase candidates). Empty: blank per-language tokenizers.",
    )


class FilterConfig(Section):
    enabled: bool = Field(True, description="false keeps every extracted document.")
    languages: list[str] = Field(default_factory=list, description="ISO 639-1 codes to keep; empty keeps every language.")
    min_lang_score: float = Field(0.0, ge=0, le=1, description="Minimum language-id confidence.")
    min_words: int = Field(50, ge=0, description="Gopher: minimum words.")
    max_words: int = Field(100_000, gt=0, description="Gopher: maximum words.")
    min_mean_word_len: float = Field(3.0, ge=0, description="Gopher: minimum mean word length (not applied to unsegmented scripts).")
    max_mean_word_len: float = Field(10.0, gt=0, description="Gopher: maximum mean word length.")
    max_symbol_ratio: float = Field(0.1, ge=0, description="Gopher: maximum ratio of '#' and '...' to words.")
    max_bullet_line_frac: float = Field(0.9, ge=0, le=1, description="Gopher: maximum fraction of lines starting with a bullet.")
    max_ellipsis_line_frac: float = Field(0.3, ge=0, le=1, description="Gopher: maximum fraction of lines ending in an ellipsis.")
    min_alpha_word_frac: float = Field(0.8, ge=0, le=1, description="Gopher: minimum fraction of words with a letter.")
    min_stopwords: int = Field(2, ge=0, description="Gopher: minimum stop words (languages with a stop-word list only).")
    max_dup_line_frac: float = Field(0.3, ge=0, le=1, description="Gopher repetition: duplicate lines fraction.")
    max_dup_para_frac: float = Field(0.3, ge=0, le=1, description="Gopher repetition: duplicate paragraphs fraction.")
    max_dup_line_char_frac: float = Field(0.2, ge=0, le=1, description="Gopher repetition: characters in duplicate lines.")
    max_dup_para_char_frac: float = Field(0.2, ge=0, le=1, description="Gopher repetition: characters in duplicate paragraphs.")
    max_top_ngram_char_frac: dict[int, float] = Field(
        default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16},
        description="Gopher repetition: characters covered by the most frequent n-gram, per n.",
    )
    max_dup_ngram_char_frac: dict[int, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        description="Gopher repetition: characters covered by duplicated n-grams, per n.",
    )
    unsegmented_languages: list[str] = Field(
        default_factory=lambda: ["zh", "ja", "th", "lo", "km", "my", "bo"],
        description="Languages written without spaces between words: word-length rules do not apply.",
    )


class DedupConfig(Section):
    enabled: bool = Field(True, description="false keeps duplicates.")
    exact: bool = Field(True, description="Drop documents whose normalized text equals an earlier one's.")
    threshold: float = Field(0.8, gt=0, le=1, description="Jaccard similarity above which documents are near-duplicates.")


class ShardConfig(Section):
    val_fraction: float = Field(0.05, ge=0, lt=1, description="Share of documents in the `val` split (by hash of id).")
