"""Every file of ../shared/data/malformed/ through the real path of one extract unit, each in its own bounded process.

For each file: `corpus.sources.plan_units` and `corpus.stages.extract.extract_unit` with the default configs (no
Prefect), in a child process with a wall-clock bound, then (hostile_run.assert_sound) the run ended normally, peak
RSS stayed under 2 GB, every record was kept or rejected with a specific reason and the ledger balances, damage is
reported with path and offset; and (EXPECTED below) which records came through, which reasons the rest got, where
damage was reported and that the records after it were found again where the format allows.

tests/test_sources.py, tests/test_warc.py and tests/test_extract.py check the readers and the extractor on these
files in-process, record by record; this suite checks the whole unit under bounds.
"""

from __future__ import annotations

import os
import sys
from collections import Counter

import pytest
from hostile_run import Runner, Runs, assert_sound, selected_params, shared_data_dir

from corpus.config import ExtractConfig

MALFORMED = shared_data_dir() / "malformed"
NAMES = sorted(p.name for p in MALFORMED.iterdir() if p.is_file()) if MALFORMED.is_dir() else []
WALL_S = 180.0  # per file; the slowest takes about 7 s alone (annotating 6000 records)
TIMEOUT_S = ExtractConfig().timeout_s

W01 = [  # the four responses of w01_valid_reference.warc.gz, which the w0x/w1x files damage
    "urn:uuid:f149f542-e935-b870-1734-6b4501eaf614",
    "urn:uuid:08f0ebd4-950c-ddd9-ce97-b5bdf073eed1",
    "urn:uuid:19322fed-157c-f9c6-b16e-2d5cabeb9592",
    "urn:uuid:04762a22-3c9f-90c9-5ac9-6628c4381836",
]


def expect(kept: int = 0, *, rejected: dict | None = None, errors=(), kept_ids=None, ingest=None, check=None, why=""):
    """kept: documents written; rejected: {"stage:reason": n}, exactly; errors: offsets that must be among the
    reported damage (None: any, [] with nothing else: no damage may be reported); kept_ids: the kept documents'
    ids, in order; ingest: IngestConfig overrides; check: a function of the Outcome with more assertions."""
    return {
        "kept": kept,
        "rejected": rejected or {},
        "errors": None if errors is None else list(errors),
        "kept_ids": kept_ids,
        "ingest": ingest or {},
        "check": check,
        "why": why,
    }


def _texts_clean_of(*needles):
    def check(outcome):
        for row in outcome.kept:
            for needle in needles:
                assert needle not in row["text_head"] + row["text_tail"], (needle, row["text_head"][:100])

    return check


def _rows_after_the_lost_group_kept(outcome):
    offsets = sorted(row["offset"] for row in outcome.kept)
    assert offsets == list(range(500)) + list(range(1000, 2000))  # row group 1 (rows 500-999) lost, 2 and 3 read


