"""The pipeline flow: the stages of corpus/, tokenizer/ and training/ in order, each run by `corpus.stage.run_stage`
with a map that submits the work units, in batches, as Prefect tasks to the task runner (process pool or Ray).

Stages, their folders and the ledger stages they report (DESIGN.md section 3):
    extract   -> extracted/   ingest, extract, annotate (fused per unit: each page is parsed once)
    filter    -> filter/      filter (a keep mask per extracted part, no copy of the documents)
    dedup     -> dedup/       dedup
    shard     -> documents/   shard
    tokenizer -> tokenizer/   tokenizer
    tokens    -> tokens/      tokens
    pretrain  -> model/       pretrain
    finetune  -> finetune/    finetune
A stage is skipped when its manifest carries the fingerprint it would have now (config sections, upstream
fingerprint, code and output schema), so a rerun only does what changed. Everything stage-specific lives with the
stage; this module only composes.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: the Prefect limit alone
    fcntl = None

from corpus import stage as corpus_stage
from corpus.atomic import write_text_atomic
from corpus.safe import safe_text
from corpus.manifest import fingerprint
from corpus.stage import PlannedStage, plan_stages, run_stage, write_run_ledger
from corpus.stages import CORPUS_STAGES, input_paths, inputs_fingerprint, sample_input
from flows.config import PipelineConfig, to_yaml
from tokenizer.stages import TOKENIZER, TOKENS
from training.stages import FINETUNE, PRETRAIN

STAGE_OBJECTS = [*CORPUS_STAGES, TOKENIZER, TOKENS, PRETRAIN, FINETUNE]
STAGES = [name for stage in STAGE_OBJECTS for name in stage.ledger_names]  # the names --from/--to take
_INDEX_OF = {name: index for index, stage in enumerate(STAGE_OBJECTS) for name in stage.ledger_names}

__all__ = ["STAGES", "STAGE_OBJECTS", "input_paths", "plan", "progress", "run_pipeline", "sample_input"]


def progress(message: str) -> None:
    """A progress line of a long stage (crawl, pretrain): on stderr (corpus.stage.progress) and in the Prefect
    run's log when called inside a flow or task run."""
    corpus_stage.progress(message)
    try:
        from prefect.logging import get_run_logger

        get_run_logger().info(message)
    except Exception:  # outside a flow or task run (tests, library use): the stderr line is enough
        pass


def plan(cfg: PipelineConfig, from_stage: str | None = None, to_stage: str | None = None, force: bool = False) -> list[PlannedStage]:
    for name in (from_stage, to_stage):
        if name is not None and name not in _INDEX_OF:
            raise ValueError(f"unknown stage {name!r}: choose one of {', '.join(STAGES)}")
    return plan_stages(
        STAGE_OBJECTS,
        cfg,
        Path(cfg.output),
        inputs_fingerprint(cfg),
        first=_INDEX_OF[from_stage] if from_stage else None,
        last=_INDEX_OF[to_stage] if to_stage else None,
        force=force,
    )


# --- Prefect API: one temporary server for the whole run, shared by the workers -------------------------------------


@contextlib.contextmanager
def prefect_api() -> Iterator[None]:
    """Use the user's Prefect server when PREFECT_API_URL is set; else start one temporary local server.

    Without this, every worker process would start its own temporary server (DESIGN.md section 9). Started under a
    flows.interrupt.RunGuard, the server never sees a Ctrl-C (the run reports its end to it, then stops it), and a
    watchdog fails the run within a second if the server exits under it.
    """
    import threading

    from flows.interrupt import active_guard, watch_server

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    home = Path(os.environ.setdefault("PREFECT_HOME", str(Path.home() / ".prefect")))
    home.mkdir(parents=True, exist_ok=True)
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    global _temporary_server
    server = TemporaryServer()
    server.start(timeout=120)
    os.environ["PREFECT_API_URL"] = server.api_url
    _temporary_server = True
    guard = active_guard()
    if guard is not None and server.server_process is not None:
        guard.keep.add(server.server_process.pid)  # stopped below, after the run reported its end to it
    stop_watching = threading.Event()
    watch_server(server, stop_watching)
    from prefect.context import refresh_global_settings_context
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

    # This process read its Prefect settings from the environment when it imported prefect: read them again, so
    # that every thread (Prefect's log and event workers too) talks to this server instead of starting one.
    refresh_global_settings_context()
    # No flow heartbeats: they serve a server that watches for crashed runs, and this one ends with the run; each
    # flow would wait up to a second for its heartbeat thread at its end.
    try:
        with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
            yield
    finally:
        stop_watching.set()
        if server.server_process is not None and server.server_process.poll() is None:
            # Send queued logs and events while the server is still up, not into a closed port at exit.
            with contextlib.suppress(Exception):
                from prefect.events.worker import EventsWorker
                from prefect.logging.handlers import APILogWorker

                APILogWorker.drain_all(timeout=5, at_exit=False)
                EventsWorker.drain_all(timeout=5, at_exit=False)
        server.stop()
        _temporary_server = False
        os.environ.pop("PREFECT_API_URL", None)
        refresh_global_settings_context()


