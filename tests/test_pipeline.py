"""End to end: the `tiny` preset over real pages (the bundled sample), through Prefect, to a checkpoint."""

import json
import shutil
import time
from pathlib import Path

import pytest

from corpus.manifest import read_manifest
from corpus.shards import count_rows, read_table, sha256_file
from flows.config import load_config
from flows.pipeline import plan, run_pipeline

pytestmark = pytest.mark.slow

BOOK = Path("english-text") / "gutenberg" / "pg1342-pride-and-prejudice.txt"


def _rows(paths):
    return sum(count_rows(p) for p in paths)


def test_every_stage_runs_and_the_ledger_balances(tiny_run):
    cfg, run, ledger, _ = tiny_run
    names = [s["name"] for s in ledger["stages"]]
    assert names == ["ingest", "extract", "annotate", "filter", "dedup", "shard", "tokenizer", "tokens", "pretrain"]
    for stage in ledger["stages"]:
        assert stage["in"] == stage["out"] + sum(stage["dropped"].values()), stage
    by_name = {s["name"]: s for s in ledger["stages"]}
    assert by_name["ingest"]["in"] > 0
    # consecutive stages hand over every record they kept
    for a, b in zip(names[:6], names[1:6]):
        assert by_name[a]["out"] == by_name[b]["in"], (a, b)
    on_disk = json.loads((run / "manifest.json").read_text())
    assert on_disk["stages"] == ledger["stages"]
    assert set(on_disk["outputs"]) >= {"documents", "tokenizer", "tokens", "model"}


def test_every_input_record_ends_in_documents_or_rejected(tiny_run):
    _, run, ledger, _ = tiny_run
    documents = _rows(sorted((run / "documents").glob("*.arrow")))
    rejected = read_table_all(run / "rejected")
    ingest_in = ledger["stages"][0]["in"]
    assert documents > 0
    assert documents + rejected.num_rows == ingest_in
    assert set(rejected.column("reason").to_pylist()) <= {
        reason for s in ledger["stages"] for reason in s["dropped"]
    }
    assert all(rejected.column("stage").to_pylist()) and all(rejected.column("reason").to_pylist())


def read_table_all(directory: Path):
    import pyarrow as pa

    from corpus.document import REJECTED_SCHEMA

    tables = [read_table(p) for p in sorted(directory.rglob("*.arrow"))]
    return pa.concat_tables(tables) if tables else REJECTED_SCHEMA.empty_table()


def test_documents_carry_annotations_and_a_split(tiny_run):
    _, run, _, _ = tiny_run
    import datasets

    docs = datasets.load_dataset("arrow", data_files=str(run / "documents" / "*.arrow"), split="train")
    assert len(docs) > 0
    row = docs[0]
    assert row["text"] and row["lang"] and row["id"] and row["url"].startswith("http")
    assert row["split"] in ("train", "val")
    assert row["signals"]["n_words"] > 0
    assert any(d["keyphrases"] for d in docs)
    assert set(docs["split"]) == {"train", "val"}


def test_outputs_load_with_transformers_and_datasets(tiny_run):
    _, run, _, _ = tiny_run
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(run / "tokenizer")
    ids = tok("Hello world, this is corpusforge.")["input_ids"]
    assert tok.decode(ids) == "Hello world, this is corpusforge."
    tokens = datasets.Dataset.from_file(str(sorted((run / "tokens" / "train").glob("*.arrow"))[0]))
    assert tokens[0]["input_ids"][-1] == tok.convert_tokens_to_ids("<|endoftext|>")
    model = AutoModelForCausalLM.from_pretrained(run / "model")
    assert model.config.vocab_size >= len(tok)
    metrics = json.loads((run / "model" / "metrics.json").read_text())
    assert metrics["final_val_loss"] < metrics["initial_val_loss"]


