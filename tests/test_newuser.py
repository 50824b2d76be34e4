"""What a new user meets first (issue 15): failures that explain themselves, Ctrl-C, retraining, ledger gaps,
the test data hint, fine-tuning by macro-F1, the README's numbers and `--version`."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from corpus.manifest import read_manifest
from corpus.shards import read_table

ROOT = Path(__file__).resolve().parents[1]
EXIT_BOUND_S = 15  # a stopped run must be gone within this many seconds


# --- helpers: the CLI as a user starts it, in a process group of its own ------------------------------------------


def _cli(tmp_path: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "PYTHONUNBUFFERED": "1"}
    # A new user's environment: none of what earlier runs in this test process set (flows.pipeline.prefect_api).
    for name in ("CORPUSFORGE_DEBUG", "PREFECT_API_URL", "PREFECT_LOGGING_LEVEL", "PREFECT_INTERNAL_LOGGING_LEVEL"):
        env.pop(name, None)
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "run", *args],
        cwd=ROOT,
        env=env,
        start_new_session=True,  # its own process group, as a shell's job is: a Ctrl-C goes to the whole group
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(run: Path, pattern: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while not list(run.glob(pattern)):
        assert proc.poll() is None, f"the run ended before {pattern} appeared:\n{proc.stderr.read()[-3000:]}"
        assert time.time() < deadline, f"{pattern} did not appear within {timeout} s"
        time.sleep(0.05)


def _group(pgid: int) -> list[str]:
    """The living processes of a process group ('pid state command'), zombies left out."""
    out = subprocess.run(["ps", "-o", "pid=,stat=,args=", "-g", str(pgid)], capture_output=True, text=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip() and not line.split()[1].startswith("Z")]


def _children(pid: int) -> list[str]:
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def _ends_within(proc: subprocess.Popen, seconds: float) -> tuple[float, str, str]:
    start = time.time()
    try:
        stdout, stderr = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"the run did not end within {seconds} s")
    return time.time() - start, stdout, stderr


def _no_process_left(pgid: int) -> None:
    deadline = time.time() + 3  # the last ones may still be on their way out
    while _group(pgid) and time.time() < deadline:
        time.sleep(0.1)
    left = _group(pgid)
    for line in left:
        os.kill(int(line.split()[0]), signal.SIGKILL)
    assert not left, f"processes left behind: {left}"


def _one_clear_message(stderr: str) -> None:
    assert "Traceback" not in stderr, stderr[-3000:]
    assert not re.search(r"\| (ERROR|WARNING|CRITICAL) +\|", stderr), stderr[-3000:]  # Prefect's log lines
    assert "\x1b[" not in stderr


# --- a run that yields no documents ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_input_without_documents_stops_the_run_at_the_shards_with_the_cause_in_one_line(tmp_path):
    bad = tmp_path / "x.warc.gz"
    bad.write_bytes(bytes(range(256)) * 16)  # neither gzip nor WARC
    run = tmp_path / "run"
    proc = _cli(tmp_path, "--preset", "tiny", "--input", str(bad), "--output", str(run))
    _, _, stderr = _ends_within(proc, 300)
    assert proc.returncode == 1
    failed = [line for line in stderr.splitlines() if line.startswith("run failed:")]
    assert failed == [f"run failed: no documents: {bad} at byte 0: no WARC record could be parsed here"], stderr[-3000:]
    _one_clear_message(stderr)
    ledger = json.loads((run / "manifest.json").read_text())  # written for a failed run too: inspect shows it
    assert ledger["failed"]["stage"] == "shard" and ledger["failed"]["error"] == failed[0].removeprefix("run failed: ")
    assert [s["name"] for s in ledger["stages"]] == ["ingest", "extract", "annotate", "filter", "dedup"]
    assert ledger["errors"][0]["path"] == str(bad) and ledger["errors"][0]["offset"] == 0
    assert not (run / "tokenizer").exists() and not (run / "model").exists()  # stopped before any training


def test_documents_all_dropped_by_the_filters_name_the_reasons(tmp_path):
    from corpus.stage import run_stage
    from corpus.stages import CORPUS_STAGES
    from corpus.stages.extract import inputs_fingerprint
    from flows.config import load_config

    rows = tmp_path / "short.jsonl"
    rows.write_text("".join(json.dumps({"id": f"s{i}", "text": f"Too short to keep, number {i}."}) + "\n" for i in range(6)))
    cfg = load_config(preset="tiny", environ={}, overrides={"input": [str(rows)], "output": str(tmp_path / "run")})
    upstream = inputs_fingerprint(cfg)
    with pytest.raises(ValueError) as err:
        for stage in CORPUS_STAGES:
            upstream = run_stage(stage, cfg, cfg.output, upstream_fingerprint=upstream).fingerprint
    assert str(err.value).startswith("no documents: all 6 documents were dropped by the filters: gopher_min_words 6")
    assert "filter.enabled=false" in str(err.value)


# --- Ctrl-C and a dead Prefect server ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_ctrl_c_mid_extract_ends_the_run_within_seconds_leaving_no_process_and_the_finished_units(tmp_path):
    run = tmp_path / "run"
    proc = _cli(tmp_path, "--preset", "tiny", "--output", str(run), "--to", "shard", "--set", "runner.workers=2")
    _wait_for(run, ".tmp-extract/work/*.json", proc)  # one unit finished, others running
    assert len(_group(proc.pid)) >= 3  # the CLI, its Prefect server, the pool's workers
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    seconds, _, stderr = _ends_within(proc, EXIT_BOUND_S)
    assert proc.returncode == 130, stderr[-3000:]
    assert "interrupted: finished stages and units are kept" in stderr
    _one_clear_message(stderr)
    _no_process_left(proc.pid)
    assert list((run / ".tmp-extract" / "work").glob("*.json")), "the finished units must be kept for the rerun"
    assert not (run / "extracted").exists()
    assert json.loads((run / "manifest.json").read_text())["failed"]["stage"] == "extract"


@pytest.mark.slow
def test_ctrl_c_during_pretraining_ends_the_run_within_seconds_and_keeps_its_checkpoint(tiny_run, tmp_path):
    from training.checkpoint import load_latest

    _, finished, _, _ = tiny_run
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    proc = _cli(
        tmp_path, "--preset", "tiny", "--output", str(run), "--from", "pretrain", "--set", "runner.workers=2",
        "--set", "pretrain.max_steps=100000", "--set", "pretrain.eval_every=5",
    )
    # A checkpoint of this training (the finished run saved steps 15 and 30 only).
    _wait_for(run, "model/trainer_state/step-00000005", proc)
    _wait_for(run, "model/trainer_state/latest", proc)  # the pointer, written once the checkpoint is whole
    os.killpg(proc.pid, signal.SIGINT)
    seconds, _, stderr = _ends_within(proc, EXIT_BOUND_S)
    assert proc.returncode == 130, stderr[-3000:]
    _one_clear_message(stderr)
    _no_process_left(proc.pid)
    checkpoint = load_latest(run / "model")
    assert checkpoint is not None and checkpoint.state["step"] >= 5  # the rerun resumes from here
    assert read_manifest(run / "model") is None  # not passed off as finished
    assert json.loads((run / "manifest.json").read_text())["failed"]["stage"] == "pretrain"


@pytest.mark.slow
def test_a_prefect_server_that_dies_mid_run_fails_the_run_quickly_with_a_clear_message(tmp_path):
    run = tmp_path / "run"
    proc = _cli(tmp_path, "--preset", "tiny", "--output", str(run), "--to", "shard", "--set", "runner.workers=2")
    _wait_for(run, ".tmp-extract/work/*.json", proc)
    (server_process,) = [line for line in _children(proc.pid) if "uvicorn" in line]
    os.kill(int(server_process.split()[0]), signal.SIGKILL)
    seconds, _, stderr = _ends_within(proc, 30)
    assert proc.returncode == 1, stderr[-3000:]
    assert re.search(r"run failed: the temporary Prefect server at \S+ exited \(code -9\) during the run", stderr), stderr[-3000:]
    _one_clear_message(stderr)
    _no_process_left(proc.pid)
    assert json.loads((run / "manifest.json").read_text())["failed"]["exception"] == "ServerDied"


# --- retraining -----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_from_pretrain_trains_again_from_scratch(tiny_run, tmp_path):
    from flows.pipeline import run_pipeline

    cfg, finished, _, _ = tiny_run
    before = json.loads((finished / "model" / "metrics.json").read_text())
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    ledger = run_pipeline(cfg.model_copy(update={"output": str(run)}), from_stage="pretrain")
    metrics = json.loads((run / "model" / "metrics.json").read_text())
    assert metrics["resumed_from_step"] is None  # not the finished checkpoint resumed (0 steps)
    assert metrics["steps"] == cfg.pretrain.max_steps
    assert [step for step, _ in metrics["val_loss"]][0] == 0 and metrics["val_loss"][-1][0] == cfg.pretrain.max_steps
    assert metrics["initial_val_loss"] == pytest.approx(before["initial_val_loss"], rel=1e-3)  # a fresh model again
    assert metrics["final_val_loss"] < metrics["initial_val_loss"]
    assert [s for s in ledger["stages"] if s["name"] == "pretrain"][0]["metrics"]["resumed_from_step"] is None


# --- the ledger accounts for every line of a URL list, and for damaged JSONL lines --------------------------------

from test_crawl import fast_config, real_pages, server  # noqa: E402, F401 - the local test site and its pages


def _extract(tmp_path: Path, inputs: list[str], **overrides):
    from corpus.stage import run_stage
    from corpus.stages import EXTRACT
    from corpus.stages.extract import inputs_fingerprint
    from flows.config import load_config

    cfg = load_config(preset="tiny", environ={}, overrides={"input": inputs, "output": str(tmp_path / "run"), **overrides})
    return run_stage(EXTRACT, cfg, cfg.output, upstream_fingerprint=inputs_fingerprint(cfg))


def test_every_line_of_a_url_list_is_in_the_ledger_with_a_reason(server, tmp_path):
    urls = tmp_path / "urls.txt"
    lines = [
        "# a page twice, one robots.txt forbids, one that is no valid address, one that is not there",
        f"{server.base}/pages/0.html",
        f"{server.base}/pages/0.html#again",
        f"{server.base}/private/secret.html",
        "http://[bad/",
        f"{server.base}/missing.html",
    ]
    urls.write_text("\n".join(lines) + "\n")
    crawl = fast_config().model_dump()
    manifest = _extract(tmp_path, [str(urls)], crawl=crawl)
    ingest = manifest.ledger[0]
    assert ingest.name == "ingest" and ingest.balanced()
    # two responses were stored (page 0 and the 404); three lines were never fetched, each with its reason
    assert ingest.in_ == 5
    assert ingest.dropped == Counter({"duplicate_url": 1, "robots_disallowed": 1, "invalid_seed": 1, "http_status": 1})
    rows = read_table(tmp_path / "run" / "rejected" / "extract" / "url-lists.arrow").to_pylist()
    offsets = {line: sum(len(x) + 1 for x in lines[:i]) for i, line in enumerate(lines)}
    assert sorted((r["reason"], r["url"], r["offset"]) for r in rows) == sorted(
        [
            ("duplicate_url", lines[2], offsets[lines[2]]),
            ("robots_disallowed", lines[3], offsets[lines[3]]),
            ("invalid_seed", lines[4], offsets[lines[4]]),
        ]
    )
    assert all(r["source"] == str(urls) and r["stage"] == "ingest" and r["detail"] for r in rows)
    assert "disallows /private/secret.html" in [r for r in rows if r["reason"] == "robots_disallowed"][0]["detail"]


def test_a_url_list_of_private_addresses_names_the_setting_run_accepts(server, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text(f"{server.base}/pages/0.html\n{server.base}/pages/1.html\n")
    with pytest.raises(ValueError) as err:
        _extract(tmp_path, [str(urls)], crawl=fast_config(allow_private=False).model_dump())
    message = str(err.value)
    assert message.startswith("no page of the URL list could be fetched: unsafe_address 2")
    assert "use --set crawl.allow_private=true" in message and "--allow-private" not in message
    assert server.hits == Counter()  # nothing was asked of the refused host


def test_damaged_jsonl_lines_are_listed_under_the_ledgers_errors(tmp_path):
    rows = tmp_path / "rows.jsonl"
    good = json.dumps({"id": "a", "text": "A line that parses. " * 20})
    broken = '{"id": "b", "text": "cut in the mid'
    rows.write_text(f"{good}\n{broken}\n{good.replace('a', 'c', 1)}\n")
    manifest = _extract(tmp_path, [str(rows)])
    ingest = manifest.ledger[0]
    assert ingest.dropped == Counter({"malformed_json": 1})
    assert ingest.errors == [
        {"path": str(rows), "offset": len(good) + 1, "error": ingest.errors[0]["error"]}
    ] and ingest.errors[0]["error"].startswith("malformed JSON line: Unterminated string")


# --- pytest without the shared data ----------------------------------------------------------------------------------


def test_pytest_without_the_shared_data_says_so_at_the_top(tmp_path):
    env = {**os.environ, "CORPUSFORGE_SHARED_DATA": str(tmp_path / "nowhere")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "tests/test_sources.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    out = result.stdout
    header = out.index("corpusforge real test data: not found at")
    line = re.search(r"(\d+) of (\d+) tests need the real test data, not found at .*CORPUSFORGE_SHARED_DATA=", out)
    assert line and 0 < int(line.group(1)) < int(line.group(2)), out[-3000:]
    assert header < out.index("collected") < line.start()  # said before any test runs


# --- fine-tuning --------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_finetune_keeps_the_epoch_with_the_best_macro_f1_and_prints_plain_lines(tiny_run, tmp_path):
    _, finished, _, _ = tiny_run
    import random

    rng = random.Random(0)
    good = "good fine great lovely pleasant".split()
    bad = "bad awful poor dreadful nasty".split()
    with open(tmp_path / "labelled.csv", "w") as f:
        f.write("text,label\n")
        for i in range(240):  # 3:1 for one class, so a majority-class model has high accuracy, low macro-F1
            label = int(i % 4 == 0)
            words = rng.sample(bad if label else good, 3) + rng.sample(good + bad, 2)
            f.write(f"{' '.join(words)},{label}\n")
    env = {**os.environ}
    env.pop("CORPUSFORGE_DEBUG", None)
    out = tmp_path / "clf"
    result = subprocess.run(
        [
            sys.executable, "-m", "flows.cli", "finetune", "--model", str(finished / "model"), "--data",
            str(tmp_path / "labelled.csv"), "--output", str(out), "--set", "finetune.epochs=4", "--set", "finetune.patience=4",
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout + result.stderr
    assert "\x1b[" not in printed and "LOAD REPORT" not in printed and "[transformers]" not in printed
    assert "new weights, initialised here and trained below: score.weight" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    f1s = [epoch["macro_f1"] for epoch in metrics["history"]]
    assert metrics["select_metric"] == "macro_f1"
    assert metrics["best_epoch"] == f1s.index(max(f1s)) + 1 and metrics["macro_f1"] == max(f1s)


def test_select_metric_is_validated():
    from flows.config import ConfigError, load_config

    assert load_config(environ={}).finetune.select_metric == "macro_f1"
    assert load_config(sets=["finetune.select_metric=accuracy"], environ={}).finetune.select_metric == "accuracy"
    with pytest.raises(ConfigError):
        load_config(sets=["finetune.select_metric=loss"], environ={})


# --- the README's numbers, and --version ----------------------------------------------------------------------------


@pytest.mark.slow
def test_readme_says_how_many_records_the_tiny_preset_reads(tiny_run):
    _, _, ledger, _ = tiny_run
    readme = (ROOT / "README.md").read_text()
    said = re.search(r"`tiny` \(tests: (\d+) records per work unit, (\d+) of\s+the sample's (\d+) pages", readme)
    assert said, "README's presets paragraph must say what the tiny preset reads"
    from flows.config import load_config

    assert int(said.group(1)) == load_config(preset="tiny", environ={}).ingest.max_records
    assert int(said.group(2)) == ledger["stages"][0]["in"]


def test_version():
    from importlib.metadata import version

    from typer.testing import CliRunner

    from flows.cli import app

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"corpusforge {version('corpusforge')}"
