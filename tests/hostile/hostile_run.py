"""Run input files through the real extract path, each in its own bounded process, and measure them.

`Runner` starts one helper process (the "zygote", `serve` below) that imports the extract path and warms the
annotator once (spaCy alone takes seconds to import), then forks one child per input: each child runs
`corpus.sources.plan_units` over its file and `corpus.stages.extract.extract_unit` for each unit, exactly as the
extract stage calls them (no Prefect), and writes a JSON report of the merged ledger and of every kept and rejected
row read back from the two Arrow files. The zygote reaps each child with `os.wait4`, whose rusage covers the child
and every descendant it reaped (the extraction child that `Extractor` spawns included), kills the child's process
group past its wall-clock bound, and answers with (exit code, seconds, peak RSS).

A forked child's peak RSS counts the pages it shares with the zygote (about 0.3 GB): the bound is met with that
included. `run_process` runs any other command the same way, without the zygote.
"""

from __future__ import annotations

import json
import os
import re
import resource
import select
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RSS_LIMIT_BYTES = 2 << 30  # per worker (DESIGN.md section 8, issue 13)
# Reasons too vague to tell a user what was wrong with a record.
CATCH_ALL_REASONS = frozenset(["other", "error", "unknown", "failed", "exception", "extraction_error", "annotate_error"])


# What no kept text may contain: C0/C1 controls other than tab, newline and CR, and lone surrogates.
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# Characters no message echoed into a log may carry raw (ANSI escapes start with ESC; bidi overrides).
_UNSAFE_IN_LOG = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_REASON = re.compile(r"^[a-z][a-z0-9_]*$")
STAGES = ("ingest", "extract", "annotate")


@dataclass
class Outcome:
    """What one bounded run did."""

    returncode: int | None  # None: killed at the wall-clock bound
    seconds: float
    peak_rss_bytes: int  # max over the worker and its reaped descendants (kernel's ru_maxrss, RUSAGE_BOTH)
    report: dict | None  # the child's JSON report; None when it did not finish
    stderr: str = ""
    timed_out: bool = False

    # --- views of the report -----------------------------------------------------------------------------------------

    @property
    def ledger(self) -> dict[str, dict]:
        return {entry["name"]: entry for entry in self.report["ledger"]}

    @property
    def errors(self) -> list[dict]:
        return [e for entry in self.report["ledger"] for e in entry.get("errors", [])]

    @property
    def kept(self) -> list[dict]:
        return self.report["kept"]

    @property
    def rejected(self) -> list[dict]:
        return self.report["rejected"]

    @property
    def reasons(self) -> Counter:
        return Counter(f"{r['stage']}:{r['reason']}" for r in self.rejected)

    def summary(self) -> str:
        if self.report is None:
            return f"no report (rc={self.returncode}, timed_out={self.timed_out}, {self.seconds:.1f}s)"
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.reasons.items())) or "-"
        return (
            f"kept {len(self.kept)}, rejected {len(self.rejected)} ({reasons}), errors {len(self.errors)}, "
            f"peak RSS {self.peak_rss_bytes / 2**20:.0f} MiB, {self.seconds:.1f}s"
        )


@dataclass
class Spec:
    path: str
    out_dir: str
    ingest: dict = field(default_factory=dict)  # IngestConfig overrides (none: the defaults)
    extract: dict = field(default_factory=dict)
    annotate: dict = field(default_factory=dict)


# --- running many inputs -----------------------------------------------------------------------------------------


def shared_data_dir() -> Path:
    """Where tests/conftest.py's `shared_data` looks (env CORPUSFORGE_SHARED_DATA overrides), known at collection."""
    return Path(os.environ.get("CORPUSFORGE_SHARED_DATA") or Path(__file__).resolve().parents[3] / "shared" / "data")


def parallel_runs() -> int:
    """Input processes run at once: one per core, at most 4 (each holds a worker and an extraction child)."""
    return max(1, min(4, os.cpu_count() or 1))


def selected_params(request, argname: str) -> list:
    """Values of parameter `argname` of the tests of the requesting module that this session runs."""
    values = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if item.module is request.module and callspec is not None and argname in callspec.params:
            values.append(callspec.params[argname])
    return list(dict.fromkeys(values))


# --- what every run must show ---------------------------------------------------------------------------------------