EXPECTED = {
    # Arrow IPC: a stream cannot be resynchronised, so reading stops at the first unreadable batch
    "a01_valid_reference.arrow": expect(2000),
    "a02_truncated_file.arrow": expect(1000, errors=[231654, 191456], why="footer gone: read as a stream"),
    "a03_valid_stream.arrows": expect(2000),
    "a04_truncated_stream.arrows": expect(1000, errors=[191448]),
    "a05_empty.arrow": expect(errors=[0]),
    "a06_wrong_schema.arrow": expect(errors=[0]),
    # flipped bytes in the id column pass validate(full=True): only the manifest's checksum of our own shards
    # would see them; the records are read as they are
    "a07_corrupt_body.arrow": expect(2000),
    # decompression bombs: capped while decompressing
    "b03_http_content_encoding_bomb.warc.gz": expect(rejected={"ingest:too_large": 1}),
    # gzip inside gzip is no format we read (see test_a_nested_gzip_bomb_is_refused_unless_named_html); named HTML,
    # one layer is undone and the inner gzip is a binary payload, never decompressed further
    "b05_nested_gzip_bomb.html.gz.gz": expect(rejected={"extract:binary_payload": 1}, ingest={"format": "html"}),
    # charsets: decoded, kept (tests/test_extract.py checks the decoded text)
    "h01_invalid_utf8.html": expect(1),
    "h02_cp1252_declared_utf8.html": expect(1),
    "h03_utf8_declared_latin1.html": expect(1),
    "h04_mixed_encodings.html": expect(1),
    # the utf-7 label is refused: "+ADw-script+AD4-" stays those characters, never becomes "<script>"
    "h05_bogus_and_utf7_charset.html": expect(1, check=_texts_clean_of("<script", "alert(1)<")),
    "h06_utf16le_bom.html": expect(1),
    # lxml builds nothing below depth 256: the text of these pages is all deeper
    "h08_nested_div_100k.html": expect(rejected={"extract:too_deeply_nested": 1}),
    "h09_nested_unclosed_100k.html": expect(rejected={"extract:too_deeply_nested": 1}),
    "h11_only_scripts_styles.html": expect(rejected={"extract:empty_extraction": 1}),
    "h12_png_labelled_html.html": expect(rejected={"extract:binary_payload": 1}),
    "h13_pdf_labelled_html.html": expect(rejected={"extract:binary_payload": 1}),
    "h14_empty.html": expect(rejected={"extract:empty_extraction": 1}),
    "h15_whitespace_only.html": expect(rejected={"extract:empty_extraction": 1}),
    "h16_nul_bytes.html": expect(1),  # assert_sound: no control character in kept text
    "h17_zero_width_control.html": expect(1),
    "h18_rtl_cjk.html": expect(1),
    # the DOCTYPE's entity declarations are dropped before parsing: the text is kept, nothing expanded or fetched
    "h19_billion_laughs.html": expect(1, check=_texts_clean_of("lollol")),
    "h20_xxe_external_entity.html": expect(1, check=_texts_clean_of("root:", "/bin/")),
    # JSON Lines, line by line with the standard library (pyarrow's reader segfaults on j06)
    "j01_broken_line_missing_field.jsonl": expect(
        993,
        rejected={"ingest:malformed_json": 1, "ingest:missing_field": 2, "ingest:wrong_type": 3},
        errors=[221546],
    ),
    "j02_lone_surrogate_escapes.jsonl": expect(100),
    "j03_empty.jsonl": expect(errors=[0]),
    "j04_blank_lines_only.jsonl": expect(errors=[0]),
    "j05_bom_crlf_trailing_garbage.jsonl": expect(50, rejected={"ingest:malformed_json": 1}, errors=[20193]),
    "j06_deep_nesting_100k.jsonl": expect(1, rejected={"ingest:malformed_json": 1}, errors=[24]),
    "j07_invalid_utf8.jsonl": expect(20, errors=[4098]),
    "j08_type_drift.jsonl": expect(6000),
    # Parquet: an unreadable row group is skipped, the next ones are read (each has its offsets in the footer)
    "p01_valid_reference.parquet": expect(2000),
    "p01b_valid_with_page_checksums.parquet": expect(2000),
    "p02_wrong_schema.parquet": expect(errors=[0]),
    "p03_truncated_footer.parquet": expect(errors=[0]),
    "p04_truncated_half.parquet": expect(errors=[0]),
    "p05_corrupt_page_no_checksum.parquet": expect(1500, errors=[37716], check=_rows_after_the_lost_group_kept),
    "p06_corrupt_page_with_checksum.parquet": expect(1500, errors=[37752], check=_rows_after_the_lost_group_kept),
    "p07_bad_magic.parquet": expect(2000, errors=[0]),
    "p08_empty.parquet": expect(errors=[0]),
    "p09_zero_rows.parquet": expect(),
    "p10_footer_len_huge.parquet": expect(errors=[0]),
    # text files
    "t01_nul_bytes.txt": expect(1),
    "t02_wtf8_lone_surrogates.txt": expect(1),
    "t06_zero_width_control.txt": expect(1),
    "t07_rtl_cjk.txt": expect(1),
    "t08_empty.txt": expect(rejected={"extract:empty_extraction": 1}),
    "t09_combining_marks_100k.txt": expect(1),
    # WARC: damage reported, reading resumes at the next gzip member or WARC header
    "w01_valid_reference.warc.gz": expect(4, kept_ids=W01),
    "w01b_valid_reference.warc": expect(4, kept_ids=W01),
    "w02_truncated_mid_member.warc.gz": expect(
        2, rejected={"ingest:truncated_record": 1}, errors=[2637], kept_ids=W01[:2]
    ),
    "w03_truncated_mid_gzip_header.warc.gz": expect(2, errors=[2637], kept_ids=W01[:2]),
    "w04_truncated_uncompressed.warc": expect(
        3, rejected={"ingest:truncated_record": 1}, errors=[8970], kept_ids=W01[:3]
    ),
    # a Content-Length past the record: the record is truncated, the one inside the claimed span is found again
    "w05_content_length_too_big.warc": expect(
        1, rejected={"ingest:truncated_record": 1}, errors=[0], kept_ids=["urn:uuid:7bf78a4d-9f8f-5ffb-a5f8-0a0a58994953"]
    ),
    # a Content-Length short of the record: its block digest no longer matches; the bytes left over are reported
    "w06_content_length_too_small.warc": expect(
        1,
        rejected={"ingest:digest_mismatch": 1},
        errors=[0, 1615],
        kept_ids=["urn:uuid:d868c2cf-1d4a-2b12-b6a2-0bb02edf0743"],
    ),
    "w07_content_length_garbage.warc": expect(rejected={"ingest:malformed_record": 3}, errors=[0, 2873, 5685]),
    "w08_content_length_too_big.warc.gz": expect(1, rejected={"ingest:truncated_record": 1}, errors=[0]),
    "w09_bad_digests.warc.gz": expect(rejected={"ingest:digest_mismatch": 2}, errors=[0, 1145]),
    # a corrupt member in the middle: the records after it are found again
    "w10_corrupt_deflate_member.warc.gz": expect(3, errors=[1413], kept_ids=[W01[0], W01[2], W01[3]]),
    "w11_garbage_between_records.warc.gz": expect(2, errors=[215], kept_ids=W01[:2]),
    "w12_binary_labelled_html.warc.gz": expect(1, rejected={"ingest:binary_payload": 2}),
    "w13_empty.warc.gz": expect(errors=[0]),
    "w14_not_a_warc.warc.gz": expect(errors=[0]),
    "w16_weird_target_uris.warc.gz": expect(4, rejected={"ingest:unsupported_uri_scheme": 3}),
}


