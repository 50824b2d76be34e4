"""Annotation: pinned signal values on literal texts, robustness on hostile texts, real sample pages."""

from __future__ import annotations

import csv
import itertools
import random
from pathlib import Path

import numpy as np
import pytest

import corpus
from corpus.annotate import Annotator, extract_keyphrases, words
from corpus.annotate.keyphrases import noun_chunk_spans, pagerank, rank_keyphrases, tight_hyphens
from corpus.annotate.lang import identify_language
from corpus.annotate.signals import line_signals, ngram_signals, word_signals, words_per_line
from corpus.annotate.words import TokenView, spacy_code, tokenize, tokenizer_for
from corpus.config import AnnotateConfig, FilterConfig
from corpus.document import SIGNAL_NAMES, Document
from corpus.filters import check

SAMPLE_DIR = Path(corpus.__file__).parent / "sample_data"


def annotate(text: str, **cfg) -> Document:
    return Annotator(AnnotateConfig(**cfg)).annotate(Document(id="t", source="test", offset=0, text=text))


# --- line and paragraph signals --------------------------------------------------------------------------------


def test_two_of_four_lines_repeating_an_earlier_one():
    signals = line_signals("alpha\nalpha\nbeta\nbeta")
    assert signals["n_lines"] == 4
    assert signals["dup_line_frac"] == 0.5
    assert signals["dup_line_char_frac"] == pytest.approx(9 / 21)  # "alpha" + "beta" of 21 characters
    assert signals["dup_para_frac"] == 0.0  # one paragraph


def test_paragraphs_are_separated_by_blank_lines_even_with_spaces():
    text = "one two\n\nthree\n  \none two"
    signals = line_signals(text)
    assert signals["dup_para_frac"] == pytest.approx(1 / 3)
    assert signals["dup_para_char_frac"] == pytest.approx(7 / len(text))


def test_bullet_and_ellipsis_lines_ignore_blank_lines():
    signals = line_signals("• first\n- second\nthird...\nfourth…\n\n\n")
    assert signals["n_lines"] == 4
    assert signals["bullet_line_frac"] == 0.5
    assert signals["ellipsis_line_frac"] == 0.5


def test_word_signals_count_hashes_and_ellipses_per_word():
    signals = word_signals("## a... bcdef", np.array([1, 5]), n_letter_words=1, n_stopwords=None)
    assert signals["n_words"] == 2
    assert signals["mean_word_len"] == 3.0
    assert signals["symbol_ratio"] == 1.5  # two '#' and one '...' over two words
    assert signals["alpha_word_frac"] == 0.5
    assert signals["n_stopwords"] is None and signals["stopword_frac"] is None


def test_signals_of_empty_text_are_none_where_undefined():
    signals = {**line_signals(""), **word_signals("", np.array([]), 0, 0), **ngram_signals([], [])}
    assert signals["n_words"] == 0 and signals["n_lines"] == 0
    assert signals["mean_word_len"] is None and signals["dup_line_frac"] is None
    assert signals["top_2gram_char_frac"] is None and signals["dup_5gram_char_frac"] is None


# --- C4 and FineWeb signals ------------------------------------------------------------------------------------

WEB_PAGE = (
    "A sentence that ends well.\n"
    "Short line\n"
    "Please enable JavaScript to view this site.\n"
    "This site uses cookies.\n"
    "The function f(x) returns {x}.\n"
    "Lorem ipsum dolor sit amet.\n"
    "Wait for it...\n"
    "Short line\n"
    'Quote at the end of this line: "yes"\n'
    "See the notes.[1]"
)


def test_c4_and_fineweb_line_signals_of_a_small_page():
    s = line_signals(WEB_PAGE)
    # C4: ellipsis lines do not end a sentence, a trailing citation is cut first; FineWeb: the reverse of both
    assert s["c4_terminal_punct_line_frac"] == 0.7
    assert s["fineweb_line_punct_frac"] == 0.7
    assert s["c4_few_words_line_frac"] == 0.2  # the two "Short line"s
    assert s["c4_javascript_line_frac"] == 0.1 and s["c4_policy_line_frac"] == 0.1
    assert s["c4_lorem_ipsum"] is True and s["c4_curly_brace"] is True
    assert s["fineweb_short_line_frac"] == 0.8  # all but the two lines over 30 characters
    assert s["fineweb_char_dup_frac"] == pytest.approx(10 / (len(WEB_PAGE) - 9))  # the second "Short line"


