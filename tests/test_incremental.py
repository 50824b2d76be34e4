"""Incremental dedup through the whole flow: a later run drops its copies of documents an earlier run kept."""

import json
import random
import shutil
import time
from pathlib import Path

import pytest

from corpus.manifest import read_manifest, verify
from corpus.shards import read_table
from flows.config import load_config
from flows.pipeline import run_pipeline

pytestmark = pytest.mark.slow


def _paragraphs(shared_data, n):
    text = (shared_data / "english-text" / "gutenberg" / "pg2701-moby-dick.txt").read_text(encoding="utf-8-sig")
    paras = [" ".join(p.split()) for p in text.split("\n\n")]
    return [p for p in paras if len(p.split()) >= 60][:n]


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _edit(text, rng):
    words = text.split()
    i = rng.randrange(len(words))
    return " ".join(words[:i] + ["indeed"] + words[i:])  # one inserted word: Jaccard stays far above 0.8


def test_later_run_drops_new_copies_of_old_documents(shared_data, tmp_path):
    rng = random.Random(7)
    paras = _paragraphs(shared_data, 50)
    old = [{"id": f"old-{i}", "text": p, "url": f"https://old.example/{i}"} for i, p in enumerate(paras[:30])]
    new = (
        [{"id": f"copy-{i}", "text": old[i]["text"], "url": f"https://new.example/c{i}"} for i in range(8)]
        + [{"id": f"near-{i}", "text": _edit(old[10 + i]["text"], rng), "url": f"https://new.example/n{i}"} for i in range(5)]
        + [{"id": f"fresh-{i}", "text": p, "url": f"https://new.example/f{i}"} for i, p in enumerate(paras[30:50])]
    )
    _write_jsonl(tmp_path / "old.jsonl", old)
    _write_jsonl(tmp_path / "new.jsonl", new)
    index = tmp_path / "dedup-index"
    common = {"filter": {"enabled": False}, "dedup": {"index_path": str(index)}, "runner": {"workers": 2}}

    def run(name):
        cfg = load_config(preset="tiny", environ={}, overrides={**common, "input": [str(tmp_path / f"{name}.jsonl")], "output": str(tmp_path / name)})
        return run_pipeline(cfg, to_stage="shard")

    first = run("old")
    assert {s["name"]: s for s in first["stages"]}["dedup"]["dropped"] == {}
    old_documents = (tmp_path / "old" / "documents" / "manifest.json").read_text()

    second = run("new")
    dedup = {s["name"]: s for s in second["stages"]}["dedup"]
    assert dedup["in"] == 33 and dedup["out"] == 20
    assert dedup["dropped"] == {"exact_duplicate": 8, "near_duplicate": 5}
    rejected = read_table(next((tmp_path / "new" / "rejected" / "dedup").glob("*.arrow"))).to_pylist()
    kept_of = {r["id"]: r["kept_id"] for r in rejected}
    assert kept_of == {**{f"copy-{i}": f"old-{i}" for i in range(8)}, **{f"near-{i}": f"old-{10 + i}" for i in range(5)}}
    # the old run is untouched
    assert (tmp_path / "old" / "documents" / "manifest.json").read_text() == old_documents
    assert verify(tmp_path / "old" / "documents") == []


def _files(root: Path) -> dict[str, tuple[int, int]]:
    """path -> (size, mtime_ns) of every file under root: what a rerun must leave as it was."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*")) if p.is_file()}


def test_scheduled_reruns_skip_finished_work_and_a_new_warc_is_the_only_file_extracted(shared_data, tmp_path):
    crawls = shared_data / "warc" / "real-crawls"
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    for name in ("ukwa-IAH-urls-wget.warc.gz", "dolma-wget-2024-sample-0000.warc.gz"):
        shutil.copy(crawls / name, inbox)
    cfg = load_config(
        preset="tiny",
        environ={},
        overrides={
            "input": [str(inbox)],
            "output": str(tmp_path / "run"),
            "runner": {"workers": 2},
            "ingest": {"max_records": 0},
            "tokenizer": {"retrain": False},  # a scheduled run keeps the tokenizer, so token ids stay comparable
        },
    )
    start = time.time()
    first = run_pipeline(cfg, to_stage="tokens")
    first_seconds = time.time() - start
    outputs = {name: _files(tmp_path / "run" / name) for name in ("extracted", "documents", "tokens")}
    first_parts = {p.stat().st_ino for p in (tmp_path / "run" / "extracted").glob("part-*.arrow")}

    start = time.time()
    second = run_pipeline(cfg, to_stage="tokens")
    assert time.time() - start <= 0.1 * first_seconds
    assert second["stages"] == first["stages"]
    assert {name: _files(tmp_path / "run" / name) for name in outputs} == outputs  # no shard rewritten

    tokenizer_manifest = (tmp_path / "run" / "tokenizer" / "manifest.json").read_text()
    shutil.copy(crawls / "dolma-wget-2024-sample-0001.warc.gz", inbox)
    third = run_pipeline(cfg, to_stage="tokens")
    assert (tmp_path / "run" / "tokenizer" / "manifest.json").read_text() == tokenizer_manifest  # kept, not retrained
    tokens = {s["name"]: s for s in third["stages"]}["tokens"]
    assert tokens["in"] == {s["name"]: s for s in third["stages"]}["shard"]["out"] > {s["name"]: s for s in first["stages"]}["shard"]["out"]
    extracted = read_manifest(tmp_path / "run" / "extracted")
    first_extracted = {s["name"]: s for s in first["stages"]}
    assert extracted.extra["reused_units"] == extracted.extra["units"] - 1 >= 2
    # the parts of the old files are the same files, linked under their new names; one part is new
    (new_part,) = [p for p in (tmp_path / "run" / "extracted").glob("part-*.arrow") if p.stat().st_ino not in first_parts]
    assert set(read_table(new_part).column("source").to_pylist()) == {str(inbox / "dolma-wget-2024-sample-0001.warc.gz")}
    ingest = {s["name"]: s for s in third["stages"]}["ingest"]
    assert ingest["in"] > first_extracted["ingest"]["in"]
    for stage in third["stages"]:
        assert stage["in"] == stage["out"] + sum(stage["dropped"].values()), stage
