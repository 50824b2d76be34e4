"""Issue 11: the tiny pipeline on a local Ray instance (2 CPUs) writes the same documents/ and tokens/ as the
process runner (the session's `tiny_run`), byte for byte, and leaves no Ray process behind."""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'corpusforge[ray]')")
pytest.importorskip("prefect_ray", reason="prefect-ray is not installed (pip install 'corpusforge[ray]')")

from flows.config import load_config
from flows.pipeline import _task_runner, run_pipeline

COMPARED = ("documents", "tokens")
VOLATILE = {"seconds", "created_at", "updated_at"}  # timings in manifests; everything else must match


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _data_checksums(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): _sha256(p) for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "manifest.json"
    }


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def _counts(ledger: dict) -> dict[str, tuple]:
    return {s["name"]: (s["in"], s["out"], s["dropped"]) for s in ledger["stages"]}


def _live_processes_of(ray_tmp: str) -> list[str]:
    """Live processes (not zombies, not this one) of the Ray that runs under `ray_tmp`: found by RAY_TMPDIR in their
    environment, the folder in their command line, or a file of it they hold open (Ray's agents and workers rename
    themselves, which can hide the first two)."""
    marker = f"RAY_TMPDIR={ray_tmp}".encode()
    found: list[str] = []
    if not Path("/proc").is_dir():  # not Linux: nothing to look at
        return found
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ours = marker in (entry / "environ").read_bytes().split(b"\0") or ray_tmp in cmdline
            if not ours:
                for fd in (entry / "fd").iterdir():
                    with contextlib.suppress(OSError):
                        if os.readlink(fd).startswith(ray_tmp):
                            ours = True
                            break
        except (OSError, IndexError):  # gone meanwhile, or not ours to read
            continue
        if ours:
            found.append(f"{entry.name}: {cmdline[:120]}")
    return found


def test_local_ray_runner_gets_the_worker_count_and_the_prefect_api(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    cfg = load_config(preset="tiny", environ={}, overrides={"runner": {"kind": "ray", "workers": 2}})
    runner = _task_runner(cfg)
    assert runner.address is None
    assert runner.init_kwargs["address"] == "local" and runner.init_kwargs["num_cpus"] == 2
    assert runner.init_kwargs["runtime_env"]["env_vars"]["PREFECT_API_URL"] == "http://127.0.0.1:4200/api"
    # a given cluster: connect to it, never size it
    cluster = cfg.model_copy(update={"runner": cfg.runner.model_copy(update={"ray_address": "ray://head:10001"})})
    runner = _task_runner(cluster)
    assert runner.address == "ray://head:10001" and "num_cpus" not in runner.init_kwargs
    assert "address" not in runner.init_kwargs


@pytest.mark.slow
def test_ray_runner_writes_the_same_documents_and_tokens(tiny_run, tmp_path, monkeypatch):
    cfg, process_run, process_ledger, _ = tiny_run
    # Ray's sessions, sockets and logs under a folder of this test (short: Unix socket paths are limited to 107
    # bytes), which also marks every process this Ray starts; no usage report from CI.
    ray_tmp = tempfile.mkdtemp(prefix="cfray-")
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray_run = tmp_path / "ray"
    ray_cfg = cfg.model_copy(
        update={"output": str(ray_run), "runner": cfg.runner.model_copy(update={"kind": "ray", "workers": 2})}
    )
    start = time.time()
    try:
        ray_ledger = run_pipeline(ray_cfg, to_stage="tokens")
        print(f"ray run to tokens: {time.time() - start:.1f} s")
        assert not ray.is_initialized(), "the Ray task runner should shut down the local Ray it started"
    finally:
        ray.shutdown()

    for name in COMPARED:
        expected, got = _data_checksums(process_run / name), _data_checksums(ray_run / name)
        assert expected, f"the process run wrote no {name}/"
        assert got == expected, f"{name}/ differs between the process and the Ray runner"
        assert _without_timings(json.loads((ray_run / name / "manifest.json").read_text())) == _without_timings(
            json.loads((process_run / name / "manifest.json").read_text())
        )
    ray_counts, process_counts = _counts(ray_ledger), _counts(process_ledger)
    assert {"shard", "tokens"} <= set(ray_counts)
    assert ray_counts == {name: process_counts[name] for name in ray_counts}

    deadline = time.time() + 20
    while (left := _live_processes_of(ray_tmp)) and time.time() < deadline:
        time.sleep(0.5)
    assert not left, f"processes left running after the Ray run: {left}"
    shutil.rmtree(ray_tmp, ignore_errors=True)  # kept for its logs when the test fails
