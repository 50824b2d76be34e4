"""Word segmentation per language: spaCy blank tokenizers, tuned for throughput, with their stop-word lists.

One `LanguageTokenizer` per spaCy language, built lazily and cached by `tokenizer_for`. These choices differ from
`spacy.blank(lang)` as is, each measured on the bundled sample (DESIGN.md section 9 has the library behaviour):

- Tokenizer exceptions (``rules``) are dropped. Any exception that matches in a document stops spaCy from caching
  the rest of that document's chunks (spaCy issue #1250), which made the blank English tokenizer about 2x slower on
  web text; the only exceptions that matter for stop words, English ``n't``, come back as a suffix pattern.
- The chunk cache grows to `CACHE_CHUNKS` entries: spaCy stops caching at 10,000 distinct chunks, which web text
  fills within a few hundred pages.
- Languages whose segmenter needs a package we do not ship (ko: mecab-ko, ja: SudachiPy, vi: pyvi, th: pythainlp)
  keep their stop words and punctuation rules with the rule-based tokenizer; zh and ja split every Han/kana
  character into a token of its own (spaCy's own zh default does that too, but also splits Latin words into letters).
- Whitespace-free runs longer than `MAX_SPACY_CHUNK` characters bypass spaCy's affix splitting (see below).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# py3langid labels whose closest spaCy language has another code; labels spaCy lacks fall back to "xx".
LANGID_TO_SPACY = {
    "no": "nb",
    "bs": "hr",
    "ku": "kmr",
    "wuu": "zh",
    "yue": "zh",
    "arz": "ar",
    "ary": "ar",
    "hbo": "he",
}
NEEDS_RULE_TOKENIZER = {"ko", "ja", "vi", "th", "zh"}
CHARACTER_SEGMENTED = {"zh", "ja"}
# Whitespace chunks of these scripts are phrases, not words: a stop-word list cannot match them.
UNSEGMENTED_WITHOUT_STOPWORDS = {"th"}

CACHE_CHUNKS = 500_000
# A tokenizer keeps every new string it meets (a lexeme, and its chunk in the cache): a long-lived worker's memory would
# grow with the corpus, about 0.7 KB a lexeme. Past this many lexemes, all languages of the process together, the
# largest tokenizer is rebuilt: memory stays flat, for about 7% more tokenization time on 1,250 distinct web pages.
MAX_LEXEMES = 100_000

HAN_AND_KANA = (
    r"[\u3000-\u303f\u3040-\u309f\u30a0-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
    r"\U00020000-\U0002fa1f]"
)
ENGLISH_NOT_SUFFIX = r"(?<=[A-Za-z])[nN]['’][tT]"

# spaCy strips prefixes and suffixes from a whitespace-free chunk one at a time, copying and re-searching the rest:
# quadratic in the chunk's length (a 1,000-character run of "(" takes 0.2 s, 200,000 of them never finish). Longer
# runs (CJK sentences, URLs, base64, junk) are split by `_RUN_PIECE` instead: Han/kana characters, letter/digit
# runs and single other characters, as spaCy would split them but for URL and abbreviation special cases.
MAX_SPACY_CHUNK = 50
_LONG_RUN = re.compile(r"\S{%d,}" % (MAX_SPACY_CHUNK + 1))
_RUN_PIECE = re.compile(HAN_AND_KANA + r"|(?:(?!" + HAN_AND_KANA + r")[^\W_])+|\S")

_WORD_CHAR = re.compile(r"[^\W_]")
_LETTER = re.compile(r"[^\W\d_]")


def is_word(text: str) -> bool:
    """A word has at least one letter or digit; punctuation, symbols and whitespace are not words."""
    return _WORD_CHAR.search(text) is not None


def has_letter(text: str) -> bool:
    return _LETTER.search(text) is not None


@lru_cache(maxsize=None)
def spacy_code(lang: str) -> str:
    """spaCy language code for a py3langid label; "xx" (multi-language) when spaCy has none."""
    import spacy.util

    code = LANGID_TO_SPACY.get(lang, lang)
    if not code:
        return "xx"
    try:
        spacy.util.get_lang_class(code)
    except ImportError:
        return "xx"
    return code


@dataclass
class LanguageTokenizer:
    """A spaCy vocab and tokenizer for one language, plus the lexeme flags the annotator reads in bulk."""

    code: str
    nlp: object  # spacy.Language
    tokenizer: object  # spacy.tokenizer.Tokenizer
    word_flag: int
    letter_flag: int
    has_stopwords: bool
    trained: bool = False  # run the pipeline's components (tagger, parser...) after tokenizing

    def __call__(self, text: str):
        """A spaCy Doc of the text (`doc.text == text`), tokenized once."""
        doc = self._tokenize_with_long_runs(text) if _LONG_RUN.search(text) else self.tokenizer(text)
        return self.nlp(doc) if self.trained else doc

    def _tokenize_with_long_runs(self, text: str):
        from spacy.tokens import Doc

        words: list[str] = []
        spaces: list[bool] = []

        def add_spacy_tokens(segment: str) -> None:
            for token in self.tokenizer(segment):
                words.append(token.text)
                spaces.append(bool(token.whitespace_))

        position = 0
        for run in _LONG_RUN.finditer(text):
            if run.start() > position:
                add_spacy_tokens(text[position : run.start()])
            pieces = _RUN_PIECE.findall(run.group())
            words.extend(pieces)
            spaces.extend([False] * len(pieces))
            position = run.end()
            # one plain space after a token is its trailing whitespace, as spaCy records it
            if text.startswith(" ", position):
                spaces[-1] = True
                position += 1
        if position < len(text):
            add_spacy_tokens(text[position:])
        return Doc(self.nlp.vocab, words=words, spaces=spaces)


def build_tokenizer(code: str) -> LanguageTokenizer:
    import spacy
    from spacy.attrs import IS_STOP, LOWER
    from spacy.tokenizer import Tokenizer
    from spacy.util import compile_infix_regex, compile_suffix_regex

    config = {"nlp": {"tokenizer": {"@tokenizers": "spacy.Tokenizer.v1"}}} if code in NEEDS_RULE_TOKENIZER else {}
    nlp = spacy.blank(code, config=config)
    defaults, base = nlp.Defaults, nlp.tokenizer
    infix_finditer, suffix_search = base.infix_finditer, base.suffix_search
    if code in CHARACTER_SEGMENTED:
        infix_finditer = compile_infix_regex(list(defaults.infixes or ()) + [HAN_AND_KANA]).finditer
    if code == "en":
        suffix_search = compile_suffix_regex(list(defaults.suffixes or ()) + [ENGLISH_NOT_SUFFIX]).search
    tokenizer = Tokenizer(
        nlp.vocab,
        rules=None,
        prefix_search=base.prefix_search,
        suffix_search=suffix_search,
        infix_finditer=infix_finditer,
        token_match=base.token_match,
        url_match=base.url_match,
        max_cache_size=CACHE_CHUNKS,
    )
    word_flag, letter_flag = nlp.vocab.add_flag(is_word), nlp.vocab.add_flag(has_letter)
    # spaCy computes ~25 attributes in Python for every new lexeme, the largest cost on unseen text; this private
    # vocab serves only the annotator, which reads LOWER, IS_STOP and its two flags (LENGTH needs no getter).
    needed = {LOWER, IS_STOP, word_flag, letter_flag}
    nlp.vocab.lex_attr_getters = {k: v for k, v in nlp.vocab.lex_attr_getters.items() if k in needed}
    return LanguageTokenizer(
        code=code,
        nlp=nlp,
        tokenizer=tokenizer,
        word_flag=word_flag,
        letter_flag=letter_flag,
        has_stopwords=bool(defaults.stop_words) and code not in UNSEGMENTED_WITHOUT_STOPWORDS,
    )


_tokenizers: dict[str, LanguageTokenizer] = {}  # this process's, by spaCy code


def lexemes_held() -> int:
    """Lexemes in the vocabularies of this process's tokenizers, all languages together."""
    return sum(len(tok.nlp.vocab) for tok in _tokenizers.values())