class TemporaryServer:
    """A Prefect server in a child process for the length of one run: what prefect's SubprocessASGIServer does,
    without importing the server's modules (FastAPI, SQLAlchemy, its models: about 2 s) into this process, which
    only talks to it over HTTP."""

    def __init__(self):
        self.port: int | None = None
        self.server_process = None

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.address}/api"

    def start(self, timeout: float) -> None:
        import httpx

        import atexit

        deadline = time.monotonic() + timeout
        self._spawn()
        atexit.register(self.stop)
        with httpx.Client() as client:
            while time.monotonic() < deadline:
                code = self.server_process.poll()
                if code == 3:  # the port was taken meanwhile (uvicorn's exit code for it): another one
                    self._spawn()
                    continue
                if code is not None:
                    raise RuntimeError(f"the temporary Prefect server exited with code {code} while starting")
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{self.api_url}/health", timeout=5).status_code == 200:
                        return
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the temporary Prefect server did not answer within {timeout:.0f} s")

    def _spawn(self) -> None:
        import socket
        import subprocess
        import sys

        import prefect
        from prefect.settings import get_current_settings

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        env = {
            **os.environ,
            **get_current_settings().to_environment_variables(exclude_unset=True),
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        }
        self.server_process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "--app-dir", str(Path(prefect.__file__).parent.parent), "--factory",
             "prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", "error", "--lifespan", "on"],
            env=env,
        )

    def stop(self) -> None:
        process, self.server_process = self.server_process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=5)
        except Exception:  # noqa: BLE001 - TimeoutExpired: it did not stop in time
            process.kill()
            process.wait()


# --- progress reporting (the CLI plugs a rich progress bar in here) -------------------------------------------------

Reporter = Callable[[str, int, int], None]  # (stage name, done units, total units)


def _no_report(stage: str, done: int, total: int) -> None:
    pass


_reporter: Reporter = _no_report


# --- the flows ------------------------------------------------------------------------------------------------------

# One Prefect flow per stage group, composed by the pipeline flow as subflows.
STAGE_GROUPS = {
    "ingest-and-clean": ("extract", "filter"),
    "dedup": ("dedup", "shard"),
    "tokenize": ("tokenizer", "tokens"),
    "train": ("pretrain", "finetune"),
}
GPU_LIMIT = "corpusforge-gpu"  # Prefect global concurrency limit around the training stages (created with 1 slot)
GPU_STAGES = ("pretrain", "finetune")