def test_c4_page_flags_count_only_in_lines_c4_would_keep():
    kept_lines_only = line_signals("lorem ipsum\nfn main() {\nuse {} in javascript code.\nAnd {x} here?")
    assert kept_lines_only["c4_lorem_ipsum"] is False  # no sentence mark
    assert kept_lines_only["c4_curly_brace"] is True  # the last line, not the code or javascript lines
    assert line_signals("fn main() {\nuse {} in javascript code.")["c4_curly_brace"] is False


def test_table_rows_end_with_their_last_cell_and_table_rules_are_no_lines():
    table = "| Name | Note |\n|---|---|\n| Ann | Won the race. |\n| Bob | Lost |\n|:--|--:|"
    s = line_signals(table)
    assert s["n_lines"] == 3
    assert s["fineweb_line_punct_frac"] == pytest.approx(1 / 3)
    assert s["c4_terminal_punct_line_frac"] == pytest.approx(1 / 3)
    assert s["dup_line_frac"] == 0.0


def test_sentence_marks_of_other_scripts_end_lines():
    s = line_signals("这是一个句子。\nهل هذا سؤال؟\nयह वाक्य है।\nno mark here")
    assert s["c4_terminal_punct_line_frac"] == 0.75 and s["fineweb_line_punct_frac"] == 0.75


def test_words_per_line_come_from_the_tokenizer_for_unsegmented_text():
    text = "这是一个句子。\n短\n\n日本語の文です。"
    view = tokenize(tokenizer_for("zh"), text)
    assert words_per_line(text, view.starts[view.is_word]).tolist() == [6, 1, 0, 7]
    assert line_signals(text, view.starts[view.is_word])["c4_few_words_line_frac"] == pytest.approx(1 / 3)
    assert line_signals(text)["c4_few_words_line_frac"] == 1.0  # whitespace alone sees one word per line


def test_short_lines_count_han_kana_and_hangul_as_two_columns():
    assert line_signals("这是一个比较长的中文句子，有二十个字左右。")["fineweb_short_line_frac"] == 0.0  # 21 wide
    assert line_signals("这是一个句子。")["fineweb_short_line_frac"] == 1.0  # 7 wide = 14 columns
    assert line_signals("x" * 30 + "\n" + "x" * 31)["fineweb_short_line_frac"] == 0.5


def test_newline_ratio_is_newlines_per_word():
    signals = word_signals("one two\nthree\n", np.array([3, 3, 5]), 3, None)
    assert signals["fineweb_newline_ratio"] == pytest.approx(2 / 3)


# --- n-gram signals ----------------------------------------------------------------------------------------------


def test_top_ngram_covers_occurrences_of_the_most_frequent_ngram():
    signals = ngram_signals([1, 2, 3, 1, 2, 3, 4], [1] * 7)
    assert signals["top_2gram_char_frac"] == pytest.approx(4 / 7)  # "1 2" and "2 3" tie: the earliest, twice
    assert signals["top_3gram_char_frac"] == pytest.approx(6 / 7)
    assert signals["top_4gram_char_frac"] == 0.0  # no 4-gram occurs twice
    assert signals["dup_5gram_char_frac"] == 0.0


def test_top_ngram_ties_go_to_the_ngram_with_more_characters():
    signals = ngram_signals([1, 2, 3, 1, 2, 3], [1, 1, 5, 1, 1, 5])
    assert signals["top_2gram_char_frac"] == pytest.approx(12 / 14)  # "2 3" (6 chars) beats "1 2" (2 chars)


