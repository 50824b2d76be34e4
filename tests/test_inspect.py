"""`corpusforge inspect` as a user meets it: each view on the tiny run's real data, the --where language (and what it
refuses), --why on a real filtered document and a real duplicate, --verify catching one flipped byte, --json keys."""

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

from corpus.shards import open_batches, read_table, sha256_file
from flows.cli import app
from flows.inspect import WhereError, _Quantiles, parse_where

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, ["inspect", *map(str, args)])


def as_json(*args) -> dict:
    result = invoke(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def table(run: Path, pattern: str, columns=None) -> pa.Table:
    return pa.concat_tables(read_table(p, columns) for p in sorted(run.glob(pattern)))


# --- --where: translated into Arrow expressions, never evaluated as Python -----------------------------------------

DOCS = pa.table(
    {
        "id": ["a", "b", "c", "d"],
        "lang": ["de", "de", "en", None],
        "text": ["Rust und Python", "kurz", "rust in english", "x"],
        "fetched_at": pa.array([0, 1_700_000_000, 1_750_000_000, None], pa.timestamp("s", tz="UTC")),
        "signals": pa.array(
            [
                {"n_words": 600, "n_chars": 3000, "c4_curly_brace": False},
                {"n_words": 20, "n_chars": 80, "c4_curly_brace": True},
                {"n_words": 900, "n_chars": 1800, "c4_curly_brace": False},
                {"n_words": None, "n_chars": 1, "c4_curly_brace": None},
            ]
        ),
        "input_ids": pa.array([[1, 2, 3], [4], [], [5, 6]], pa.large_list(pa.uint16())),
    }
)


def ids(where: str) -> list[str]:
    expr, columns = parse_where(where, DOCS.schema)
    assert columns <= set(DOCS.column_names)
    return DOCS.filter(expr).column("id").to_pylist()


@pytest.mark.parametrize(
    "where, expected",
    [
        ("lang == 'de' and signals.n_words > 500", ["a"]),
        ("lang in ['de', 'fr'] or signals.n_words >= 900", ["a", "b", "c"]),
        ("lang not in ['de']", ["c", "d"]),  # as in Python: None is not in the list
        ("'rust' in text", ["c"]),
        ("icontains(text, 'RUST') and not startswith(text, 'Rust')", ["c"]),
        ("matches(text, '^[a-z]+$')", ["b", "d"]),
        ("len(text) > 10 and len(input_ids) >= 3", ["a"]),
        ("signals.n_words / signals.n_chars > 0.25", ["c"]),  # a ratio, not integer division
        ("-signals.n_words < -700", ["c"]),
        ("signals.c4_curly_brace", ["b"]),
        ("lang is None or lang == None", ["d"]),
        ("lang != None and lower(text) == 'kurz'", ["b"]),
        ("fetched_at > '2024-01-01' and fetched_at < '2025-12-31T00:00:00'", ["c"]),
        ("100 < signals.n_words < 700", ["a"]),
    ],
)
def test_where_translates_to_arrow(where, expected):
    assert ids(where) == expected


@pytest.mark.parametrize(
    "where, names",
    [
        ("__import__('os').system('touch {marker}')", "only named functions can be called"),
        ("open('{marker}', 'w')", "unknown function 'open'"),
        ("text.__class__", "text is a string column and has no field '__class__'"),
        ("signals.__class__.__init__", "signals has no field '__class__'"),
        ("().__class__.__bases__[0].__subclasses__()", "only named functions can be called"),
        ("lang.upper() == 'DE'", "only named functions can be called"),
        ("(lambda: 1)()", "only named functions can be called"),
        ("[c for c in text]", "ListComp is not supported"),
        ("lang[0] == 'd'", "Subscript is not supported"),
        ("__builtins__ == 1", "unknown column '__builtins__'"),
        ("lang == 5", "cannot compare a string with a number"),
        ("contains(text, lang)", "contains() takes a string column and a 'string'"),
        ("lang", "must be a condition"),
        ("lang == 'de' or", "is not a valid expression"),
    ],
)
def test_where_refuses_everything_else_without_running_it(tmp_path, where, names):
    marker = tmp_path / "ran"
    with pytest.raises(WhereError) as err:
        parse_where(where.format(marker=marker), DOCS.schema)
    assert names in str(err.value)
    assert not marker.exists()


def test_where_error_lists_the_columns():
    with pytest.raises(WhereError) as err:
        parse_where("signals.n_wrods > 5", DOCS.schema)
    assert "signals has no field 'n_wrods'" in str(err.value) and "n_words" in str(err.value)
    with pytest.raises(WhereError) as err:
        parse_where("language == 'de'", DOCS.schema)
    assert "columns: id, lang, text, fetched_at, signals.{n_words, n_chars, c4_curly_brace}, input_ids" in str(err.value)


def test_quantiles_are_exact_when_small_and_bounded_when_large():
    small = _Quantiles()
    small.add(pa.array([5, 1, 3, None, 2, 4]))
    assert small.result() == {"documents": 5, "min": 1, "p10": 1, "p25": 2, "p50": 3, "p75": 4, "p90": 5, "max": 5, "mean": 3.0, "exact": True}
    big = _Quantiles(cap=10_000)
    for start in range(0, 200_000, 50_000):
        big.add(pa.array(range(start, start + 50_000)))
    q = big.result()
    assert len(big.values) == 10_000 and not q["exact"]
    assert (q["min"], q["max"], q["documents"]) == (0, 199_999, 200_000)
    assert abs(q["p50"] - 100_000) < 5_000  # a uniform sample of 10,000 estimates the median within a few %


# --- the views on the tiny run ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_summary_funnel_languages_lengths_keyphrases_files(tiny_run):
    _, run, ledger, _ = tiny_run
    data = as_json(run)
    assert data["mode"] == "summary"
    total = ledger["stages"][0]["in"]
    for stage, line in zip(ledger["stages"], data["funnel"]):
        assert (line["stage"], line["in"], line["out"]) == (stage["name"], stage["in"], stage["out"])
        assert {d["reason"]: d["documents"] for d in line["reasons"]} == stage["dropped"]
        for d in line["reasons"]:
            assert d["pct_of_input"] == round(100 * d["documents"] / total, 2)
            assert d["pct_of_stage"] == round(100 * d["documents"] / stage["in"], 2)
    docs = table(run, "documents/*.arrow", ["lang", "signals", "keyphrases"])
    assert data["documents"] == docs.num_rows == sum(lang["documents"] for lang in data["languages"])
    top = data["languages"][0]
    assert top["documents"] == pc.sum(pc.equal(docs["lang"], top["lang"])).as_py()
    words = sorted(docs["signals"].combine_chunks().field("n_words").to_pylist())
    assert data["lengths"]["words"]["min"] == words[0] and data["lengths"]["words"]["max"] == words[-1]
    assert data["lengths"]["words"]["p50"] == words[(len(words) - 1) // 2] or data["lengths"]["words"]["p50"] == words[len(words) // 2]
    lengths = pc.list_value_length(table(run, "tokens/*/*.arrow", ["input_ids"])["input_ids"])
    assert data["lengths"]["tokens"]["total"] == pc.sum(lengths).as_py() == sum(data["tokens"].values())
    assert data["lengths"]["tokens"]["max"] == pc.max(lengths).as_py()
    phrase = data["keyphrases"][0]
    per_doc = [{k["phrase"] for k in row} for row in docs["keyphrases"].to_pylist()]
    assert phrase["documents"] == sum(phrase["phrase"] in s for s in per_doc)
    assert [k["documents"] for k in data["keyphrases"]] == sorted((k["documents"] for k in data["keyphrases"]), reverse=True)
    shard = data["directories"]["documents"]["files"][0]
    assert shard["sha256"] == sha256_file(run / shard["path"]) and shard["rows"] == read_table(run / shard["path"]).num_rows

    text = invoke(run).stdout
    filter_line = next(s for s in data["funnel"] if s["stage"] == "filter")
    reason = filter_line["reasons"][0]
    assert "funnel" in text and "languages" in text and "top keyphrases" in text
    assert any(line.split()[:2] == [reason["reason"], str(reason["documents"])] and f"{reason['pct_of_stage']:.1f}%" in line for line in text.splitlines())
    assert shard["path"] in text and shard["sha256"][:12] in text


@pytest.mark.slow
def test_sample_where_shows_matching_documents_with_signals_and_keyphrases(tiny_run):
    _, run, _, _ = tiny_run
    where = "lang == 'en' and signals.n_words > 300"
    data = as_json(run, "--sample", 3, "--where", where)
    docs = table(run, "documents/*.arrow", ["id", "lang", "signals"]).to_pylist()
    matching = {d["id"] for d in docs if d["lang"] == "en" and d["signals"]["n_words"] > 300}
    assert data["mode"] == "sample" and data["matched"] == len(matching) > 3 and data["rows"] == len(docs)
    assert len(data["sample"]) == 3 and {row["id"] for row in data["sample"]} <= matching
    assert as_json(run, "--sample", 3, "--where", where)["sample"] == data["sample"]  # a fixed seed: the same rows

    text = invoke(run, "--sample", 1, "--where", where).stdout
    assert text.startswith(f"1 of {len(matching)} documents where {where}")
    assert "signals  n_chars=" in text and "keyphrases  " in text and "│ " in text


@pytest.mark.slow
def test_rejected_sample_by_reason(tiny_run):
    _, run, ledger, _ = tiny_run
    dropped = next(s for s in ledger["stages"] if s["name"] == "filter")["dropped"]
    reason, count = max(dropped.items(), key=lambda kv: kv[1])
    data = as_json(run, "--rejected", "--reason", reason, "--sample", 4)
    assert data["source"] == "rejected" and data["matched"] == count
    assert {(r["stage"], r["reason"]) for r in data["sample"]} == {("filter", reason)}
    assert all(r["detail"] for r in data["sample"])
    text = invoke(run, "--reason", f"filter/{reason}", "--sample", 1).stdout
    assert f"REJECTED at filter: {reason}: " in text
    unknown = invoke(run, "--reason", "too_sunny")
    assert unknown.exit_code == 2 and f"filter/{reason}" in unknown.output


@pytest.mark.slow
def test_decode_shows_text_and_token_counts(tiny_run):
    _, run, _, _ = tiny_run
    data = as_json(run, "--decode", "--sample", 2)
    assert data["mode"] == "decode" and len(data["sample"]) == 2
    texts = {r["id"]: r["text"] for r in table(run, "documents/*.arrow", ["id", "text"]).to_pylist()}
    tokens = {r["doc_id"]: r["input_ids"] for r in table(run, "tokens/*/*.arrow").to_pylist()}
    for row in data["sample"]:
        assert row["n_tokens"] == len(tokens[row["doc_id"]]) > 0
        assert row["text"] == texts[row["doc_id"]]  # the tokenizer round-trips the document
    shard = min((run / "tokens" / "train").glob("*.arrow"))
    text = invoke(shard).stdout
    assert ": tokens, " in text and " in all; per document min " in text and "│ " in text
    assert not any(line.strip().isdigit() for line in text.splitlines())  # not one id per line
    first = next(open_batches(shard)).slice(0, 1).to_pylist()[0]
    one = as_json(shard, "--decode", "--where", f"doc_id == '{first['doc_id']}'")
    assert one["matched"] == 1 and one["sample"][0]["n_tokens"] == len(first["input_ids"])
    assert one["sample"][0]["text"] == texts[first["doc_id"]]


@pytest.mark.slow
def test_why_explains_a_filtered_document(tiny_run):
    _, run, _, _ = tiny_run
    rows = table(run, "rejected/filter/*.arrow", ["id", "reason", "detail", "signals", "url", "offset"]).to_pylist()
    row = next(r for r in rows if r["reason"] == "gopher_min_words")  # detail: n_words=12 < min_words=50
    signal = row["detail"].split("=")[0]
    assert signal == "n_words"
    why = as_json(run, "--why", row["id"])["why"]
    assert (why["status"], why["stage"], why["reason"], why["detail"]) == ("rejected", "filter", row["reason"], row["detail"])
    assert (why["url"], why["offset"]) == (row["url"], row["offset"])
    assert [(s["stage"], s["verdict"]) for s in why["steps"]] == [("extract", "ok"), ("filter", "dropped")]
    assert why["steps"][1]["signals"][signal] == row["signals"][signal]

    result = invoke(run, "--why", row["id"])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith(row["id"]) and "{" not in result.stdout  # the answer, not a dict
    assert any(line.split()[:2] == ["filter", "DROPPED"] and row["detail"] in line for line in lines)
    assert lines[-1] == f"=> dropped at filter: {row['reason']}"


@pytest.mark.slow
def test_why_explains_a_duplicate_and_its_kept_document(tiny_run):
    _, run, _, _ = tiny_run
    row = table(run, "rejected/dedup/*.arrow", ["id", "reason", "kept_id"]).to_pylist()[0]
    clusters = {c["doc_id"]: c for c in read_table(run / "dedup" / "clusters.arrow").to_pylist()}
    why = as_json(run, "--why", row["id"])["why"]
    assert (why["status"], why["stage"], why["reason"], why["kept_id"]) == ("rejected", "dedup", row["reason"], row["kept_id"])
    assert why["cluster_id"] == clusters[row["id"]]["cluster_id"]
    assert why["jaccard"] == pytest.approx(clusters[row["id"]]["jaccard"], abs=1e-4)
    text = invoke(run, "--why", row["id"]).stdout
    assert f"kept instead: {row['kept_id']}" in text and "dedup     DROPPED" in text

    kept = as_json(run, "--why", row["kept_id"])["why"]
    assert kept["status"] == "kept" and kept["cluster_id"] == why["cluster_id"]
    assert row["id"] in next(s for s in kept["steps"] if s["stage"] == "dedup")["duplicates"]
    shard = next(s for s in kept["steps"] if s["stage"] == "shard")
    ids = read_table(run / shard["file"], ["id", "split"]).to_pylist()
    assert ids[shard["row"]] == {"id": row["kept_id"], "split": kept["split"]}
    tokens = next(s for s in kept["steps"] if s["stage"] == "tokens")
    assert tokens["n_tokens"] == len(read_table(run / tokens["file"])["input_ids"][tokens["row"]].as_py())
    assert invoke(run, "--why", row["kept_id"]).stdout.splitlines()[-1].startswith(f"=> kept: {shard['file']} (split {kept['split']})")


@pytest.mark.slow
def test_why_unknown_id_exits_1(tiny_run):
    _, run, _, _ = tiny_run
    result = invoke(run, "--why", "urn:uuid:not-a-document")
    assert result.exit_code == 1 and "no document 'urn:uuid:not-a-document'" in result.output
    result = invoke(run, "--why", "urn:uuid:not-a-document", "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["why"]["status"] == "unknown"


@pytest.mark.slow
def test_verify_catches_one_flipped_byte(tiny_run, tmp_path):
    _, run, _, _ = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    ok = invoke(copy, "--verify")
    assert ok.exit_code == 0 and ok.stdout.startswith("verify: every sha256 matches")
    shard = min((copy / "documents").glob("*.arrow"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0x01
    shard.write_bytes(bytes(data))
    failed = invoke(copy, "--verify")
    assert failed.exit_code == 1
    assert f"documents/{shard.name}: sha256 mismatch" in failed.stdout
    result = invoke(copy, "--verify", "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)["verify"]
    assert not report["ok"] and report["problems"] == [f"documents/{shard.name}: sha256 mismatch (file changed or damaged)"]


@pytest.mark.slow
def test_json_keys_are_stable(tiny_run):
    _, run, _, _ = tiny_run
    doc_id = read_table(min((run / "documents").glob("*.arrow")), ["id"])["id"][0].as_py()
    sample_keys = {"mode", "target", "source", "where", "reason", "seed", "rows", "matched", "sample"}
    expected = {
        (): {"mode", "run", "stages", "funnel", "drops", "errors", "outputs", "documents", "languages", "lengths", "lengths_extracted", "tokens", "keyphrases", "keyphrases_exact", "directories", "schemas", "warnings"},
        ("--sample", "1"): sample_keys,
        ("--rejected", "--sample", "1"): sample_keys,
        ("--decode", "--sample", "1"): {"mode", "target", "tokenizer", "where", "seed", "rows", "matched", "sample", "warnings"},
        ("--why", doc_id): {"mode", "run", "why"},
        ("--verify",): {"mode", "run", "verify"},
    }
    for args, keys in expected.items():
        assert set(as_json(run, *args)) == keys, args
    assert set(as_json(run, "--verify")["verify"]) == {"ok", "stages", "files", "bytes", "problems"}
    why = as_json(run, "--why", doc_id)["why"]
    assert {"id", "status", "steps", "url", "source", "offset", "shard", "split", "n_tokens"} <= set(why)
    shard = as_json(min((run / "documents").glob("*.arrow")))
    assert set(shard) == {"mode", "shard", "run", "kind", "rows", "bytes", "sha256", "manifest", "schema", "metadata", "stats", "sample", "warnings"}
    assert (shard["kind"], shard["manifest"]) == ("documents", "ok")


@pytest.mark.slow
def test_user_errors_are_one_line_with_exit_2(tiny_run):
    _, run, _, _ = tiny_run
    cases = {
        ("--why", "x", "--verify"): "--why and --verify are separate views",
        ("--where", "__import__('os')"): "--where: unknown function '__import__'",
        ("--where", "signals.n_wrods > 1"): "signals has no field 'n_wrods'",
        ("--decode", "--rejected"): "--decode and --rejected are separate views",
    }
    for args, message in cases.items():
        result = invoke(run, *args)
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    assert "is a stage folder of the run" in invoke(run / "documents").output


@pytest.mark.slow
def test_report_option_says_clearly_when_the_writer_is_missing(tiny_run, monkeypatch, tmp_path):
    import sys

    _, run, _, _ = tiny_run
    monkeypatch.setitem(sys.modules, "flows.report", None)  # as if flows/report.py were absent
    result = invoke(run, "--report", tmp_path / "r.html")
    assert result.exit_code == 2 and "no report writer" in result.output
    assert not (tmp_path / "r.html").exists()
