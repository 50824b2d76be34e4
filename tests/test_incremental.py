"""Incremental dedup through the whole flow: a later run drops its copies of documents an earlier run kept."""

import json
import random

import pytest

from corpus.manifest import verify
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
