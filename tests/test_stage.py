"""Stages as library objects: `run_stage` runs any stage without Prefect, the fingerprints see code and schema
changes, the filter writes a keep mask instead of a copy, and one function decides what is a duplicate."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest

from corpus.shards import read_table
from corpus.stage import code_fingerprint, plan_stages, run_stage, stage_fingerprint
from corpus.stages import sample_input
from flows.config import load_config

ROOT = Path(__file__).resolve().parents[1]
BOOK = Path("english-text") / "gutenberg" / "pg1342-pride-and-prejudice.txt"


def _paragraphs(shared_data: Path, n: int) -> list[str]:
    text = (shared_data / BOOK).read_text(encoding="utf-8-sig").replace("\r\n", "\n")
    return [" ".join(p.split()) for p in text.split("\n\n") if len(p) > 600][:n]


@pytest.fixture
def jsonl_input(shared_data, tmp_path) -> Path:
    """16 real paragraphs, one of them twice (an exact duplicate) and one with its last sentence cut (near)."""
    paragraphs = _paragraphs(shared_data, 14)
    rows = [{"id": f"p{i}", "url": f"https://example.org/p/{i}", "text": p} for i, p in enumerate(paragraphs)]
    rows.append({"id": "copy-of-p3", "url": "https://example.org/copy", "text": paragraphs[3]})
    rows.append({"id": "short", "url": "https://example.org/short", "text": "Too short to keep."})
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


NOTEBOOK = """
import json, sys
from corpus.stage import run_stage
from corpus.stages import CORPUS_STAGES, inputs_fingerprint
from flows.config import load_config
from tokenizer.stages import TOKENIZER, TOKENS

cfg = load_config(preset="tiny", environ={}, overrides={"input": [sys.argv[1]], "output": sys.argv[2],
                  "tokenizer": {"vocab_size": 512}, "shard": {"val_fraction": 0.0}})
manifests = [run_stage(CORPUS_STAGES[0], cfg, cfg.output, upstream_fingerprint=inputs_fingerprint(cfg))]
for stage in [*CORPUS_STAGES[1:], TOKENIZER, TOKENS]:
    manifests.append(run_stage(stage, cfg, cfg.output))