def test_duplicate_ngrams_count_every_occurrence_and_overlaps_once():
    signals = ngram_signals([1, 2, 3, 4, 5, 9, 1, 2, 3, 4, 5, 8], [1] * 12)
    assert signals["dup_5gram_char_frac"] == pytest.approx(10 / 12)
    assert signals["dup_6gram_char_frac"] == 0.0
    repeated = ngram_signals([7] * 12, [2] * 12)
    assert repeated["dup_10gram_char_frac"] == 1.0 and repeated["top_2gram_char_frac"] == 1.0


def reference_ngram_signals(words: list[int], lengths: list[int]) -> dict:
    """Plain-Python definition the vectorized version must match."""
    total = sum(lengths)
    out = {}
    for n in range(2, 11):
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        counts = {g: grams.count(g) for g in grams}
        covered = [False] * len(words)
        if n <= 4:
            best = max(counts.values(), default=0)
            if best > 1:
                chars = {g: sum(lengths[i : i + n]) for i, g in reversed(list(enumerate(grams)))}
                first = {g: i for i, g in reversed(list(enumerate(grams)))}
                top = max((g for g in counts if counts[g] == best), key=lambda g: (chars[g], -first[g]))
                for i, g in enumerate(grams):
                    if g == top:
                        covered[i : i + n] = [True] * n
            name = f"top_{n}gram_char_frac"
        else:
            for i, g in enumerate(grams):
                if counts[g] > 1:
                    covered[i : i + n] = [True] * n
            name = f"dup_{n}gram_char_frac"
        out[name] = sum(length for length, c in zip(lengths, covered) if c) / total
    return out


@pytest.mark.parametrize("seed", range(30))
def test_vectorized_ngram_signals_match_the_plain_definition(seed):
    rng = random.Random(seed)
    vocabulary = rng.randint(2, 6)
    word_length = [rng.randint(1, 9) for _ in range(vocabulary)]
    words = [rng.randrange(vocabulary) for _ in range(rng.randint(1, 60))]
    lengths = [word_length[w] for w in words]
    assert ngram_signals(words, lengths) == pytest.approx(reference_ngram_signals(words, lengths))


# --- the annotator on literal texts --------------------------------------------------------------------------------


def test_annotator_pins_signals_terms_and_keyphrases_of_a_small_english_text():
    doc = annotate("The cat sat on the mat.\nThe cat sat on the mat.\nA dog barked at the mailman!")
    assert doc.lang == "en" and 0.9 < doc.lang_score <= 1.0
    assert list(doc.signals) == SIGNAL_NAMES
    s = doc.signals
    assert (s["n_words"], s["n_lines"], s["n_stopwords"]) == (18, 3, 9)
    assert s["stopword_frac"] == 0.5
    assert s["mean_word_len"] == pytest.approx(56 / 18)
    assert s["dup_line_frac"] == pytest.approx(1 / 3)
    assert s["dup_line_char_frac"] == pytest.approx(23 / 76)
    assert s["top_2gram_char_frac"] == pytest.approx(12 / 56)  # "the cat", twice
    assert s["dup_5gram_char_frac"] == pytest.approx(34 / 56)  # the repeated sentence
    assert s["dup_7gram_char_frac"] == 0.0
    assert doc.terms == "cat sat mat cat sat mat dog barked mailman"
    assert [p for p, _ in doc.keyphrases] == ["cat sat", "dog barked", "mat", "mailman"]


def test_tokenizer_memory_is_bounded_and_a_rebuilt_tokenizer_annotates_the_same(shared_data, monkeypatch):
    """A worker's tokenizers keep every new string they meet; past MAX_LEXEMES (all languages together) the largest is
    rebuilt, so memory stays flat over a corpus of any size, and the annotations do not depend on when that happens."""
    text = (shared_data / "english-text" / "wikitext-2" / "valid.txt").read_text(encoding="utf-8")
    pages = [text[i : i + 20_000] for i in range(0, 400_000, 20_000)]
    unbounded = [annotate(page, pii=False) for page in pages]
    monkeypatch.setattr(words, "_tokenizers", {})
    monkeypatch.setattr(words, "MAX_LEXEMES", 3_000)
    held, bounded = [], []
    for page in pages:
        bounded.append(annotate(page, pii=False))
        held.append(words.lexemes_held())
    assert max(held) < 3_000 + max(len(set(page.split())) for page in pages)  # at most one page over the bound
    assert min(held) < max(held)  # rebuilt along the way, not only at the start
    assert [(d.signals, d.terms, d.keyphrases) for d in bounded] == [(d.signals, d.terms, d.keyphrases) for d in unbounded]