def test_rerun_skips_every_finished_stage(tiny_run):
    cfg, run, ledger, first_seconds = tiny_run
    assert all(p.action == "skip" for p in plan(cfg) if p.action != "off")
    start = time.time()
    again = run_pipeline(cfg)
    assert time.time() - start < 0.2 * first_seconds
    assert again["stages"] == ledger["stages"]


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    """A copy of the session's run, for tests that change it: the others must see its ledger as it was made."""
    cfg, shared_run, _, _ = tiny_run
    run = tmp_path / "run"
    shutil.copytree(shared_run, run)
    return cfg.model_copy(update={"output": str(run)}), run


def test_refilter_does_not_reextract(run_copy):
    cfg, run = run_copy
    extracted_before = (run / "extracted" / "manifest.json").read_text()
    stricter = cfg.model_copy(update={"filter": cfg.filter.model_copy(update={"min_words": 400})})
    actions = {p.stage.name: p.action for p in plan(stricter)}
    assert actions["extract"] == "skip" and actions["filter"] == "run"
    ledger = run_pipeline(stricter, to_stage="shard")
    assert (run / "extracted" / "manifest.json").read_text() == extracted_before
    by_name = {s["name"]: s for s in ledger["stages"]}
    assert by_name["filter"]["dropped"].get("gopher_min_words", 0) > 0
    assert by_name["filter"]["in"] == by_name["filter"]["out"] + sum(by_name["filter"]["dropped"].values())


def test_truncated_warc_keeps_records_before_the_damage(shared_data, tmp_path):
    source = shared_data / "malformed" / "w02_truncated_mid_member.warc.gz"
    cfg = load_config(
        preset="tiny",
        environ={},
        overrides={"input": [str(source)], "output": str(tmp_path / "run"), "ingest": {"max_records": 0}},
    )
    ledger = run_pipeline(cfg, to_stage="shard")
    assert ledger["errors"], "the damage must be recorded"
    err = ledger["errors"][0]
    assert err["path"].endswith("w02_truncated_mid_member.warc.gz") and isinstance(err["offset"], int)
    assert ledger["stages"][0]["in"] > 0
    for stage in ledger["stages"]:
        assert stage["in"] == stage["out"] + sum(stage["dropped"].values())


def test_finetune_stage_runs_when_a_labelled_set_is_configured(run_copy, shared_data):
    cfg, run = run_copy
    data = shared_data / "classification" / "sst2-glue" / "train.tsv"
    finetune = cfg.finetune.model_copy(update={"data": str(data), "text_column": "sentence", "max_train": 600, "max_eval": 200, "epochs": 1})
    with_finetune = cfg.model_copy(update={"finetune": finetune})
    actions = {p.stage.name: p.action for p in plan(with_finetune)}
    assert actions["finetune"] == "run" and actions["pretrain"] == "skip"
    ledger = run_pipeline(with_finetune)
    stage = ledger["stages"][-1]
    assert stage["name"] == "finetune" and stage["out"] == 800  # max_train 600 + max_eval 200 of the rows read
    assert stage["in"] == stage["out"] + sum(stage["dropped"].values()) and set(stage["dropped"]) == {"over_max_train", "over_max_eval"}
    assert set(stage["metrics"]) >= {"accuracy", "macro_f1", "majority_baseline", "n_train", "n_eval"}
    assert (run / "finetune" / "metrics.json").is_file()