def run_pipeline(
    cfg: PipelineConfig,
    from_stage: str | None = None,
    to_stage: str | None = None,
    force: bool = False,
    report: Reporter = _no_report,
) -> dict:
    """Run the stages that are not current, through the Prefect flow when any must run; returns the ledger.

    A run that fails or is interrupted (Ctrl-C: KeyboardInterrupt; its server dying: flows.interrupt.ServerDied)
    still writes RUN/manifest.json: the ledger of the stages that finished, and `"failed": {"stage", "error"}`
    naming the first stage that did not; then the exception goes on to the caller.
    """
    from corpus.atomic import write_json_atomic
    from corpus.manifest import MANIFEST, is_current
    from flows.interrupt import RunGuard, ServerDied, active_guard

    global _reporter
    planned = plan(cfg, from_stage, to_stage, force)
    if not any(p.action == "run" for p in planned):
        _write_config(cfg)
        return _finish_run(Path(cfg.output), planned, only_if_missing=True)
    _reporter = report
    guard = active_guard()  # the CLI enters one before its progress display starts a thread
    owned = guard is None
    if owned:
        guard = RunGuard()
    try:
        with guard if owned else contextlib.nullcontext(), prefect_api():
            return corpusforge_pipeline(cfg, from_stage, to_stage, force)
    except BaseException as exc:
        cause = guard.cause if guard.cause is not None else exc
        with contextlib.suppress(Exception):  # the ledger of a failed run must never hide why it failed
            run_dir = Path(cfg.output)
            unfinished = [
                i for i, p in enumerate(planned) if p.action == "run" and not is_current(run_dir / p.stage.dirname, p.fingerprint)
            ]
            failed_at = unfinished[0] if unfinished else len(planned)
            run_dir.mkdir(parents=True, exist_ok=True)
            ledger = write_run_ledger(run_dir, planned[:failed_at])
            ledger["failed"] = {
                "stage": planned[failed_at].stage.name if unfinished else None,
                "error": str(cause) or type(cause).__name__,
                "exception": type(cause).__name__,
            }
            write_json_atomic(run_dir / MANIFEST, ledger)
        if isinstance(cause, ServerDied):
            raise cause from None
        if isinstance(cause, KeyboardInterrupt) and not isinstance(exc, KeyboardInterrupt):
            raise KeyboardInterrupt(str(cause)) from None  # the stopped workers' errors are not the story
        raise
    finally:
        _reporter = _no_report


def pipeline(cfg: PipelineConfig, from_stage: str | None = None, to_stage: str | None = None, force: bool = False) -> dict:
    """The pipeline flow: each stage group that has work runs as a subflow; ends with the ledger and artifacts."""
    planned = plan(cfg, from_stage, to_stage, force)
    _write_config(cfg)
    runner = _task_runner(cfg)
    # One process pool, or one Ray instance, for the corpus and tokenizer groups: the subflows' runners find it
    # started and use it. Training starts from fresh workers, without the corpus stages' libraries in memory.
    with contextlib.ExitStack() as held:
        held.enter_context(runner.duplicate() if cfg.runner.kind == "ray" else runner)
        for group, names in STAGE_GROUPS.items():
            todo = [p.stage.name for p in planned if p.stage.name in names and p.action == "run"]
            if group == "train" and cfg.runner.kind != "ray":
                held.close()
            if todo:
                GROUP_FLOWS[group].with_options(task_runner=runner)(cfg, todo)
    ledger = _finish_run(Path(cfg.output), planned)
    _publish_artifacts(ledger)
    return ledger


def _finish_run(run_dir: Path, planned: list[PlannedStage], only_if_missing: bool = False) -> dict:
    """The ledger, then the report made from it, then the ledger again naming the report. A report that cannot be
    written is logged, never a failed run."""
    ledger = write_run_ledger(run_dir, planned)
    report = run_dir / "report" / "report.html"
    if not (only_if_missing and report.is_file()):
        try:
            from flows.report import write_report

            write_report(run_dir, report)
        except Exception as exc:  # the corpus and model are there; the pictures are not worth failing the run
            progress(f"report not written: {type(exc).__name__}: {exc}")
            return ledger
    return write_run_ledger(run_dir, planned, report=report)


def stage_group(cfg: PipelineConfig, stages: list[str]) -> None:
    """A stage group's flow: its stages in order, each mapping its units over the task runner."""
    global _workers
    _workers = cfg.runner.workers or _ray_cpus(cfg) or os.cpu_count() or 1
    planned = {p.stage.name: p for p in plan(cfg)}
    for name in stages:
        p = planned[name]
        with _gpu_slot() if name in GPU_STAGES else contextlib.nullcontext():
            run_stage(p.stage, cfg, cfg.output, upstream_fingerprint=p.upstream_fingerprint, map=_map_units, log=progress, force=True)


def _ray_cpus(cfg: PipelineConfig) -> int:
    """The CPUs of the Ray cluster the run uses (0 when not on Ray): its workers, for cutting units into batches."""
    if cfg.runner.kind != "ray":
        return 0
    import ray

    return int(ray.cluster_resources().get("CPU", 0)) if ray.is_initialized() else 0