def test_english_contractions_split_so_their_stop_words_go():
    assert annotate("I don't know.").terms == "know"


def test_keyphrases_keep_hyphenated_words_and_drop_runs_longer_than_max_words():
    doc = annotate(
        "Optimal ship control as a multi-step matrix game\n"
        "The multi-step matrix game model describes safe ship control in a collision situation."
    )
    assert [p for p, _ in doc.keyphrases] == ["multi-step matrix game", "optimal ship control", "collision situation"]
    scores = [s for _, s in doc.keyphrases]
    assert scores == sorted(scores, reverse=True) and all(isinstance(s, float) for s in scores)


def test_extract_keyphrases_is_what_the_annotator_stores():
    text = "Optimal ship control as a multi-step matrix game\nThe multi-step matrix game model describes ship control."
    assert extract_keyphrases(text, "en", top_k=3) == annotate(text, keyphrases_top_k=3).keyphrases
    assert [p for p, _ in extract_keyphrases("Die Katze sitzt auf der Matte und die Katze schläft.", "de")] == [
        "katze sitzt", "katze schläft", "matte",
    ]  # fmt: skip


def test_pii_is_replaced_counted_and_kept_out_of_terms_and_keyphrases():
    text = "Contact Jane at jane.doe@example.com or +44 20 7946 0958.\nServer 192.168.1.20 logs every request."
    doc = annotate(text)
    assert doc.text == "Contact Jane at <EMAIL> or <PHONE>.\nServer <IP> logs every request."
    assert (doc.signals["pii_emails"], doc.signals["pii_ips"], doc.signals["pii_phones"]) == (1, 1, 1)
    assert doc.terms == "contact jane server logs request"
    assert not {"email", "phone", "ip"} & {word for phrase, _ in doc.keyphrases for word in phrase.split()}
    assert doc.signals["n_words"] == 8  # the placeholders are not words


def test_pii_off_keeps_the_text_and_leaves_the_counts_unknown():
    text = "Write to jane.doe@example.com today."
    doc = annotate(text, pii=False)
    assert doc.text == text
    assert (doc.signals["pii_emails"], doc.signals["pii_ips"], doc.signals["pii_phones"]) == (None, None, None)
    only_email = annotate("Mail jane@example.com or call +1 (555) 123-4567.", pii_kinds=["email"])
    assert only_email.text == "Mail <EMAIL> or call +1 (555) 123-4567."
    assert (only_email.signals["pii_emails"], only_email.signals["pii_phones"]) == (1, None)


def test_pii_in_the_title_is_replaced_too():
    doc = Document(id="t", source="test", offset=0, title="Mail jane@example.com", text="Nothing here.")
    doc = Annotator(AnnotateConfig(pii_placeholders={"email": "[email]"})).annotate(doc)
    assert doc.title == "Mail [email]" and doc.signals["pii_emails"] == 1


BIRDS = (
    "Bird migration\nIn autumn, the bird migration brings millions of geese to the lake. The geese rest at the lake "
    "for a week, and the bird watchers at the lake count them."
)


def test_keyphrase_scores_of_a_literal_text_are_positive_ranked_and_bounded():
    """A score is the PageRank mass of the phrase's words (all word scores of a text sum to 1) times a position
    factor in (1, 2]: for phrases that repeat no word, as here, every score lies in (0, 2]."""
    doc = annotate(BIRDS)
    phrases = [p for p, _ in doc.keyphrases]
    scores = [s for _, s in doc.keyphrases]
    assert phrases == [
        "bird migration brings millions", "bird migration", "bird watchers", "geese rest", "lake count", "lake",
        "geese", "autumn", "week",
    ]  # fmt: skip
    assert scores[0] == pytest.approx(0.7957, abs=1e-3)  # the title words, boosted by their position
    assert scores[-1] == pytest.approx(0.1224, abs=1e-3)
    assert all(0 < s <= 2 for s in scores)
    assert scores == sorted(scores, reverse=True)