def test_one_folder_of_warc_jsonl_parquet_and_html_runs_in_one_go(shared_data, tmp_path):
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    inputs = tmp_path / "in"
    (inputs / "pages").mkdir(parents=True)
    shutil.copy(shared_data / "warc" / "real-crawls" / "ukwa-IAH-urls-wget.warc.gz", inputs)
    pages = sorted((shared_data / "extraction" / "cleanportaleval" / "input").iterdir())[:4]
    for page in pages:  # gzipped HTML as the set ships it, and one unpacked
        shutil.copy(page, inputs / "pages")
    (inputs / "pages" / "plain.html").write_bytes(gzip.decompress(pages[0].read_bytes()))
    text = (shared_data / BOOK).read_text(encoding="utf-8-sig").replace("\r\n", "\n")
    paragraphs = [" ".join(p.split()) for p in text.split("\n\n") if len(p) > 400][:12]
    with open(inputs / "rows.jsonl", "w") as f:
        for i, paragraph in enumerate(paragraphs[:6]):
            f.write(json.dumps({"id": f"j{i}", "url": f"https://example.org/j/{i}", "text": paragraph}) + "\n")
    pq.write_table(pa.table({"text": paragraphs[6:], "url": [f"https://example.org/p/{i}" for i in range(6)]}), inputs / "rows.parquet")
    (inputs / "notes.docx").write_bytes(b"PK\x03\x04")

    cfg = load_config(preset="tiny", environ={}, overrides={"input": [str(inputs)], "output": str(tmp_path / "run")})
    ledger = run_pipeline(cfg, to_stage="shard")
    for stage in ledger["stages"]:
        assert stage["in"] == stage["out"] + sum(stage["dropped"].values()), stage
    documents = pa.concat_tables([read_table(p) for p in sorted((tmp_path / "run" / "documents").glob("*.arrow"))])
    rejected = read_table_all(tmp_path / "run" / "rejected")
    sources = documents.column("source").to_pylist() + rejected.column("source").to_pylist()
    kinds = {Path(s).suffix if "/pages/" not in s else "page" for s in sources}
    assert kinds == {".gz", ".jsonl", ".parquet", "page"}, kinds
    assert sum("/pages/" in s for s in sources) == 5 and sum(s.endswith("rows.jsonl") for s in sources) == 6
    assert len(sources) == ledger["stages"][0]["in"]
    assert [e["path"] for e in ledger["errors"]] == [str(inputs / "notes.docx")]


def test_a_speed_only_setting_does_not_make_finished_stages_stale(tiny_run):
    cfg, _, _, _ = tiny_run
    no_overlap = cfg.model_copy(update={"extract": cfg.extract.model_copy(update={"overlap": False})})
    assert all(p.action in ("skip", "off") for p in plan(no_overlap))
    stricter_extraction = cfg.model_copy(update={"extract": cfg.extract.model_copy(update={"fast": True})})
    assert {p.stage.name: p.action for p in plan(stricter_extraction)}["extract"] == "run"


def test_rejected_rows_of_extracted_text_carry_no_personal_data(tmp_path):
    from corpus.config import AnnotateConfig, ExtractConfig, IngestConfig
    from corpus.sources import plan_units
    from corpus.stages import extract_unit

    page = tmp_path / "contact.txt"
    page.write_text("Write to jane.doe@example.com or call +44 20 7946 0958 today. " * 20)
    (unit,) = plan_units([str(page)], IngestConfig())
    out, rejected = tmp_path / "out.arrow", tmp_path / "rejected.arrow"
    extract_unit(unit, IngestConfig(), ExtractConfig(max_doc_chars=200), AnnotateConfig(), out, rejected)
    (row,) = read_table(rejected).to_pylist()
    assert row["reason"] == "text_too_long"
    assert "jane.doe@example.com" not in row["text"] and "7946" not in row["text"] and "<EMAIL>" in row["text"]


@pytest.mark.parametrize("n_units, workers", [(0, 2), (1, 2), (5, 2), (11, 2), (99, 2), (1000, 2), (1000, 16), (7, 64)])
def test_units_go_to_prefect_in_batches_that_cover_each_unit_once_largest_first(n_units, workers):
    from flows.pipeline import unit_batches

    batches = unit_batches(n_units, workers)
    assert [i for batch in batches for i in batch] == list(range(n_units))  # each unit once, in order
    sizes = [len(batch) for batch in batches]
    assert all(size > 0 for size in sizes) and sizes == sorted(sizes, reverse=True)
    if n_units >= 16 * workers:
        assert len(batches) <= 12 * workers  # a handful of tasks per worker, not one per unit
        assert sizes[0] <= -(-n_units // (2 * workers))  # the first batch leaves work for the others