def _write_config(cfg: PipelineConfig) -> None:
    run_dir = Path(cfg.output)
    run_dir.mkdir(parents=True, exist_ok=True)
    header = f"# corpusforge config, fingerprint {fingerprint(cfg.model_dump(mode='json'))}\n"
    write_text_atomic(run_dir / "config.yaml", header + to_yaml(cfg))


def _task_runner(cfg: PipelineConfig):
    if cfg.runner.kind == "ray":
        from prefect_ray import RayTaskRunner  # the `ray` extra

        # Ray workers report to this run's Prefect API (set by prefect_api()) instead of each starting a server.
        env = {k: os.environ[k] for k in ("PREFECT_API_URL", "PREFECT_LOGGING_LEVEL") if os.environ.get(k)}
        init_kwargs: dict = {"runtime_env": {"env_vars": env}}
        if not cfg.runner.ray_address and not os.environ.get("RAY_ADDRESS"):
            # A new local Ray (not one found on this machine) with runner.workers CPUs.
            init_kwargs["address"] = "local"
            if cfg.runner.workers:
                init_kwargs["num_cpus"] = cfg.runner.workers
        return RayTaskRunner(address=cfg.runner.ray_address or None, init_kwargs=init_kwargs)
    from flows.interrupt import leave_ctrl_c_to_the_parent

    return shared_process_pool()(max_workers=cfg.runner.workers or os.cpu_count() or 1, initializer=leave_ctrl_c_to_the_parent)


@functools.cache
def shared_process_pool() -> type:
    """A ProcessPoolTaskRunner that the pipeline's stage groups share: their flows enter and leave it (Prefect
    enters a flow's runner through `duplicate()`), the pool starts at the first entry and stops at the last exit.
    One pool, not one per group: a fresh pool spawns its workers and each imports Prefect and the stages again
    (about 1.5 s a group). Defined on first use: Prefect is imported only by runs that need it."""
    from prefect.task_runners import ProcessPoolTaskRunner

    class SharedProcessPoolTaskRunner(ProcessPoolTaskRunner):
        _entered = 0

        def duplicate(self):
            return self

        def __enter__(self):
            if self._entered == 0:
                super().__enter__()
            self._entered += 1
            return self

        def __exit__(self, *exc_info) -> None:
            self._entered -= 1
            if self._entered == 0:
                super().__exit__(*exc_info)

        def __reduce__(self):
            # A task sent to a worker carries its flow, and the flow this runner, started (its pool, its queue):
            # the worker gets an idle copy, as the flow's runner used to be before it was started.
            return (ProcessPoolTaskRunner, (self._max_workers,))

    return SharedProcessPoolTaskRunner


_temporary_server = False  # the run's Prefect API is a server prefect_api() started for it


@contextlib.contextmanager
def _gpu_slot() -> Iterator[None]:
    """One training stage at a time per Prefect server: a slot of the GPU_LIMIT global limit (1 unless the user set
    it otherwise, e.g. `prefect gcl update corpusforge-gpu --limit 2`), held under a lease (Prefect's default, 300 s,
    renewed while held) that a server running its services takes back once a killed holder stops renewing it.

    A run on a temporary server takes a file lock in PREFECT_HOME instead (one training per machine and Prefect
    home): that server keeps leases in its memory and revokes none, while the slot count lives on in the database
    under PREFECT_HOME, so a run killed while training would hold the slot for every later run; the kernel releases
    a dead process's lock."""
    if _temporary_server and fcntl is not None:
        with _machine_gpu_lock():
            yield
        return
    from prefect.client.orchestration import get_client
    from prefect.concurrency.sync import concurrency
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(GPU_LIMIT)
        except ObjectNotFound:
            from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

            with contextlib.suppress(Exception):  # another run created it meanwhile
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=GPU_LIMIT, limit=1))
    with concurrency(GPU_LIMIT, occupy=1, strict=True):
        yield


