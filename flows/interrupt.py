"""Ending a run on purpose: Ctrl-C, or a temporary Prefect server that died, stops the whole run within seconds.

A run is this process plus the processes it starts: the process-pool workers (and the extraction children they
start), torchrun and its ranks on several GPUs, and the temporary Prefect server. A Ctrl-C at the terminal is sent
to every one of them; left to themselves, the workers print their KeyboardInterrupt tracebacks, report it to a
server that is shutting down, and the flow waits minutes for them.

`RunGuard` keeps that in one hand. While it is entered (in the main thread) SIGINT is blocked, so every thread
started meanwhile inherits the block, and the worker processes ignore it (`leave_ctrl_c_to_the_parent`; a spawned
Python does not inherit a signal mask): one listener thread takes it, stops
the processes the run started except the Prefect server (SIGTERM, SIGKILL after a grace period), and raises
KeyboardInterrupt in the main thread, so Prefect marks the run crashed while its server is still up, and the server
is stopped last. A second Ctrl-C ends everything at once. `interrupt` does the same from another thread (the
server's watchdog in `flows.pipeline.prefect_api`, when the server exits under the run).

What a stopped run leaves is what a killed one leaves: finished stages and finished units are kept, and the same
command resumes.
"""

from __future__ import annotations

import _thread
import os
import signal
import threading
import time
from pathlib import Path

GRACE_SECONDS = 3.0  # between SIGTERM and SIGKILL for the run's processes


def leave_ctrl_c_to_the_parent() -> None:
    """In a worker process the run started: ignore SIGINT. A spawned Python starts with SIGINT unblocked whatever its
    parent's mask, and a Ctrl-C reaches the whole process group: the parent's guard stops the worker instead, so
    it neither prints a KeyboardInterrupt traceback nor reports a half-started task."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class ServerDied(RuntimeError):
    """The temporary Prefect server exited while the run needed it."""


# --- processes -------------------------------------------------------------------------------------------------------


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    proc = Path("/proc")
    if proc.is_dir():
        for stat in proc.glob("[0-9]*/stat"):
            try:
                # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")"
                ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(stat.parent.name))
    else:  # no /proc (macOS): the multiprocessing children at least
        import multiprocessing

        children[os.getpid()] = [p.pid for p in multiprocessing.active_children() if p.pid]
    return children


def descendants(pid: int | None = None) -> list[int]:
    """Every living process below `pid` (default: this one), parents before their children."""
    children = _children_map()
    found, todo = [], [os.getpid() if pid is None else pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")  # a zombie has ended
    except (OSError, IndexError):
        pass
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def stop_processes(pids: list[int], grace: float = GRACE_SECONDS) -> None:
    """SIGTERM to each (torchrun passes it on to its ranks), SIGKILL to those still alive after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 1.0)
        while time.monotonic() < deadline and any(_alive(p) for p in pids):
            time.sleep(0.05)
        pids = [p for p in pids if _alive(p)]
        if not pids:
            return


def _resource_tracker_pid() -> int | None:
    """multiprocessing's resource tracker: it exits with this process, and ending it earlier only makes noise."""
    try:
        from multiprocessing import resource_tracker

        return resource_tracker._resource_tracker._pid  # noqa: SLF001 - no public accessor
    except Exception:  # noqa: BLE001
        return None


# --- the guard -------------------------------------------------------------------------------------------------------

_active: RunGuard | None = None


def active_guard() -> RunGuard | None:
    return _active