@pytest.fixture(scope="module")
def runs(request, tmp_path_factory):
    """The outcome of each selected file's run; all are started at the first request, a few at a time."""
    root = tmp_path_factory.mktemp("malformed")

    def job(name):
        ingest = EXPECTED[name]["ingest"]
        return lambda runner: runner.submit(MALFORMED / name, root / name, wall_s=WALL_S, ingest=ingest)

    names = [name for name in NAMES if name in EXPECTED]
    with Runner() as runner:
        yield Runs(runner, {name: job(name) for name in names}, [n for n in selected_params(request, "name") if n in names])


def test_every_malformed_file_has_an_expected_outcome(malformed_dir):
    assert set(NAMES) == set(EXPECTED), "a file was added or removed: say what it must give"


@pytest.mark.parametrize(
    "name", NAMES or [pytest.param("-", marks=pytest.mark.skip(reason=f"the malformed inputs are not at {MALFORMED}"))]
)
def test_malformed_file(name, runs, malformed_dir):
    if name not in EXPECTED:
        pytest.fail(f"{name}: no expected outcome in EXPECTED")
    path = malformed_dir / name
    want = EXPECTED[name]
    outcome = runs.get(name)
    print(f"{name}: {outcome.summary()}")
    assert_sound(outcome, path, timeout_s=TIMEOUT_S)
    assert len(outcome.kept) == want["kept"], outcome.summary()
    assert dict(outcome.reasons) == want["rejected"], outcome.summary()
    offsets = [e["offset"] for e in outcome.errors]
    if want["errors"] == []:
        assert offsets == [], outcome.errors
    elif want["errors"] is not None:
        missing = Counter(want["errors"]) - Counter(offsets)
        assert not missing, f"damage not reported at {sorted(missing)}: {outcome.errors}"
    if want["kept_ids"] is not None:
        assert [row["id"] for row in outcome.kept] == want["kept_ids"]
    if want["check"] is not None:
        want["check"](outcome)


def test_a_nested_gzip_bomb_is_refused_unless_named_html(malformed_dir, tmp_path):
    """gzip inside gzip names no format: named on the command line it is refused before anything is read, inside
    a folder it is listed as not read; only `ingest.format: html` reads it (one layer, capped: see EXPECTED)."""
    from corpus.config import IngestConfig
    from corpus.sources import plan_units, unread_inputs

    bomb = malformed_dir / "b05_nested_gzip_bomb.html.gz.gz"
    with pytest.raises(ValueError, match="unknown format"):
        plan_units([str(bomb)], IngestConfig())
    folder = tmp_path / "in"
    folder.mkdir()
    os.symlink(bomb, folder / bomb.name)
    assert plan_units([str(folder)], IngestConfig()) == []
    assert unread_inputs([str(folder)]) == [str(folder / bomb.name)]


_GRANDCHILD = """
import multiprocessing, sys

def hog():
    block = bytearray(600 << 20)  # touched: resident
    block[:: 4096] = b"x" * len(block[:: 4096])

if __name__ == "__main__":
    p = multiprocessing.get_context("spawn").Process(target=hog)
    p.start()
    p.join()
"""


def test_the_harness_sees_the_memory_of_a_spawned_grandchild(tmp_path):
    """Peak RSS comes from wait4's rusage, which covers the descendants the child reaped: the extraction child an
    Extractor spawns counts, as a 600 MB grandchild shows."""
    from hostile_run import run_process

    script = tmp_path / "hog.py"
    script.write_text(_GRANDCHILD)
    returncode, _, peak, _ = run_process([sys.executable, str(script)], tmp_path, wall_s=60)
    assert returncode == 0 and peak >= 600 << 20
