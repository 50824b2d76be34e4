"""Stage manifests, fingerprints and the atomic commit of a stage's output (DESIGN.md section 3).

A stage writes into `RUN/.tmp-<stage>/`; `StageOutput.commit` moves its rejected rows into `RUN/rejected/<stage>/`,
then renames the output directory into place with `manifest.json` already inside it. A directory without a manifest
is never trusted, so a killed stage leaves nothing that a rerun would take for finished work.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from corpus.atomic import replace_dir, write_json_atomic
from corpus.failpoints import failpoint
from corpus.shards import count_rows, read_schema, sha256_file

MANIFEST = "manifest.json"


def code_version() -> str:
    try:
        return metadata.version("corpusforge")
    except metadata.PackageNotFoundError:
        return "0.0.0+src"


def fingerprint(*parts: Any) -> str:
    """sha256 over the canonical JSON of the parts: config sections, upstream fingerprints, versions."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass
class LedgerEntry:
    """One stage's line in the ledger: `in == out + sum(dropped.values())` always."""

    name: str
    in_: int = 0
    out: int = 0
    dropped: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    errors: list[dict] = field(default_factory=list)

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] += n

    def merge(self, other: LedgerEntry) -> LedgerEntry:
        assert self.name == other.name, f"cannot merge ledger of {self.name} with {other.name}"
        return LedgerEntry(
            self.name,
            self.in_ + other.in_,
            self.out + other.out,
            self.dropped + other.dropped,
            self.seconds + other.seconds,
            self.errors + other.errors,
        )

    def balanced(self) -> bool:
        return self.in_ == self.out + sum(self.dropped.values())

    def to_json(self) -> dict:
        entry = {
            "name": self.name,
            "in": self.in_,
            "out": self.out,
            "dropped": dict(sorted(self.dropped.items())),
            "seconds": round(self.seconds, 3),
        }
        if self.errors:
            entry["errors"] = self.errors
        return entry

    @classmethod
    def from_json(cls, d: dict) -> LedgerEntry:
        return cls(d["name"], d["in"], d["out"], Counter(d.get("dropped", {})), d.get("seconds", 0.0), d.get("errors", []))


def merge_ledgers(parts: list[list[LedgerEntry]]) -> list[LedgerEntry]:
    """Merge per-unit ledgers (same stage names, same order) into one."""
    merged: dict[str, LedgerEntry] = {}
    for entries in parts:
        for e in entries:
            merged[e.name] = merged[e.name].merge(e) if e.name in merged else e
    return list(merged.values())


@dataclass
class FileEntry:
    path: str
    rows: int
    bytes: int
    sha256: str


@dataclass
class Manifest:
    stage: str
    fingerprint: str
    config_fingerprint: str
    upstream_fingerprint: str
    code_version: str
    files: list[FileEntry] = field(default_factory=list)
    rejected: list[FileEntry] = field(default_factory=list)
    schema: str = ""
    ledger: list[LedgerEntry] = field(default_factory=list)
    extra: dict = field(default_factory=dict)
    created_at: float = 0.0
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    def to_json(self) -> dict:
        d = asdict(self)
        d["rows"] = self.rows
        d["ledger"] = [e.to_json() for e in self.ledger]
        return d

    @classmethod
    def from_json(cls, d: dict) -> Manifest:
        d = dict(d)
        d.pop("rows", None)
        d["files"] = [FileEntry(**f) for f in d.get("files", [])]
        d["rejected"] = [FileEntry(**f) for f in d.get("rejected", [])]
        d["ledger"] = [LedgerEntry.from_json(e) for e in d.get("ledger", [])]
        return cls(**d)


def read_manifest(directory: Path) -> Manifest | None:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        return None
    try:
        return Manifest.from_json(json.loads(path.read_text()))
    except (ValueError, TypeError, KeyError):
        return None


def is_current(directory: Path, expected_fingerprint: str) -> bool:
    """A finished stage is reused only when its fingerprint matches and every listed file is there, whole."""
    manifest = read_manifest(directory)
    if manifest is None or manifest.fingerprint != expected_fingerprint:
        return False
    run = Path(directory).parent
    for entry in manifest.files:
        path = Path(directory) / entry.path
        if not path.is_file() or path.stat().st_size != entry.bytes:
            return False
    for entry in manifest.rejected:
        path = run / entry.path
        if not path.is_file() or path.stat().st_size != entry.bytes:
            return False
    return True