def test_keyphrases_top_k_zero_disables_them():
    assert annotate("Optimal ship control as a multi-step matrix game", keyphrases_top_k=0).keyphrases == []


HOSTILE_TEXTS = {
    "empty": "",
    "whitespace": "   \n\n\t ",
    "punctuation only": "...!!! ??? ---",
    "one hash": "#",
    "1 MB of Chinese": "中文句子测试，这是一个很长的文本。" * 59_000,
    "1 MB of one Han character": "中" * 1_000_000,
    "200,000 opening brackets": "(" * 200_000,
    "emoji run": "😀" * 50_000,
    "thai": "ภาษาไทยเป็นภาษา " * 2_000,
    "url-like run": "http://x.com/" + "a/" * 100_000,
}
# No word in them: nothing to rank.
WORDLESS_TEXTS = {"empty", "whitespace", "punctuation only", "one hash", "200,000 opening brackets", "emoji run"}


@pytest.mark.parametrize("name", HOSTILE_TEXTS)
def test_annotator_never_raises_and_fills_every_signal(name):
    text = HOSTILE_TEXTS[name]
    doc = annotate(text)
    assert doc.text == text
    assert list(doc.signals) == SIGNAL_NAMES
    assert doc.signals["n_chars"] == len(text)
    if name in WORDLESS_TEXTS:
        assert doc.keyphrases == []


def test_text_without_letters_has_no_language():
    assert identify_language("12 34 ... !!") == ("", 0.0)


# --- tokenizers per language ---------------------------------------------------------------------------------------


def test_langid_labels_map_to_spacy_languages():
    assert spacy_code("no") == "nb"
    assert spacy_code("en") == "en"
    assert spacy_code("fuv") == "xx"  # Fula: no spaCy language
    assert spacy_code("") == "xx"


@pytest.mark.parametrize("lang", ["ko", "ja", "vi", "th", "zh", "xx"])
def test_languages_without_their_segmenter_packages_tokenize(lang):
    doc = tokenizer_for(lang)("한국어 문장입니다. 日本語の文です。Tiếng Việt. ภาษาไทย")
    assert len(doc) > 5


def test_han_and_kana_become_characters_but_latin_words_stay_whole():
    assert [t.text for t in tokenizer_for("zh")("GPT模型很好。Hello world")] == [
        "GPT", "模", "型", "很", "好", "。", "Hello", "world",
    ]  # fmt: skip


def test_long_whitespace_free_runs_keep_the_text_exact():
    text = "abc " + "(" * 100 + " def\n" + "x" * 80 + "  y " + "中文" * 40 + "\n"
    doc = tokenizer_for("en")(text)
    assert doc.text == text
    assert [t.text for t in doc][:3] == ["abc", "(", "("]


# --- keyphrase internals -------------------------------------------------------------------------------------------


def test_pagerank_of_a_star_ranks_the_centre_first_and_sums_to_one():
    sources = np.array([0, 0, 0, 1, 2, 3])
    targets = np.array([1, 2, 3, 0, 0, 0])
    scores = pagerank(sources, targets, 4)
    assert scores.sum() == pytest.approx(1.0)
    assert scores.argmax() == 0 and scores[1] == pytest.approx(scores[3])


def test_only_glued_hyphens_join_content_words():
    is_hyphen = np.array([False, True, False, False, True, False])
    followed_by_space = np.array([False, False, True, True, True, False])  # "multi-step a - b"
    content = np.array([True, False, True, True, False, True])
    assert tight_hyphens(is_hyphen, followed_by_space, content).tolist() == [False, True, False, False, False, False]