class RunGuard:
    """While entered: a Ctrl-C (or `interrupt` from any thread) stops the processes the run started and raises
    KeyboardInterrupt in the main thread; `cause` says why, for the error message and the ledger."""

    def __init__(self) -> None:
        self.cause: BaseException | None = None
        self.keep: set[int] = set()  # processes to leave alone (the Prefect server: stopped last, by its owner)
        self._before: set[int] = set()
        self._handler = None
        self._mask: set | None = None
        self._closed = threading.Event()
        self._listener: threading.Thread | None = None
        self._no_retries = None  # Prefect settings without request retries, once the server is gone

    def __enter__(self) -> RunGuard:
        global _active
        if _active is not None:
            raise RuntimeError("a RunGuard is active already: use flows.interrupt.active_guard()")
        self._before = set(descendants())
        if threading.current_thread() is threading.main_thread():
            # Also for a Ctrl-C that reaches a thread that was started before and does not block it.
            self._handler = signal.signal(signal.SIGINT, self._on_signal)
            if hasattr(signal, "pthread_sigmask"):
                self._mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
                self._listener = threading.Thread(target=self._listen, name="corpusforge-sigint", daemon=True)
                self._listener.start()
        _active = self
        return self

    def __exit__(self, *exc) -> None:
        global _active
        _active = None
        self._closed.set()
        if self._listener is not None:
            signal.pthread_kill(self._listener.ident, signal.SIGINT)  # wakes its sigwait; it sees _closed and ends
            self._listener.join(timeout=1)
        if exc[0] is not None:  # whatever failed, nothing the run started outlives it
            self.stop_run_processes()
        if self._no_retries is not None:
            try:
                self._no_retries.__exit__(None, None, None)
            except Exception:  # noqa: BLE001 - Prefect's contexts unwound in another order: nothing left to restore
                pass
        if self._mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
        if self._handler is not None:
            signal.signal(signal.SIGINT, self._handler)

    def run_processes(self) -> list[int]:
        """The processes this run started (and theirs), except those in `keep` and the resource tracker."""
        children = _children_map()
        skip = self._before | self.keep | {_resource_tracker_pid()}
        found, todo = [], [c for c in children.get(os.getpid(), []) if c not in skip]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def stop_run_processes(self) -> None:
        pids = self.run_processes()
        if pids:
            stop_processes(pids)

    def interrupt(self, cause: BaseException) -> None:
        """Stop the run now (from any thread): its processes end, the main thread gets KeyboardInterrupt."""
        if self.cause is not None:  # asked twice (a second Ctrl-C): no more waiting
            stop_processes([p for p in descendants() if p != _resource_tracker_pid()], grace=0.5)
            os._exit(130)
        self.cause = cause
        if self._handler is not None and threading.current_thread() is not threading.main_thread():
            # _on_signal runs in the main thread at its next step, before anything it does about the processes
            # ending below (which wake it from waiting on them) can raise another error first.
            _thread.interrupt_main(signal.SIGINT)
        self.stop_run_processes()

    def _listen(self) -> None:
        while True:
            signal.sigwait({signal.SIGINT})
            if self._closed.is_set():
                return
            self.interrupt(KeyboardInterrupt("interrupted (Ctrl-C)"))

    def _on_signal(self, signum, frame) -> None:
        if self.cause is None:  # a SIGINT that reached a thread not blocking it: the listener never saw it
            self.interrupt(KeyboardInterrupt("interrupted (Ctrl-C)"))
        if isinstance(self.cause, ServerDied) and self._no_retries is None:
            # Prefect now reports the crash, and retries each request for a minute with backoff once it has reached
            # a server before: there is none any more, so one try each, in this (the flow's) thread.
            try:
                from prefect.settings import PREFECT_CLIENT_MAX_RETRIES, temporary_settings

                self._no_retries = temporary_settings(updates={PREFECT_CLIENT_MAX_RETRIES: 0})
                self._no_retries.__enter__()
            except Exception:  # noqa: BLE001 - slower, not wrong
                self._no_retries = None
        raise KeyboardInterrupt


def watch_server(server, stop: threading.Event) -> threading.Thread:
    """A thread that fails the active run as soon as the server process exits (until `stop` is set)."""

    def watch() -> None:
        while not stop.wait(0.5):
            process = server.server_process
            code = process.poll() if process is not None else None
            if code is not None:
                guard = active_guard()
                if guard is not None and not stop.is_set():
                    guard.interrupt(ServerDied(f"the temporary Prefect server at {server.address} exited (code {code}) during the run"))
                return

    thread = threading.Thread(target=watch, name="corpusforge-server-watch", daemon=True)
    thread.start()
    return thread
