"""Settings of the corpus stages, each next to the stage it configures; `flows/config.py` composes the tree."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from corpus import families as signal_families

# Marks a field that changes how fast a stage runs, never what it writes: left out of the stage's fingerprint, so
# changing it does not re-run the stage and everything after it.
SPEED_ONLY = {"speed_only": True}

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
    format: str = Field(
        "auto",
        pattern="^(auto|warc|arc|jsonl|parquet|arrow|html|text)$",
        description="Reader for every input: auto (by file name, then by the first bytes), or one of warc, arc, jsonl, "
        "parquet, arrow, html, text. With a fixed format a directory input reads all its (non-hidden) files.",
    )
    text_field: str = Field(
        "text", min_length=1, description="JSONL field / table column holding the document text ('a.b' reaches into objects)."
    )
    url_field: str = Field("url", description="JSONL field / table column holding the URL; empty or absent: no URL.")
    id_field: str = Field(
        "id", description="JSONL field / table column holding the record id; absent: a hash of path and offset."
    )
    fetched_at_field: str = Field(
        "", description="JSONL field / table column holding the fetch time (ISO 8601 or Unix seconds); empty: unknown."
    )
    text_is_html: bool = Field(
        False, description="The text field holds HTML: extract it with trafilatura (default: plain text, passed through)."
    )
    files_per_unit: int = Field(
        500, gt=0, description="HTML/text files per work unit (a unit also ends at `unit_bytes`)."
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
    backend: str = Field(
        "trafilatura",
        pattern="^(trafilatura|resiliparse)$",
        description="Main-text extractor: trafilatura (best F1; the default) or resiliparse (about 10x faster, F1 "
        "0.863 vs 0.926 on trafilatura's benchmark, the <title> as title, no date; needs "
        "`pip install 'corpusforge[resiliparse]'`). favor, fast and date_search apply to trafilatura only.",
    )
    date_search: str = Field(
        "fast",
        pattern="^(extensive|fast|off)$",
        description="How htmldate looks for the page date (trafilatura backend): fast (markup, URL, common "
        "patterns), extensive (also free-text dates through dateparser, trafilatura's default: 0.865 vs 0.826 of "
        "the gold dates on trafilatura's benchmark, about 25% slower extraction), off (no date).",
    )
    overlap: bool | Literal["auto"] = Field(
        "auto",
        description="Extract the next page in the child process while this worker annotates the current one: up "
        "to 1.2 busy cores per worker. auto: on when the run has fewer busy workers than CPU cores (one worker "
        "on 2 cores: 38 against 31 docs/s on the sample), off when the workers fill the cores (there it costs: 55 "
        "against 59 docs/s with 2 workers on 2 cores).",
        json_schema_extra=SPEED_ONLY,
    )

    def with_overlap_for(self, busy_workers: int, cores: int) -> ExtractConfig:
        """This config with `overlap: auto` decided for a run of `busy_workers` worker processes on `cores` cores."""
        if self.overlap != "auto":
            return self
        return self.model_copy(update={"overlap": busy_workers < cores})


PII_PLACEHOLDERS = {"email": "<EMAIL>", "ip": "<IP>", "phone": "<PHONE>"}


class AnnotateConfig(Section):
    lang_chars: int = Field(2000, gt=0, description="Characters of text given to the language identifier.")
    languages: list[str] = Field(
        default_factory=list,
        description="ISO 639-1 codes whose documents get word-level annotations (signals, terms, keyphrases); "
        "documents in other languages get their language and score only (signals null), for runs whose "
        "filter.languages keeps only these: tokenizing costs about 7 ms a page, and each language's tokenizer "
        "loads once per worker (French's about 3 s). Empty: every language.",
    )
    keyphrases_top_k: int = Field(10, ge=0, description="Keyphrases kept per document (0 disables keyphrases).")
    keyphrase_max_words: int = Field(4, gt=0, description="Longest candidate phrase, in words.")
    spacy_model: str = Field(
        "",
        description="Name or path of an installed spaCy pipeline to use instead of the blank tokenizer of the "
        "detected language (adds noun chunks as keyphrase candidates). Empty: blank per-language tokenizers.",
    )
    pii: bool = Field(
        True,
        description="Replace personal data (e-mail addresses, IP addresses, phone numbers) in `text` and `title` by "
        "placeholders before any other annotation, so that no shard, view or model sees it; counted per document in "
        "signals pii_emails, pii_ips, pii_phones. The only annotation that rewrites `text`: false keeps it exactly as "
        "extracted (the counts are then null).",
    )
    pii_kinds: list[Literal["email", "ip", "phone"]] = Field(
        default_factory=lambda: list(PII_PLACEHOLDERS),
        description="Kinds of personal data to replace: email, ip (IPv4 and IPv6), phone (international, national "
        "with a trunk 0, North American). Kinds left out are kept and their count is null.",
    )
    pii_placeholders: dict[Literal["email", "ip", "phone"], str] = Field(
        default_factory=lambda: dict(PII_PLACEHOLDERS),
        description="Placeholder text per kind; kinds not given keep their default (<EMAIL>, <IP>, <PHONE>).",
    )

    @field_validator("pii_placeholders")
    @classmethod
    def _placeholders_for_every_kind(cls, value: dict) -> dict:
        return {**PII_PLACEHOLDERS, **value}


# The keys of the `filter` section that belong to no signal family; FilterConfig adds the families' after them.
class FilterSection(Section):
    """Keep/drop rules over the annotations (corpus/filters.py). Rule families switch on and off as a whole; each
    threshold defaults to its published value (Gopher: Rae et al. 2021; C4: Raffel et al. 2020; FineWeb: Penedo et
    al. 2024, as datatrove implements them) unless its description says otherwise."""

    enabled: bool = Field(True, description="false keeps every extracted document.")
    languages: list[str] = Field(default_factory=list, description="ISO 639-1 codes to keep; empty keeps every language.")
    min_lang_score: float = Field(0.0, ge=0, le=1, description="Minimum language-id confidence.")
    url_blocklist: str = Field(
        "",
        description="Path of a URL blocklist file (none is shipped): one entry per line, '#' starts a comment. A "
        "domain ('example.com', also '*.example.com' or a hosts-file line '0.0.0.0 example.com') drops its URLs and "
        "those of its subdomains; 'word:xxx' drops URLs whose host or path has xxx as a whole word (split at "
        "non-alphanumerics, case-insensitive). Reason `url_blocklist`, detail the matching entry. The file is read "
        "once per process; after editing it, rerun with `--from filter` (the config, not the file, is fingerprinted).",
    )


_filter_models: dict[tuple, type[FilterSection]] = {}


def filter_config_model(families: list[signal_families.SignalFamily]) -> type[FilterSection]:
    """FilterConfig for these signal families: the fields of `FilterSection`, then one switch per family with rules
    (named after it), then every family's settings, family by family. One class per list of families, so that
    restoring the registry restores the very class."""
    key = tuple(families)
    if key not in _filter_models:
        switches = {f.name: (bool, Field(True, description=f.switch)) for f in families if f.rules}
        settings = {name: spec for f in families for name, spec in f.settings.items()}
        taken = sorted(set(FilterSection.model_fields) & (set(switches) | set(settings)))
        if taken:
            raise ValueError(f"signal family settings {', '.join(taken)} are filter keys already: rename them")
        _filter_models[key] = create_model(
            "FilterConfig",
            __base__=FilterSection,
            __module__=__name__,
            __doc__=FilterSection.__doc__,
            **switches,
            **settings,
        )
    return _filter_models[key]


# The `filter` section: FilterSection's keys, then the family switches (gopher_quality, gopher_repetition, c4,
# fineweb) and the families' thresholds, declared with their signals and rules in corpus/families/.
FilterConfig = filter_config_model(signal_families.families())


def _follow_signal_families() -> None:
    global FilterConfig
    FilterConfig = filter_config_model(signal_families.families())


signal_families.on_change(_follow_signal_families)


class DedupConfig(Section):
    """Exact and MinHash LSH deduplication (corpus/dedup/).

    Texts are normalized (NFKC, casefold, whitespace collapsed). A document's shingles are its word `ngram`-grams
    (character `char_ngram`-grams for texts mostly in scripts written without spaces). A MinHash signature keeps the
    minimum of `num_perm` random permutations of the shingle hashes; two signatures agree in one position with
    probability s, the Jaccard similarity of the shingle sets, so the share of agreeing positions estimates s with
    standard error sqrt(s(1-s)/num_perm) (0.035 at s=0.8 with 128).

    LSH cuts the signature into `bands` bands of `rows` rows; a pair becomes a candidate when all rows of at least
    one band agree, with probability P(s) = 1 - (1 - s^rows)^bands, an S-curve whose steepest point is near
    threshold ~ (1/bands)^(1/rows). bands = rows = 0 derives them from `threshold` and `num_perm` by minimizing the
    weighted areas under the curve below the threshold (false candidates) and above it (missed pairs). With `verify`
    on, every candidate pair is then checked against `threshold` by its estimated Jaccard, so false candidates only
    cost a comparison and missed pairs weigh 0.95: for threshold 0.8 and 128 permutations that gives bands=16, rows=8,
    (1/16)^(1/8) = 0.71, P(0.8) = 0.95, P(0.85) = 0.99, P(0.5) = 0.06. Without `verify` both weigh 0.5 and the curve
    is centred on the threshold itself: bands=9, rows=13, (1/9)^(1/13) = 0.84, P(0.8) = 0.40, P(0.9) = 0.93.
    `corpus.dedup.s_curve(bands, rows)` lists P(s) for other choices.
    """

    enabled: bool = Field(True, description="false keeps duplicates.")
    exact: bool = Field(True, description="Drop documents whose normalized text equals an earlier one's.")
    threshold: float = Field(0.8, gt=0, le=1, description="Jaccard similarity above which documents are near-duplicates.")
    near: bool = Field(True, description="Drop near-duplicates found by MinHash LSH (estimated Jaccard >= `threshold`).")
    url: bool = Field(
        False,
        description="Also drop documents whose normalized URL (scheme and host lower-cased, fragment dropped) equals an "
        "earlier one's (`url_duplicate`).",
    )
    policy: str = Field(
        "keep-first",
        pattern="^(keep-first|keep-longest|drop-all)$",
        description="Which document of a cluster stays: keep-first (first in input order), keep-longest (most "
        "characters; ties: first), drop-all (none).",
    )
    num_perm: int = Field(
        128, ge=16, le=1024, description="Permutations per MinHash signature (standard error of the Jaccard estimate: "
        "sqrt(s(1-s)/num_perm))."
    )
    bands: int = Field(0, ge=0, description="LSH bands; 0 (with rows 0): derived from threshold and num_perm.")
    rows: int = Field(0, ge=0, description="Signature rows per LSH band; 0 (with bands 0): derived from threshold and num_perm.")
    ngram: int = Field(5, ge=1, description="Words per shingle.")
    char_ngram: int = Field(
        5, ge=1, description="Characters per shingle for texts mostly in scripts written without spaces (Han, kana, Thai, "
        "Lao, Khmer, Myanmar, Tibetan)."
    )
    seed: int = Field(
        1, ge=0, description="Seed of the permutations. Signatures made with another seed, num_perm, ngram or char_ngram "
        "cannot be compared: an index built with other values is refused."
    )
    verify: bool = Field(
        True, description="Check each LSH candidate pair's estimated Jaccard against `threshold` before clustering it."
    )
    index_path: str = Field(
        "",
        description="Folder of a dedup index shared between runs (doc ids, exact keys, signatures): a run is deduplicated "
        "against every document indexed there before, without recomputing their signatures, and then added to it. "
        "Empty: no shared index.",
    )
    workers: int = Field(0, ge=0, description="Threads of the global clustering step (band sorting, pair checks); 0: one per core.")

    @model_validator(mode="after")
    def _bands_fit_signature(self):
        if (self.bands == 0) != (self.rows == 0):
            raise ValueError("set both dedup.bands and dedup.rows, or leave both at 0 to derive them from the threshold")
        if self.bands * self.rows > self.num_perm:
            raise ValueError(
                f"dedup.bands * dedup.rows = {self.bands * self.rows} exceeds dedup.num_perm = {self.num_perm}: "
                "lower bands or rows, or raise num_perm"
            )
        return self


class CrawlConfig(Section):
    """`corpusforge crawl`: a polite crawler that writes WARC (see corpus/sources/crawl.py)."""

    max_pages: int = Field(
        100,
        ge=0,
        description="Stop after this many pages with a 2xx response, counting those already in the output's WARC "
        "files (0 = no limit).",
    )
    max_depth: int = Field(1, ge=0, description="Links followed from the seeds: 0 fetches the seeds only.")
    same_domain: bool = Field(True, description="Follow links only to the seeds' hosts and their subdomains.")
    rate: float = Field(
        1.0, gt=0, le=100, description="Requests per second per host (robots.txt Crawl-delay can only slow it down)."
    )
    allow_private: bool = Field(
        False, description="Crawl hosts that resolve to private, loopback, link-local or other non-public addresses."
    )
    user_agent: str = Field(
        "", description="User-Agent header; empty: corpusforge/<version> (+https://github.com/corpusforge/corpusforge)."
    )
    max_bytes: int = Field(
        10 << 20, gt=0, description="Largest response body, measured after decompression; larger ones are dropped (`too_large`)."
    )
    timeout_s: float = Field(30.0, gt=0, description="Total time for one request, from connecting to the last body byte.")
    connect_timeout_s: float = Field(10.0, gt=0, description="Time to open a connection (at most `timeout_s`).")
    max_redirects: int = Field(
        5, ge=0, le=20, description="Redirect hops followed from one URL; each hop is checked like a new URL."
    )
    retries: int = Field(3, ge=0, le=10, description="Retries after 429, 502, 503, 504 or a network error.")
    backoff_s: float = Field(1.0, ge=0, description="First retry delay; doubles on each retry unless Retry-After asks for longer.")
    max_retry_after_s: float = Field(
        120.0, ge=0, description="A Retry-After longer than this gives the URL up instead of waiting."
    )
    max_crawl_delay_s: float = Field(
        60.0, ge=0, description="Hosts whose robots.txt Crawl-delay is longer are skipped (`crawl_delay_too_long`)."
    )


class ShardConfig(Section):
    val_fraction: float = Field(0.05, ge=0, lt=1, description="Share of documents in the `val` split (by hash of id).")
