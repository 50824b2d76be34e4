"""Crash points: `CORPUSFORGE_FAILPOINT=NAME` SIGKILLs the run's whole process group when the code reaches NAME,
as a power cut or the OOM killer would, so that a test can check that the same command then resumes to outputs
byte-identical to an unbroken run (tests/test_crash_safety.py).

Names: `STAGE:unit` (a worker, right after it finished a work unit of STAGE; the other workers are mid-unit),
`STAGE:commit` (the stage's manifest written, its rejected rows moved into place, its output not yet),
`pretrain:checkpoint` (a checkpoint written, training not finished). Unset, a point costs one environment lookup.
"""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Callable

ENV = "CORPUSFORGE_FAILPOINT"


def armed(name: str) -> bool:
    return os.environ.get(ENV) == name


def failpoint(name: str) -> None:
    if armed(name):
        try:
            os.killpg(os.getpgrp(), signal.SIGKILL)
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGKILL)


class KillAfter:
    """`fn`, then the crash point `name`: wraps a stage's unit function (picklable, keeps fn's name and signature)."""

    def __init__(self, fn: Callable, name: str):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.name = name

    def __call__(self, *args, **kwargs):
        result = self.fn(*args, **kwargs)
        failpoint(self.name)
        return result