def test_noun_chunks_of_a_parsed_doc_are_trimmed_to_content_words():
    import spacy
    from spacy.tokens import Doc

    words = ["the", "new", "model", "works"]
    doc = Doc(
        spacy.blank("en").vocab, words=words, pos=["DET", "ADJ", "NOUN", "VERB"],
        deps=["det", "amod", "nsubj", "ROOT"], heads=[2, 2, 3, 3],
    )  # fmt: skip
    content = np.array([False, True, True, True])
    assert noun_chunk_spans(doc, content) == [(1, 3)]
    view = TokenView(
        doc=doc, text=doc.text, lower=np.arange(4, dtype=np.uint64), lengths=np.array([len(w) for w in words]),
        starts=np.array([t.idx for t in doc]), is_word=np.ones(4, bool), has_letter=np.ones(4, bool),
        followed_by_space=np.ones(4, bool), is_stop=~content, has_stopwords=True,
    )  # fmt: skip
    extra = rank_keyphrases(view, content, np.zeros(4, bool), 5, 1, [(1, 3)])
    assert [p for p, _ in extra] == []  # max_words=1: the 3-word run and the 2-word chunk are both too long


def test_a_trained_pipeline_from_disk_replaces_the_blank_tokenizer(tmp_path):
    import spacy

    spacy.blank("en").to_disk(tmp_path / "pipeline")  # no parser: tokenizer with its exceptions only
    doc = annotate("Dr. Smith doesn't like it.", spacy_model=str(tmp_path / "pipeline"))
    assert doc.terms == "dr. smith like"  # the exception keeps "Dr." whole; the blank path gives "dr smith like"
    assert annotate("Dr. Smith doesn't like it.").terms == "dr smith like"


def test_a_trained_pipeline_is_reloaded_once_it_has_met_max_lexemes_new_strings(tmp_path, monkeypatch):
    import spacy

    spacy.blank("en").to_disk(tmp_path / "pipeline")
    monkeypatch.setattr(words, "MAX_LEXEMES", 50)
    annotator = Annotator(AnnotateConfig(spacy_model=str(tmp_path / "pipeline")))
    first = annotator.tokenizer("en")
    annotator.annotate(Document(id="t", source="test", offset=0, text="Few words."))
    assert annotator.tokenizer("en") is first
    first(" ".join(f"word{i}" for i in range(60)))  # 60 new strings
    assert annotator.tokenizer("en") is not first


# --- real pages from the bundled sample ----------------------------------------------------------------------------

SAMPLE_RECORDS = {  # record id -> language; UTF-8 pages (the sample also has EUC-KR Korean pages)
    "<urn:uuid:8599ffce-a664-54cd-bc1c-1a6312522a20>": "en",  # Wikipedia: Diamond simulant
    "<urn:uuid:b8884bb8-12ea-56c5-951e-630e98156a0c>": "de",  # Debian handbook
    "<urn:uuid:2a0aa690-4eb3-59cd-91e1-b7617254f6b4>": "de",  # Apache httpd docs
    "<urn:uuid:b34de423-1bea-545f-92dd-e61ee0f220e3>": "zh",  # Debian handbook
    "<urn:uuid:e2bc19ae-66aa-534f-98d5-96003faecfb9>": "zh",
    "<urn:uuid:f55cf9d0-68ef-56af-93a7-74022dbd2645>": "ko",  # Wikipedia "in the news" template
    "<urn:uuid:2f4a78d3-3e87-586b-ba29-d23731d383e5>": "ko",  # Rust by example
    "<urn:uuid:cb5d28ca-9fca-5466-8ecb-b0a1943404cc>": "ja",  # Apache httpd docs
    "<urn:uuid:63f6e59a-9fe0-5991-a5ca-b4aa6cfed5d5>": "ja",  # Rust by example
}
WIKIPEDIA_ARTICLE = "<urn:uuid:8599ffce-a664-54cd-bc1c-1a6312522a20>"


@pytest.fixture(scope="module")
def sample_texts(sample_record_texts) -> dict[str, str]:
    """record id -> text extracted with trafilatura from the bundled sample WARC."""
    manifest = {row["record_id"]: row for row in csv.DictReader(open(SAMPLE_DIR / "manifest.tsv"), delimiter="\t")}
    assert all(manifest[r]["lang"] == lang for r, lang in SAMPLE_RECORDS.items())
    return sample_record_texts(SAMPLE_RECORDS)


