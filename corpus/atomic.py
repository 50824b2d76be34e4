"""Atomic writes: every file or folder of a run appears under its name whole, or not at all.

A writer works on a temporary name next to the target (same file system, so the rename is atomic) and renames it
into place only when it finished; a killed process leaves at most a `.tmp-*` file that no reader trusts and the
next writer replaces.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def temporary_name(path: Path) -> Path:
    """The temporary sibling of `path`; the pid keeps two writers of one target (a leftover worker) apart."""
    path = Path(path)
    return path.with_name(f".tmp-{path.name}-{os.getpid()}")


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed over `path`, on an error it is removed."""
    path = Path(path)
    tmp = temporary_name(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, json.dumps(obj, indent=2, default=str) + "\n")


def replace_dir(src: Path, dst: Path) -> None:
    """Move the finished folder `src` to `dst`, replacing what was there. A kill between the two renames leaves
    `src` and the old folder under a `.trash-` name; the next replace of `dst` removes that."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    for leftover in dst.parent.glob(f".trash-{dst.name}-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    if dst.exists():
        trash = dst.with_name(f".trash-{dst.name}-{os.getpid()}")
        os.replace(dst, trash)
        os.replace(src, dst)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(src, dst)


_LEFTOVER = re.compile(r"\.(tmp|trash)-.+-(\d+)")


def remove_leftover_temporaries(folder: Path, recursive: bool = False) -> None:
    """Remove the temporary files and folders (`.tmp-NAME-PID`, `.trash-NAME-PID`) that writers killed mid-write
    left in `folder`, those of processes still alive excepted."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for path in folder.rglob(".*") if recursive else folder.glob(".*"):
        match = _LEFTOVER.fullmatch(path.name)
        if match and not _pid_alive(int(match.group(2))):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True
