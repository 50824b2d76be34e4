"""Scheduled runs: `corpusforge deploy` and `corpusforge serve` against a temporary Prefect server
(prefect_test_harness). A deployment is triggered and a process worker runs it to completion on real text; a served
flow's schedule reads back through the Prefect client; a bad cron is refused before anything else."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.cli import app

CRON = "0 3 * * *"
FLOW = "corpusforge-pipeline"
runner = CliRunner()


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """One temporary Prefect server (about 10 s) for this module; the environment its subprocesses get.

    Module-scoped, not session-scoped: while the harness is active it is Prefect's default local server, and a later
    module's pipeline run (flows.pipeline.prefect_api) would take it over and stop it."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect-home")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_HOME", str(home))
    with prefect_test_harness(server_startup_timeout=60):
        env = dict(os.environ, PREFECT_API_URL=PREFECT_API_URL.value(), PREFECT_HOME=str(home))
        env["PREFECT_LOGGING_LEVEL"] = "WARNING"
        yield env


def _client():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def _novel_jsonl(shared_data: Path, path: Path) -> Path:
    """Eight documents of five real paragraphs each from Pride and Prejudice: a run of a few seconds."""
    text = (shared_data / "english-text" / "gutenberg" / "pg1342-pride-and-prejudice.txt").read_text(encoding="utf-8")
    paragraphs = [re.sub(r"\s+", " ", p).strip() for p in text.split("\n\n")]
    paragraphs = [p for p in paragraphs if len(p.split()) > 60][10:50]
    with path.open("w", encoding="utf-8") as f:
        for i in range(8):
            f.write(json.dumps({"id": f"pp-{i}", "text": "\n\n".join(paragraphs[5 * i : 5 * i + 5])}) + "\n")
    return path


def test_deployment_is_triggered_and_a_process_worker_completes_it(prefect_server, shared_data, tmp_path):
    from prefect.deployments import run_deployment

    data = _novel_jsonl(shared_data, tmp_path / "novel.jsonl")
    run = tmp_path / "run"
    args = ["deploy", "--preset", "tiny", "--input", str(data), "--output", str(run), "--cron", CRON]
    args += ["--name", "nightly", "--pool", "cf-test", "--set", "pretrain.enabled=false"]
    args += ["--set", "tokenizer.vocab_size=512", "--set", "runner.workers=1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"prefect deployment run {FLOW}/nightly" in result.output
    assert "prefect worker start --pool cf-test" in result.output

    with _client() as client:
        deployment = client.read_deployment_by_name(f"{FLOW}/nightly")
        pool = client.read_work_pool("cf-test")
    assert str(deployment.id) in result.output
    assert pool.type == "process"
    assert deployment.work_pool_name == "cf-test"
    assert [s.schedule.cron for s in deployment.schedules] == [CRON]
    assert deployment.entrypoint == "flows.pipeline.corpusforge_pipeline"
    cfg = deployment.parameters["cfg"]
    assert cfg["input"] == [str(data)] and cfg["output"] == str(run)
    assert cfg["pretrain"]["enabled"] is False and cfg["tokenizer"]["vocab_size"] == 512

    flow_run = run_deployment(deployment.id, timeout=0)  # scheduled now; the worker below picks it up
    worker = subprocess.run(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", "cf-test", "--type", "process", "--run-once", "--limit", "1"],
        env=prefect_server,
        cwd=tmp_path,  # the flow is imported by module path, from anywhere
        check=False,  # its state is asserted below, with its output
        capture_output=True,
        text=True,
        timeout=240,
    )
    with _client() as client:
        state = client.read_flow_run(flow_run.id).state
    assert state.is_completed(), f"{state!r}\n{worker.stdout[-3000:]}\n{worker.stderr[-3000:]}"

    ledger = json.loads((run / "manifest.json").read_text())
    stages = {s["name"]: s for s in ledger["stages"]}
    assert stages["ingest"]["in"] == 8 and "tokens" in stages and "pretrain" not in stages
    for s in ledger["stages"]:
        assert s["in"] == s["out"] + sum(s["dropped"].values()), s
    assert list((run / "tokens" / "train").glob("shard-*.arrow"))


def test_served_flow_schedule_reads_back_and_stops_cleanly(prefect_server, tmp_path):
    serving = subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "serve", "--cron", CRON, "--name", "served", "--output", str(tmp_path / "run")],
        env=prefect_server,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deployment = _wait_for_deployment(f"{FLOW}/served", serving, timeout=90)  # and for its runner to poll
        assert [s.schedule.cron for s in deployment.schedules] == [CRON]
        assert deployment.schedules[0].active and not deployment.paused
        assert deployment.work_pool_name is None  # runs in the serving process, not through a pool
        assert deployment.parameters["cfg"]["output"] == str(tmp_path / "run")
    finally:
        serving.send_signal(signal.SIGTERM)
        try:
            output, _ = serving.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            serving.kill()
            output, _ = serving.communicate()
    assert serving.returncode == 0, output
    assert f"prefect deployment run {FLOW}/served" in output and str(deployment.id) in output
    with _client() as client:
        assert client.read_deployment(deployment.id).paused  # a stopped server leaves no schedule firing into the void


def _wait_for_deployment(name: str, process: subprocess.Popen, timeout: float):
    from prefect.client.schemas.objects import DeploymentStatus
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + timeout
    with _client() as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"serve exited with {process.returncode}: {process.stdout.read()}")
            try:
                deployment = client.read_deployment_by_name(name)
            except ObjectNotFound:
                deployment = None
            # Polled (status READY): the runner has started and handles SIGTERM, which before it would just kill.
            if deployment is not None and deployment.status == DeploymentStatus.READY:
                return deployment
            time.sleep(0.5)
    pytest.fail(f"serve did not register and poll {name} within {timeout} s")


@pytest.mark.parametrize("command", ["deploy", "serve"])
@pytest.mark.parametrize("cron", ["61 * * * *", "0 3 * *", "nightly"])
def test_invalid_cron_is_refused_before_any_work(command, cron, tmp_path):
    result = runner.invoke(app, [command, "--cron", cron, "--output", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert f"--cron {cron!r} is not a valid cron expression" in result.output
    assert "'0 3 * * *'" in result.output  # an example of a valid one
    assert not (tmp_path / "run").exists()


def test_deploy_without_a_server_says_how_to_start_one(tmp_path):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        result = runner.invoke(app, ["deploy", "--cron", CRON, "--output", str(tmp_path / "run")])
    assert result.exit_code == 2, result.output
    assert "PREFECT_API_URL is not set" in result.output and "prefect server start" in result.output
