"""Source readers: input paths to work units, and a work unit to a stream of documents or rejections.

A work unit is a byte range of one input file whose bounds are record start offsets, so units can be read in any
order, by any process, and every record belongs to exactly one unit. Readers never raise on damaged input: they
report the damage (path, byte offset, message) into an `errors` list, keep every record before it and resume
after it where the format allows.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from corpus.config import IngestConfig
from corpus.document import Document


@dataclass(frozen=True)
class WorkUnit:
    """Records whose start offset is in [start, end) of `path`; end == -1 means to the end of the file."""

    path: str
    start: int
    end: int
    format: str


@dataclass
class Rejection:
    """An input record dropped with a named reason; `doc` carries its provenance (id, url, source, offset)."""

    doc: Document
    stage: str
    reason: str
    detail: str = ""


# Longest suffixes first: ".warc.gz" must win over ".gz".
FORMAT_SUFFIXES: list[tuple[str, str]] = [
    (".warc.gz", "warc"),
    (".warc.lz4", "warc"),
    (".warc.zst", "warc"),
    (".wet.gz", "warc"),
    (".wet.lz4", "warc"),
    (".warc.wet.gz", "warc"),
    (".warc", "warc"),
    (".wet", "warc"),
    (".arc.gz", "arc"),
    (".arc", "arc"),
]


def input_format(path: str) -> str:
    """Reader format of a file from its name ("warc", "arc"), or "" when no reader handles it."""
    name = path.lower()
    for suffix, fmt in FORMAT_SUFFIXES:
        if name.endswith(suffix):
            return fmt
    return ""


def expand_inputs(paths: list[str]) -> list[str]:
    """Files to read: directories are walked (known formats only, sorted), globs are expanded.

    Raises ValueError naming the path when an input does not exist, a glob matches nothing, or an explicitly
    named file has a format no reader handles.
    """
    files: list[str] = []
    for raw in paths:
        path = os.fspath(raw)
        if glob.has_magic(path) and not os.path.exists(path):
            matches = sorted(glob.glob(path, recursive=True))
            if not matches:
                raise ValueError(f"input glob {path!r} matches no file")
            files.extend(expand_inputs(matches))
        elif os.path.isdir(path):
            found = sorted(str(p) for p in Path(path).rglob("*") if p.is_file() and input_format(str(p)))
            files.extend(found)
        elif os.path.isfile(path):
            if not input_format(path):
                known = ", ".join(suffix for suffix, _ in FORMAT_SUFFIXES)
                raise ValueError(f"input {path!r} has an unknown format (expected one of: {known})")
            files.append(path)
        else:
            raise ValueError(f"input {path!r} does not exist")
    return list(dict.fromkeys(files))  # a file named twice is read once


def plan_units(paths: list[str], cfg: IngestConfig) -> list[WorkUnit]:
    """Split the inputs into units of about `cfg.unit_bytes`, cut only at record starts."""
    from corpus.sources import warc

    units: list[WorkUnit] = []
    for path in expand_inputs(paths):
        fmt = input_format(path)
        cuts = warc.plan_cuts(path, fmt, cfg.unit_bytes)
        bounds = [0, *cuts, -1]
        units.extend(WorkUnit(path, start, end, fmt) for start, end in zip(bounds, bounds[1:]))
    return units


def read_unit(unit: WorkUnit, cfg: IngestConfig, errors: list[dict]) -> Iterator[Document | Rejection]:
    """One Document or Rejection per input record of the unit (see `corpus.sources.warc.read_records`)."""
    from corpus.sources import warc

    if unit.format not in ("warc", "arc"):
        raise ValueError(f"work unit of {unit.path!r} has unknown format {unit.format!r}")
    return warc.read_records(unit, cfg, errors)