def assert_sound(outcome: Outcome, path, *, timeout_s: float, rss_limit: int = RSS_LIMIT_BYTES) -> None:
    """The properties every hostile input must have (issue 13): the run ended normally within its bound; peak
    RSS within the limit; every record kept or rejected with a specific reason, the ledger balanced stage by stage
    and in step with the rows written; damage reported with this file's path and an offset; no extraction longer
    than the configured timeout (allowing a child start per page); nothing unsafe echoed into a message."""
    where = f"{Path(path).name}: {outcome.summary()}\n{outcome.stderr}"
    assert not outcome.timed_out, f"killed at the wall-clock bound: {where}"
    assert outcome.returncode == 0 and outcome.report is not None, f"the run did not end normally: {where}"
    assert outcome.peak_rss_bytes <= rss_limit, f"peak RSS {outcome.peak_rss_bytes / 2**20:.0f} MiB > limit: {where}"
    ledger = outcome.ledger
    assert tuple(ledger) == STAGES, where
    for name, entry in ledger.items():
        assert entry["in"] == entry["out"] + sum(entry["dropped"].values()), f"{name} does not balance: {where}"
        for reason in entry["dropped"]:
            assert _REASON.match(reason) and reason not in CATCH_ALL_REASONS, f"unspecific reason {reason!r}: {where}"
    assert ledger["extract"]["in"] == ledger["ingest"]["out"] and ledger["annotate"]["in"] == ledger["extract"]["out"]
    assert len(outcome.kept) == ledger["annotate"]["out"], where
    written = Counter((r["stage"], r["reason"]) for r in outcome.rejected)
    counted = Counter({(name, reason): n for name, e in ledger.items() for reason, n in e["dropped"].items()})
    assert written == counted, f"rejected rows {dict(written)} != ledger drops {dict(counted)}: {where}"
    for row in outcome.rejected:
        assert not _UNSAFE_IN_LOG.search(row["detail"] or ""), f"raw control character in a detail: {row['detail']!r}"
    for row in outcome.kept:
        assert not row["text_controls"], f"kept text holds {row['text_controls']}: {where}"
    for error in outcome.errors:
        assert error["path"] == str(path), error
        assert isinstance(error["offset"], int) and error["offset"] >= 0, error
        assert error["error"] and not _UNSAFE_IN_LOG.search(error["error"]), error
    # Extraction waits at most timeout_s per page the child got (those rejected before parsing cost nothing), plus
    # the child's start (about a second; again after each timeout).
    sent = max(ledger["extract"]["in"], 1)
    restarts = 1 + ledger["extract"]["dropped"].get("extraction_timeout", 0)
    assert ledger["extract"]["seconds"] <= timeout_s * sent + 15 * restarts, f"extraction took too long: {where}"


# --- parent ----------------------------------------------------------------------------------------------------------