def test_real_pages_in_five_languages_get_their_language_and_keyphrases(sample_texts):
    annotator = Annotator(AnnotateConfig())
    for record_id, lang in SAMPLE_RECORDS.items():
        doc = annotator.annotate(Document(id=record_id, source="sample", offset=0, text=sample_texts[record_id]))
        assert (doc.lang, record_id) == (lang, record_id)
        assert doc.lang_score > 0.8
        assert doc.signals["n_words"] > 50
        assert doc.keyphrases and doc.terms


def test_english_gopher_defaults_keep_a_real_wikipedia_article(sample_texts):
    doc = annotate(sample_texts[WIKIPEDIA_ARTICLE])
    assert check(doc, FilterConfig(languages=["en"])) is None
    terms = doc.terms.split()
    assert len(terms) > 1000
    assert not {"the", "and", "of", "a", ",", ".", "(", ")"} & set(terms)
    assert all(any(c.isalnum() for c in term) for term in terms)
    assert "diamond simulant" in [p for p, _ in doc.keyphrases[:3]]


def test_filters_would_drop_the_article_for_the_wrong_language(sample_texts):
    doc = annotate(sample_texts[WIKIPEDIA_ARTICLE])
    reason, detail = check(doc, FilterConfig(languages=["de"]))
    assert (reason, detail) == ("language_not_allowed", "lang='en' not in languages=['de']")


def test_tokens_of_each_sample_language_contain_no_whitespace_or_empty_terms(sample_texts):
    for record_id, lang in itertools.islice(SAMPLE_RECORDS.items(), 1, None):
        terms = annotate(sample_texts[record_id]).terms
        assert "" not in terms.split(" "), lang


# --- non-English pages end to end: extraction, language, keyphrases ----------------------------------------------


def test_non_english_pages_keep_their_text_and_get_keyphrases_in_their_language(shared_data):
    """trafilatura-eval pages in other languages (up to 3 per language, by py3langid on the gold text): the gold's
    must-have text survives extraction, the detected language is the gold text's, and every keyphrase is made of
    words of the page's own text."""
    import gzip
    import json

    from corpus.config import ExtractConfig
    from corpus.extract import Extractor

    root = shared_data / "extraction" / "trafilatura-eval"
    evaldata = json.loads((root / "evaldata.json").read_text(encoding="utf-8"))
    chosen: dict[str, list[tuple[str, dict, Path]]] = {}
    for url, item in evaldata.items():
        gold_lang, gold_score = identify_language(" ".join(item["with"]))
        path = next((p for p in (root / d / f"{item['file']}.gz" for d in ("cache", "eval")) if p.exists()), None)
        if gold_lang != "en" and gold_score >= 0.9 and len(" ".join(item["with"])) >= 60 and path is not None:
            if len(chosen.setdefault(gold_lang, [])) < 3:
                chosen[gold_lang].append((url, item, path))
    assert len(chosen) >= 8, sorted(chosen)  # de, es, fr, pl, pt, it, ja, ru, el, ... in this set

    annotator = Annotator(AnnotateConfig())
    same_lang = total = 0
    with Extractor(ExtractConfig()) as extractor:
        for gold_lang, pages in sorted(chosen.items()):
            for url, item, path in pages:
                raw = gzip.decompress(path.read_bytes())
                doc = extractor.extract(Document(id=url, source=str(path), offset=0, url=url, raw=raw, content_type="text/html"))
                assert isinstance(doc, Document), (url, doc)
                doc = annotator.annotate(doc)
                flat = " ".join(doc.text.split())
                kept = sum(" ".join(segment.split()) in flat for segment in item["with"])
                assert kept >= len(item["with"]) / 2, (url, kept, item["with"])
                assert doc.keyphrases, url
                lowered = flat.lower()
                for phrase, _score in doc.keyphrases:
                    assert all(word in lowered for word in phrase.split()), (url, phrase)
                same_lang += doc.lang == gold_lang
                total += 1
    assert same_lang >= 0.9 * total, (same_lang, total)