def tokenizer_for(lang: str) -> LanguageTokenizer:
    """This process's tokenizer for a py3langid label. While the tokenizers hold more than `MAX_LEXEMES`, the largest
    is dropped (and built again when next asked for): the others keep their warm caches."""
    while lexemes_held() > MAX_LEXEMES:
        del _tokenizers[max(_tokenizers, key=lambda code: len(_tokenizers[code].nlp.vocab))]
    code = spacy_code(lang)
    tok = _tokenizers.get(code)
    if tok is None:
        tok = _tokenizers[code] = build_tokenizer(code)
    return tok


def load_trained_pipeline(name: str) -> LanguageTokenizer:
    """An installed spaCy pipeline (name or path) in place of the blank tokenizer of its language.

    Its tokenizer keeps its own exceptions; texts up to two million characters are accepted (`extract.max_doc_chars`
    caps documents at one million by default), at the memory cost spaCy warns about for parsers.
    """
    import spacy

    nlp = spacy.load(name)
    nlp.max_length = max(nlp.max_length, 2_000_000)
    return LanguageTokenizer(
        code=nlp.lang,
        nlp=nlp,
        tokenizer=nlp.tokenizer,
        word_flag=nlp.vocab.add_flag(is_word),
        letter_flag=nlp.vocab.add_flag(has_letter),
        has_stopwords=bool(nlp.Defaults.stop_words) and nlp.lang not in UNSEGMENTED_WITHOUT_STOPWORDS,
        trained=True,
    )


