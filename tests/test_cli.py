"""The CLI as a user meets it: clear errors before any work, inspect on a real run, crawl safety."""

import json

import pytest
from typer.testing import CliRunner

from flows.cli import app

runner = CliRunner()


def test_wrong_config_key_fails_before_any_work(tmp_path):
    result = runner.invoke(app, ["run", "--output", str(tmp_path / "r"), "--set", "tokenizer.vocab=5"])
    assert result.exit_code == 2
    assert "did you mean `tokenizer.vocab_size`" in result.output
    assert not (tmp_path / "r").exists()


def test_missing_input_is_named(tmp_path):
    result = runner.invoke(app, ["run", "--input", str(tmp_path / "nope.warc.gz"), "--output", str(tmp_path / "r")])
    assert result.exit_code == 2 and "nope.warc.gz" in result.output


def test_unknown_stage_is_named(tmp_path):
    result = runner.invoke(app, ["run", "--output", str(tmp_path / "r"), "--from", "tokenise"])
    assert result.exit_code == 2 and "unknown stage 'tokenise'" in result.output


@pytest.mark.slow
def test_inspect_why_explains_a_kept_and_a_dropped_document(tiny_run):
    from corpus.shards import read_table

    _, run, _, _ = tiny_run
    kept_id = read_table(sorted((run / "documents").glob("*.arrow"))[0])["id"][0].as_py()
    result = runner.invoke(app, ["inspect", str(run), "--json", "--why", kept_id])
    assert json.loads(result.stdout)["why"]["status"] == "kept"
    rejected = next(t for t in map(read_table, sorted((run / "rejected").rglob("*.arrow"))) if t.num_rows)
    dropped_id, reason = rejected["id"][0].as_py(), rejected["reason"][0].as_py()
    why = json.loads(runner.invoke(app, ["inspect", str(run), "--json", "--why", dropped_id]).stdout)["why"]
    assert why["status"] == "rejected" and why["reason"] == reason


@pytest.mark.slow
def test_crawl_refuses_loopback_without_allow_private(tmp_path):
    result = runner.invoke(app, ["crawl", "http://127.0.0.1:9/", "--output", str(tmp_path / "c"), "--max-pages", "1"])
    assert "refusing 127.0.0.1: loopback address (use --allow-private" in result.output
    assert result.exit_code == 1