@contextlib.contextmanager
def _machine_gpu_lock() -> Iterator[None]:
    path = Path(os.environ.get("PREFECT_HOME", Path.home() / ".prefect")) / f"{GPU_LIMIT}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            progress(f"waiting for the training slot ({path}) held by {lock.read().strip() or 'another run'}")
            fcntl.flock(lock, fcntl.LOCK_EX)
        lock.seek(0)
        lock.truncate()
        lock.write(f"pid {os.getpid()} since {time.strftime('%H:%M:%S')}\n")
        lock.flush()
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def is_transient(task, task_run, state) -> bool:
    """Retry a unit only for network trouble (connection errors, timeouts, HTTP 5xx), never for bad data."""
    try:
        state.result()
    except Exception as exc:  # the unit's own exception
        import httpx

        if isinstance(exc, httpx.HTTPStatusError):
            return exc.response.status_code >= 500
        return isinstance(exc, (httpx.TransportError, ConnectionError, TimeoutError))
    return False


def _map_units(name: str, fn, calls: list[tuple]) -> list:
    """The Prefect map of run_stage: the units cut into batches, one task per batch; results in unit order, progress
    reported as batches finish.

    A task costs about 0.1 s of Prefect bookkeeping (its run and states written to the API) whatever it does, as much
    as a filter or shard unit's own work: batches of units (`unit_batches`) keep that cost a few percent of the run.
    Units stay the unit of output and of resumption."""
    from prefect import task
    from prefect.cache_policies import NO_CACHE
    from prefect.futures import as_completed

    # Finished work is found by the stages' own fingerprints (manifests), not by Prefect's result cache.
    unit_task = task(_run_batch).with_options(
        name=f"{name}-units", cache_policy=NO_CACHE, persist_result=False, retries=2, retry_condition_fn=is_transient
    )
    batches = unit_batches(len(calls), _workers)
    futures = [unit_task.submit(fn, [calls[i] for i in batch]) for batch in batches]
    index = {id(f): batch for f, batch in zip(futures, batches)}
    results: list = [None] * len(calls)
    done = 0
    _reporter(name, 0, len(calls))
    for future in as_completed(futures):
        for i, result in zip(index[id(future)], future.result()):
            results[i] = result
        done += len(index[id(future)])
        _reporter(name, done, len(calls))
    return results


_workers = 1  # the run's worker count, set by the stage group's flow


def unit_batches(n_units: int, workers: int) -> list[range]:
    """Unit indexes cut into contiguous batches, largest first (guided self-scheduling): each batch takes half a
    worker's share of the units left, but no fewer than a 16th of a worker's share of all units. The pool runs them
    in order, so the small batches at the end even out the workers' finishing times; for a few hundred units on a
    few workers that is about 5 tasks a worker instead of one a unit."""
    batches, start = [], 0
    floor = max(1, n_units // (workers * 16))
    while start < n_units:
        size = min(n_units - start, max(floor, -(-(n_units - start) // (2 * workers))))
        batches.append(range(start, start + size))
        start += size
    return batches


def _run_batch(fn, calls: list[tuple]) -> list:
    return [fn(*args) for args in calls]


def _publish_artifacts(ledger: dict) -> None:
    """The run's ledger (markdown) and stage timings (table) as Prefect artifacts, with the report's path."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    lines = ["| stage | in | out | dropped |", "|---|---:|---:|---|"]
    for s in ledger["stages"]:
        dropped = ", ".join(f"{reason} {n}" for reason, n in s["dropped"].items()) or "-"
        lines.append(f"| {s['name']} | {s['in']} | {s['out']} | {dropped} |")
    report = ledger["outputs"].get("report")
    lines += ["", f"Run directory: `{ledger['run']}`", f"Report: `{report}`" if report else "Report: not written"]
    for err in ledger.get("errors", [])[:20]:
        path, error = safe_text(err.get("path")).replace("`", "'"), safe_text(err.get("error")).replace("`", "'")
        lines.append(f"- input problem: `{path}` at byte {err.get('offset')}: {error}")
    create_markdown_artifact("\n".join(lines), key="corpusforge-ledger", description="in and out per stage, drops by reason")
    create_table_artifact(
        [{"stage": s["name"], "seconds": s["seconds"], "in": s["in"], "out": s["out"]} for s in ledger["stages"]],
        key="corpusforge-stage-timings",
        description="seconds per stage",
    )


def _flow(fn, name: str):
    from prefect import flow

    return flow(fn, name=name, validate_parameters=True)


corpusforge_pipeline = _flow(pipeline, "corpusforge-pipeline")
GROUP_FLOWS = {group: _flow(stage_group, f"corpusforge-{group}") for group in STAGE_GROUPS}