@dataclass
class TokenView:
    """One tokenized document as flat per-token arrays, read from the spaCy Doc in one `Doc.to_array` call.

    Every annotation (signals, `terms`, keyphrases) reads these instead of iterating tokens in Python.
    """

    doc: object  # the spaCy Doc
    text: str  # the text it was made of (Doc.text rebuilds it from the tokens on every call)
    lower: np.ndarray  # uint64: hash of the lowercase form, resolved by doc.vocab.strings
    lengths: np.ndarray  # int64: characters
    starts: np.ndarray  # int64: character offset in the text
    is_word: np.ndarray  # bool: has a letter or digit (punctuation, symbols and whitespace are not words)
    has_letter: np.ndarray  # bool
    followed_by_space: np.ndarray  # bool
    is_stop: np.ndarray  # bool: all False for a language without a usable stop-word list
    has_stopwords: bool

    def __len__(self) -> int:
        return len(self.lower)

    def drop_spans(self, spans: list[tuple[int, int]]) -> None:
        """Tokens inside these character spans (PII placeholders) stop being words or stop words: they stay in the
        text but never reach `terms`, keyphrases or word-based signals."""
        if not spans or not len(self.starts):
            return
        bounds = np.asarray(spans, dtype=np.int64)
        # the last span starting at or before each token; the token is inside when it also ends before its end
        span_of_token = np.searchsorted(bounds[:, 0], self.starts, side="right") - 1
        inside = (span_of_token >= 0) & (self.starts < bounds[np.maximum(span_of_token, 0), 1])
        self.is_word &= ~inside
        self.has_letter &= ~inside


def tokenize(tokenizer: LanguageTokenizer, text: str) -> TokenView:
    """The text tokenized once by the language's tokenizer, as arrays (see `TokenView`)."""
    from spacy.attrs import IDX, IS_STOP, LENGTH, LOWER, SPACY

    doc = tokenizer(text)
    columns = doc.to_array([LOWER, LENGTH, IDX, IS_STOP, tokenizer.word_flag, tokenizer.letter_flag, SPACY])
    n = len(doc)
    return TokenView(
        doc=doc,
        text=text,
        lower=columns[:, 0],
        lengths=columns[:, 1].astype(np.int64),
        starts=columns[:, 2].astype(np.int64),
        is_word=columns[:, 4] == 1,
        has_letter=columns[:, 5] == 1,
        followed_by_space=columns[:, 6] == 1,
        is_stop=(columns[:, 3] == 1) if tokenizer.has_stopwords else np.zeros(n, dtype=bool),
        has_stopwords=tokenizer.has_stopwords,
    )
