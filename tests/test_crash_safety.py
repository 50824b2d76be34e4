"""Kill-and-rerun at points spread over every stage (issue 13): a run SIGKILLed anywhere resumes, with the same
command, to outputs byte-identical to an unbroken run, with no document lost or repeated and no temporary file left.

The kills come from crash points (corpus.failpoints): `CORPUSFORGE_FAILPOINT=NAME` SIGKILLs the run's whole process
group (the CLI and its workers) at NAME, a deterministic place, instead of at a moment a timer happens to hit. Each
run of the chain resumes what the killed one left and is killed again further down the road; the last one
finishes. Each run starts its own temporary Prefect server, as on a user's laptop, and the kill takes it down too.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from corpus.manifest import read_manifest
from corpus.shards import read_table, sha256_file

ROOT = Path(__file__).resolve().parents[1]

# In road order; `STAGE:unit` kills a worker's group right after it finished one unit, while the other worker is in
# the middle of its own; `STAGE:commit` between the renames of a commit.
CRASH_POINTS = [
    "extract:unit",
    "filter:unit",
    "dedup:unit",
    "shard:unit",
    "shard:commit",
    "tokenizer:unit",
    "tokens:unit",
    "pretrain:checkpoint",
    "pretrain:unit",  # the tiny preset does not fine-tune
]

# Files whose bytes say when or how long, not what: the manifests (timestamps, seconds), the run's report and the
# checkpoints' bookkeeping (step timings). Everything else matches byte for byte, except the training metrics,
# compared without their timings and the step a session resumed from.
TIMED = {"manifest.json", "config.yaml", "metrics.json", "metrics.jsonl"}
TIMED_DIRS = {"report", "trainer_state"}
TIMING_KEYS = {"tokens_per_second", "mfu", "seconds", "resumed_from_step", "timing"}


def _metrics(run: Path) -> tuple:
    def untimed(record: dict) -> dict:
        return {k: v for k, v in record.items() if k not in TIMING_KEYS}

    lines = (run / "model" / "metrics.jsonl").read_text().splitlines()
    return untimed(json.loads((run / "model" / "metrics.json").read_text())), [untimed(json.loads(line)) for line in lines]


def _run(run: Path, home: Path, failpoint: str | None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PREFECT_HOME": str(home)}
    for name in ("CORPUSFORGE_FAILPOINT", "PREFECT_API_URL"):
        env.pop(name, None)
    if failpoint:
        env["CORPUSFORGE_FAILPOINT"] = failpoint
    command = [sys.executable, "-m", "flows.cli", "run", "--preset", "tiny", "--output", str(run), "--set", "runner.workers=2"]
    # Its own process group, as a shell's job: the crash point kills that group, never pytest.
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, start_new_session=True)


def _data_files(run: Path) -> dict[str, str]:
    files = {}
    for path in sorted(run.rglob("*")):
        rel = path.relative_to(run)
        if path.is_file() and path.name not in TIMED and not TIMED_DIRS & set(rel.parts[:-1]):
            files[str(rel)] = sha256_file(path)
    return files


def _ids(run: Path, folder: str) -> list[str]:
    return [i for p in sorted((run / folder).rglob("*.arrow")) for i in read_table(p).column("id").to_pylist()]


@pytest.mark.slow
def test_a_run_killed_at_any_point_of_any_stage_resumes_to_the_bytes_of_an_unbroken_run(tiny_run, tmp_path):
    _, unbroken, _, _ = tiny_run
    run = tmp_path / "run"
    for point in CRASH_POINTS:
        killed = _run(run, tmp_path / "prefect", point)
        assert killed.returncode == -signal.SIGKILL, f"{point} was not reached (exit {killed.returncode}):\n{killed.stderr[-3000:]}"
        stage = point.split(":")[0]
        dirname = {"pretrain": "model", "shard": "documents", "extract": "extracted"}.get(stage, stage)
        if point.endswith(":commit"):
            assert (run / f".tmp-{stage}" / "out" / "manifest.json").is_file()  # cut between the renames
        else:
            assert read_manifest(run / dirname) is None  # nothing half-done passed off as finished

    finished = _run(run, tmp_path / "prefect", None)
    assert finished.returncode == 0, finished.stderr[-3000:]

    leftovers = [str(p.relative_to(run)) for p in run.rglob(".*") if p.name.startswith((".tmp-", ".trash-"))]
    assert leftovers == []
    documents = _ids(run, "documents")
    assert len(documents) == len(set(documents)) > 0
    assert sorted(documents) == sorted(_ids(unbroken, "documents"))
    assert sorted(_ids(run, "rejected")) == sorted(_ids(unbroken, "rejected"))
    assert read_manifest(run / "extracted").extra["resumed_units"] >= 1  # the finished units were kept, not redone

    ours, reference = _data_files(run), _data_files(unbroken)
    assert sorted(ours) == sorted(reference)
    different = [name for name in reference if ours[name] != reference[name]]
    assert different == [], f"not byte-identical to the unbroken run: {different}"
    assert _metrics(run) == _metrics(unbroken)


def test_a_killed_runs_training_slot_on_a_temporary_server_is_free_for_the_next_run(tmp_path, monkeypatch):
    import fcntl
    import threading

    from flows.pipeline import GPU_LIMIT, _machine_gpu_lock

    monkeypatch.setenv("PREFECT_HOME", str(tmp_path))
    code = "import time\nfrom flows.pipeline import _machine_gpu_lock\nwith _machine_gpu_lock():\n    print('held', flush=True)\n    time.sleep(120)\n"
    holder = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        assert holder.stdout.readline().strip() == "held"
        with open(tmp_path / f"{GPU_LIMIT}.lock") as lock:
            with pytest.raises(BlockingIOError):  # taken: the next training run waits
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            assert f"pid {holder.pid}" in lock.read()  # what a waiting run says it waits for
    finally:
        holder.kill()
        holder.wait()
    taken = threading.Event()

    def next_run():
        with _machine_gpu_lock():
            taken.set()

    threading.Thread(target=next_run, daemon=True).start()
    assert taken.wait(10), "the slot of a killed run was not released"