def verify(directory: Path) -> list[str]:
    """Recompute sha256 of every file a manifest lists; returns the problems found (empty when all is well)."""
    manifest = read_manifest(directory)
    if manifest is None:
        return [f"{directory}: no readable {MANIFEST}"]
    problems = []
    run = Path(directory).parent
    for base, entries in ((Path(directory), manifest.files), (run, manifest.rejected)):
        for entry in entries:
            path = base / entry.path
            if not path.is_file():
                problems.append(f"{path}: missing")
            elif sha256_file(path) != entry.sha256:
                problems.append(f"{path}: sha256 mismatch (file changed or damaged)")
    return problems


def describe_file(path: Path, relative_to: Path) -> FileEntry:
    rows = count_rows(path) if path.suffix == ".arrow" else 0
    return FileEntry(str(path.relative_to(relative_to)), rows, path.stat().st_size, sha256_file(path))


class StageOutput:
    """Temporary home of one stage's output until `commit` renames it into the run directory.

    With a `fingerprint`, what an interrupted attempt with the same fingerprint left in the temporary folder is
    kept (the stage decides which of its units are finished, from the records it wrote under `work`); anything
    else there is cleared.
    """

    def __init__(self, run: Path, stage: str, dirname: str, fingerprint: str | None = None):
        self.run = Path(run)
        self.stage = stage
        self.final = self.run / dirname
        self.tmp = self.run / f".tmp-{stage}"
        marker = self.tmp / ".fingerprint"
        resumable = fingerprint is not None and marker.is_file() and marker.read_text() == fingerprint
        if self.tmp.exists() and not resumable:
            shutil.rmtree(self.tmp)
        self.out = self.tmp / "out"
        self.rejected = self.tmp / "rejected"
        self.work = self.tmp / "work"  # the stage's own bookkeeping (finished units); never committed
        for folder in (self.out, self.rejected, self.work):
            folder.mkdir(parents=True, exist_ok=True)
        if fingerprint is not None:
            marker.write_text(fingerprint)
        self.started = time.time()

    def commit(self, manifest: Manifest) -> Manifest:
        data_files = sorted(p for p in self.out.rglob("*") if p.is_file() and p.name != MANIFEST)
        manifest.files = [describe_file(p, self.out) for p in data_files]
        rejected_files = sorted(p for p in self.rejected.rglob("*.arrow"))
        manifest.rejected = [
            FileEntry(f"rejected/{self.stage}/{e.path}", e.rows, e.bytes, e.sha256)
            for e in (describe_file(p, self.rejected) for p in rejected_files)
        ]
        if data_files and data_files[0].suffix == ".arrow" and not manifest.schema:
            manifest.schema = str(read_schema(data_files[0]))
        manifest.created_at = time.time()
        manifest.seconds = round(time.time() - self.started, 3)
        # The manifest first: from here on the output is whole, and a kill before the renames below are done is
        # finished by the next run (finish_interrupted_commit) instead of redoing the stage.
        write_json_atomic(self.out / MANIFEST, manifest.to_json())
        _move_into_place(self.run, self.stage, self.final, manifest)
        return manifest


def finish_interrupted_commit(run: Path, stage: str, dirname: str) -> bool:
    """Finish a commit of `stage` that a kill cut short (its manifest was written in the temporary folder, some
    renames were not done); True when there was one."""
    staged = Path(run) / f".tmp-{stage}" / "out"
    manifest = read_manifest(staged)
    if manifest is None:
        return False
    _move_into_place(Path(run), stage, Path(run) / dirname, manifest)
    return True


def _move_into_place(run: Path, stage: str, final: Path, manifest: Manifest) -> None:
    """The renames of a commit, each safe to repeat: rejected rows, then the output (its manifest inside it)."""
    tmp = run / f".tmp-{stage}"
    rejected_final = run / "rejected" / stage
    if manifest.rejected:
        if (tmp / "rejected").exists():  # else moved already, by the commit that was cut short
            replace_dir(tmp / "rejected", rejected_final)
    elif rejected_final.exists():  # an earlier commit's rows that this output does not have
        shutil.rmtree(rejected_final)
    failpoint(f"{stage}:commit")
    replace_dir(tmp / "out", final)
    shutil.rmtree(tmp, ignore_errors=True)


def commit_in_place(directory: Path, manifest: Manifest, started: float) -> Manifest:
    """Finish a stage that wrote into its final folder (training checkpoints): list its files, manifest last."""
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != MANIFEST and not p.name.startswith("."))
    manifest.files = [describe_file(p, directory) for p in files]
    manifest.created_at = time.time()
    manifest.seconds = round(time.time() - started, 3)
    write_json_atomic(directory / MANIFEST, manifest.to_json())
    return manifest