again = run_stage(CORPUS_STAGES[1], cfg, cfg.output)
print(json.dumps({
    "prefect_imported": any(m == "prefect" or m.startswith("prefect.") for m in sys.modules),
    "ledger": [e.to_json() for m in manifests for e in m.ledger],
    "rerun_created_at_same": again.created_at == manifests[1].created_at,
}))
"""


def test_a_notebook_runs_every_stage_without_prefect(jsonl_input, tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", NOTEBOOK, str(jsonl_input), str(run)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["prefect_imported"] is False
    assert result["rerun_created_at_same"] is True  # a current stage is not redone
    ledger = {e["name"]: e for e in result["ledger"]}
    assert list(ledger) == ["ingest", "extract", "annotate", "filter", "dedup", "shard", "tokenizer", "tokens"]
    for entry in ledger.values():
        assert entry["in"] == entry["out"] + sum(entry["dropped"].values()), entry
    assert ledger["ingest"]["in"] == 16
    assert ledger["filter"]["dropped"] == {"gopher_min_words": 1}
    assert ledger["dedup"]["dropped"] == {"exact_duplicate": 1}
    assert ledger["shard"]["out"] == ledger["tokens"]["out"] == 14

    assert not (run / "filtered").exists()
    masks = sorted((run / "filter").glob("keep-*.arrow"))
    assert masks and sum(read_table(m).num_rows for m in masks) == 16  # one flag per extracted row, no document copy
    documents = pa.concat_tables([read_table(p) for p in sorted((run / "documents").glob("*.arrow"))])
    assert sorted(documents["id"].to_pylist()) == sorted(f"p{i}" for i in range(14))
    (duplicate,) = read_table(run / "rejected" / "dedup" / "part-00000.arrow").to_pylist()
    assert (duplicate["id"], duplicate["kept_id"], duplicate["reason"]) == ("copy-of-p3", "p3", "exact_duplicate")
    (short,) = read_table(run / "rejected" / "filter" / "part-00000.arrow").to_pylist()
    assert short["id"] == "short" and short["detail"].startswith("n_words=4 < min_words=")


def test_drop_all_duplicates_leave_documents_and_are_each_rejected_once(jsonl_input, tmp_path):
    """Under drop-all no document of a cluster is kept (kept_id is null): dedup rejects both, shard keeps neither."""
    from corpus.stages import CORPUS_STAGES, inputs_fingerprint

    cfg = load_config(
        preset="tiny", environ={}, overrides={"input": [str(jsonl_input)], "output": str(tmp_path / "run"), "dedup": {"policy": "drop-all"}}
    )
    manifests = [run_stage(CORPUS_STAGES[0], cfg, cfg.output, upstream_fingerprint=inputs_fingerprint(cfg))]
    manifests += [run_stage(stage, cfg, cfg.output) for stage in CORPUS_STAGES[1:]]
    rejected = read_table(tmp_path / "run" / "rejected" / "dedup" / "part-00000.arrow")
    assert sorted(rejected["id"].to_pylist()) == ["copy-of-p3", "p3"]
    assert rejected["kept_id"].null_count == 2
    documents = read_table(tmp_path / "run" / "documents" / "shard-00000.arrow")
    assert not set(documents["id"].to_pylist()) & {"p3", "copy-of-p3"}
    shard = manifests[-1].ledger[0]
    assert shard.in_ == manifests[2].ledger[0].out == documents.num_rows == 13


def test_an_added_output_column_makes_the_stage_and_all_below_it_stale(tiny_run, monkeypatch):
    """An extracted/ written before a new signal column existed must be recomputed, not reused."""
    import corpus.document
    from flows.pipeline import plan

    cfg, _, _, _ = tiny_run
    assert all(p.action in ("skip", "off") for p in plan(cfg))
    extended = corpus.document.DOCUMENT_SCHEMA.append(pa.field("new_signal", pa.float32()))
    monkeypatch.setattr(corpus.document, "DOCUMENT_SCHEMA", extended)
    actions = {p.stage.name: p.action for p in plan(cfg)}
    assert actions == {
        "extract": "run", "filter": "run", "dedup": "run", "shard": "run",
        "tokenizer": "run", "tokens": "run", "pretrain": "run", "finetune": "off",
    }


CHANGED_PLAN = """
import json, os, sys
sys.path[:0] = [sys.argv[2]]
sys.path.extend(os.environ["SITE_DIRS"].split(os.pathsep))  # the libraries, not the editable install's hook
import corpus
from flows.config import load_config
from flows.pipeline import plan
assert corpus.__file__.startswith(sys.argv[2]), corpus.__file__
sample = sys.argv[3]  # the run's input: the bundled sample of this checkout, not the copy's
cfg = load_config(preset="tiny", environ={}, overrides={"output": sys.argv[1], "input": [sample], "runner": {"workers": 2}})
print(json.dumps({p.stage.name: p.action for p in plan(cfg)}))
"""


def _plan_with_code(code_root: Path, run: Path) -> dict:
    site_dirs = os.pathsep.join(p for p in sys.path if p.endswith("site-packages"))
    done = subprocess.run(  # -S: no site hooks, so the copy under code_root is the code that plans
        [sys.executable, "-S", "-c", CHANGED_PLAN, str(run), str(code_root), str(sample_input())],
        capture_output=True, text=True, timeout=120, env={**os.environ, "SITE_DIRS": site_dirs},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_changed_code_makes_its_stage_and_all_below_it_stale(tiny_run, tmp_path):
    """The same code elsewhere reuses the run; an edited signal computation reruns extract and everything below;
    an edited filter rule leaves extract alone."""
    _, run, _, _ = tiny_run
    code = tmp_path / "code"
    for package in ("corpus", "tokenizer", "training", "flows"):
        shutil.copytree(ROOT / package, code / package, ignore=shutil.ignore_patterns("__pycache__"))
    assert set(_plan_with_code(code, run).values()) <= {"skip", "off"}

    signals = code / "corpus" / "annotate" / "signals.py"
    signals.write_text(signals.read_text() + textwrap.dedent("""

        def _changed_behaviour():  # stands for an edit of how a signal is computed
            return 1
    """))
    actions = _plan_with_code(code, run)
    assert [name for name, action in actions.items() if action == "run"] == [
        "extract", "filter", "dedup", "shard", "tokenizer", "tokens", "pretrain"
    ]

    signals.write_text(signals.read_text().split("\n\ndef _changed_behaviour")[0])
    filters = code / "corpus" / "filters.py"
    filters.write_text(filters.read_text() + "\n\nMIN_WORDS_CHANGED = True\n")
    actions = _plan_with_code(code, run)
    assert actions["extract"] == "skip"
    assert [name for name, action in actions.items() if action == "run"] == [
        "filter", "dedup", "shard", "tokenizer", "tokens", "pretrain"
    ]


def test_code_fingerprint_is_by_content(tmp_path, monkeypatch):
    package = tmp_path / "fp_probe_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "rules.py").write_text("LIMIT = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    first = code_fingerprint(("fp_probe_pkg",))
    code_fingerprint.cache_clear()
    assert code_fingerprint(("fp_probe_pkg",)) == first
    (package / "rules.py").write_text("LIMIT = 2\n")
    code_fingerprint.cache_clear()
    assert code_fingerprint(("fp_probe_pkg",)) != first
    code_fingerprint.cache_clear()


def test_speed_only_settings_stay_out_of_the_fingerprint():
    from corpus.stages import EXTRACT

    cfg = load_config(preset="tiny", environ={})
    same = cfg.model_copy(update={"extract": cfg.extract.model_copy(update={"overlap": not cfg.extract.overlap})})
    other = cfg.model_copy(update={"extract": cfg.extract.model_copy(update={"fast": not cfg.extract.fast})})
    assert stage_fingerprint(EXTRACT, same, "up") == stage_fingerprint(EXTRACT, cfg, "up")
    assert stage_fingerprint(EXTRACT, other, "up") != stage_fingerprint(EXTRACT, cfg, "up")
    assert stage_fingerprint(EXTRACT, cfg, "other upstream") != stage_fingerprint(EXTRACT, cfg, "up")


def test_a_skipped_stage_without_output_is_a_clear_error(tmp_path):
    from flows.pipeline import STAGE_OBJECTS

    cfg = load_config(preset="tiny", environ={}, overrides={"output": str(tmp_path / "empty")})
    with pytest.raises(RuntimeError, match="stage extract has no finished output"):
        plan_stages(STAGE_OBJECTS, cfg, tmp_path / "empty", "inputs", first=1)