def run_process(argv: list[str], out_dir: Path, wall_s: float) -> tuple[int | None, float, int, bool]:
    """Run `argv` from the repository root in its own process group; (exit code or None when killed at `wall_s`,
    seconds, peak RSS in bytes of it and its reaped descendants, timed out). stdout and stderr go to
    out_dir/stdout.txt and out_dir/stderr.txt."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    start = time.monotonic()
    with open(out_dir / "stdout.txt", "wb") as stdout, open(out_dir / "stderr.txt", "wb") as stderr:
        proc = subprocess.Popen(
            argv,
            cwd=REPO,
            env=env,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # its own process group: a kill at the bound takes the extraction child too
        )
        timed_out = False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > wall_s:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
    seconds = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: keep Popen from waiting again
    try:  # anything the group left behind (nothing, normally) must not outlive the test
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return (None if timed_out else proc.returncode), seconds, usage.ru_maxrss * 1024, timed_out


def _env() -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    return env


def _outcome(out_dir: Path, returncode: int | None, seconds: float, peak: int, timed_out: bool) -> Outcome:
    report_path = out_dir / "report.json"
    report = json.loads(report_path.read_text()) if report_path.is_file() and not timed_out else None
    if report is not None:  # the child's own view too (the same numbers, unless the kernel merged differently)
        peak = max(peak, report["maxrss_self_kib"] * 1024, report["maxrss_children_kib"] * 1024)
    stderr_path = out_dir / "stderr.txt"
    stderr = stderr_path.read_text(errors="replace")[-4000:] if stderr_path.is_file() else ""
    return Outcome(returncode, seconds, peak, report, stderr, timed_out)


class Runner:
    """Runs inputs through the extract path, `parallel` at a time, each in a process forked from one warm zygote.

    `submit(path, out_dir, wall_s=..., ingest=..., extract=..., annotate=...)` returns a Future of its `Outcome`;
    `run(...)` waits for it. Use as a context manager (or call `close`)."""

    def __init__(self, parallel: int | None = None):
        self.parallel = parallel or parallel_runs()
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(self.parallel)],
            cwd=REPO,
            env=_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        ready = self.proc.stdout.readline()
        if ready.strip() != b"ready":
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"the zygote did not start: {ready!r} (run {__file__} --serve 1 to see why)")
        self.lock = threading.Lock()
        self.pending: dict[int, tuple[Future, Path]] = {}
        self.next_id = 0
        self.reader = threading.Thread(target=self._read, name="hostile-zygote", daemon=True)
        self.reader.start()

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def submit(self, path, out_dir, *, wall_s: float, ingest=None, extract=None, annotate=None) -> Future:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        spec = Spec(str(path), str(out_dir), ingest or {}, extract or {}, annotate or {})
        future: Future = Future()
        with self.lock:
            job_id, self.next_id = self.next_id, self.next_id + 1
            self.pending[job_id] = (future, out_dir)
            self.proc.stdin.write(json.dumps({"id": job_id, "spec": spec.__dict__, "wall_s": wall_s}).encode() + b"\n")
            self.proc.stdin.flush()
        return future

    def run(self, path, out_dir, **kwargs) -> Outcome:
        return self.submit(path, out_dir, **kwargs).result()

    def _read(self) -> None:
        for line in self.proc.stdout:
            done = json.loads(line)
            with self.lock:
                future, out_dir = self.pending.pop(done["id"])
            outcome = _outcome(out_dir, done["returncode"], done["seconds"], done["peak"], done["timed_out"])
            future.set_result(outcome)
        with self.lock:  # the zygote died: nothing pending will be answered
            for future, _ in self.pending.values():
                future.set_exception(RuntimeError(f"the zygote exited with {self.proc.poll()}"))
            self.pending.clear()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()  # the zygote finishes the runs in flight, then exits
            try:
                self.proc.wait(timeout=600)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.reader.join(timeout=10)


class Runs:
    """The runs of one test module: every selected input is submitted at the first `get`, so they overlap."""

    def __init__(self, runner: Runner, jobs: dict, order: list):
        self.runner, self.jobs, self.order = runner, jobs, order
        self.futures: dict[object, Future] = {}

    def get(self, key) -> Outcome:
        if not self.futures:
            for k in self.order:
                self.futures[k] = self.jobs[k](self.runner)
        if key not in self.futures:
            self.futures[key] = self.jobs[key](self.runner)
        return self.futures[key].result()


# --- the zygote ------------------------------------------------------------------------------------------------------


def _warm() -> None:
    """Import what every child needs and let the annotator load its models once (English; other languages load in
    the child that meets them)."""
    import corpus.sources  # every format registered
    import corpus.stages.extract  # noqa: F401
    from corpus.annotate import Annotator
    from corpus.config import AnnotateConfig
    from corpus.document import Document

    text = "The river runs under the old bridge. Children walk to the school by the museum every morning. " * 10
    Annotator(AnnotateConfig()).annotate(Document(id="warm", source="warm", offset=0, text=text))


def _child(job: dict) -> None:
    """In the forked child: run the job, exit; never return to the zygote's loop."""
    code = 1
    try:
        os.setsid()  # its own process group, with the extraction child it spawns
        out_dir = Path(job["spec"]["out_dir"])
        err = os.open(out_dir / "stderr.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(null, 1)  # the zygote's stdout is its answer channel
        os.dup2(err, 2)
        main(json.dumps(job["spec"]))
        code = 0
    except BaseException:  # noqa: BLE001 - the traceback is the report
        traceback.print_exc()
    finally:
        try:
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(parallel: int) -> None:
    """The zygote: jobs in on stdin (JSON lines), answers out on stdout; single-threaded, so forking is safe."""
    _warm()
    out = sys.stdout.buffer
    out.write(b"ready\n")
    out.flush()
    stdin = sys.stdin.buffer.fileno()
    buffer, queue, running, stdin_open = b"", [], {}, True
    while stdin_open or queue or running:
        if stdin_open:
            readable, _, _ = select.select([stdin], [], [], 0.02)
            if readable:
                chunk = os.read(stdin, 1 << 16)
                if not chunk:
                    stdin_open = False
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                queue.extend(json.loads(line) for line in lines if line.strip())
        else:
            time.sleep(0.02)
        while queue and len(running) < parallel:
            job = queue.pop(0)
            pid = os.fork()
            if pid == 0:
                _child(job)
            running[pid] = (job, time.monotonic())
        for pid, (job, started) in list(running.items()):
            done, status, usage = os.wait4(pid, os.WNOHANG)
            timed_out = False
            if not done:
                if time.monotonic() - started <= job["wall_s"]:
                    continue
                timed_out = True
                _kill_group(pid, leader=True)  # not reaped yet: the pid is still this child's
                done, status, usage = os.wait4(pid, 0)
            del running[pid]
            _kill_group(pid)  # anything the child left behind (nothing, normally)
            answer = {
                "id": job["id"],
                "returncode": None if timed_out else os.waitstatus_to_exitcode(status),
                "seconds": time.monotonic() - started,
                "peak": usage.ru_maxrss * 1024,  # KiB on Linux
                "timed_out": timed_out,
            }
            out.write(json.dumps(answer).encode() + b"\n")
            out.flush()


def _kill_group(pid: int, *, leader: bool = False) -> None:
    """SIGKILL the process group the child `pid` made; with `leader` (only before the child is reaped, while its
    pid cannot have been reused) the child itself too, in case it had not made its group yet."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        if leader:
            os.kill(pid, signal.SIGKILL)


# --- child -----------------------------------------------------------------------------------------------------------


def _rows(path: Path) -> list[dict]:
    import pyarrow as pa

    if not path.is_file():
        return []
    with pa.memory_map(str(path)) as source:
        table = pa.ipc.open_stream(source).read_all()
    columns = [c for c in ("id", "url", "offset", "title", "stage", "reason", "detail") if c in table.column_names]
    rows = table.select(columns).to_pylist()
    if "text" in table.column_names:
        for row, text in zip(rows, table.column("text").to_pylist()):
            text = text or ""
            row["text_chars"] = len(text)
            row["text_head"], row["text_tail"] = text[:300], text[-300:]
            row["text_controls"] = sorted({f"U+{ord(c):04X}" for c in _CONTROLS.findall(text)})
    return rows


def main(spec_json: str) -> None:
    from corpus.config import AnnotateConfig, ExtractConfig, IngestConfig
    from corpus.manifest import merge_ledgers
    from corpus.sources import plan_units
    from corpus.stages.extract import extract_unit

    spec = Spec(**json.loads(spec_json))
    ingest = IngestConfig(**spec.ingest)
    extract = ExtractConfig(**spec.extract)
    annotate = AnnotateConfig(**spec.annotate)
    out = Path(spec.out_dir)
    units = plan_units([spec.path], ingest)
    ledgers, kept, rejected, unit_seconds = [], [], [], []
    for i, unit in enumerate(units):
        kept_path, rejected_path = out / f"kept-{i:05d}.arrow", out / f"rejected-{i:05d}.arrow"
        t0 = time.monotonic()
        ledgers.append(extract_unit(unit, ingest, extract, annotate, kept_path, rejected_path))
        unit_seconds.append(time.monotonic() - t0)
        kept += _rows(kept_path)
        rejected += _rows(rejected_path)
    ledger = [entry.to_json() for entry in merge_ledgers(ledgers)] if ledgers else []
    report = {
        "units": len(units),
        "unit_seconds": unit_seconds,
        "ledger": ledger,
        "kept": kept,
        "rejected": rejected,
        "maxrss_self_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "maxrss_children_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
    }
    tmp = out / "report.json.tmp"
    tmp.write_text(json.dumps(report, default=str))
    tmp.rename(out / "report.json")


if __name__ == "__main__":
    if sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
    else:
        main(sys.argv[1])
