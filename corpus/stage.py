"""A pipeline stage as a library object, and `run_stage`, the one function that runs any of them.

A `Stage` declares what defines its output (config sections, the modules whose code it runs, its output schema) and
how its work splits: `plan_units(ctx)` lists the arguments of one `run_unit` call per work unit (an input file, a
shard), and `finish(ctx, results)` turns the units' results into the stage's ledger entries and manifest extras.
`run_stage` does the rest, the same way for every stage: the up-to-date check, a temporary output folder, one `map`
over the units, ledger merge and timing, and the atomic commit with the manifest written last.

`map` is where orchestration plugs in. The default runs the units one after another in this process, so a notebook
runs a whole stage with `run_stage(stage, cfg, run_dir)`; `flows/` passes a map that submits each unit as a Prefect
task (process pool or Ray).

A stage's fingerprint covers its config sections, its upstream's fingerprint, a hash of the source of the modules
that define its behaviour and its output schema: changing how a signal is computed, or adding a column, makes that
stage and everything below it stale, instead of reusing outputs made by other code.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import pyarrow as pa

from corpus.atomic import remove_leftover_temporaries, write_json_atomic, write_text_atomic
from corpus.failpoints import KillAfter, armed
from corpus.manifest import (
    MANIFEST,
    LedgerEntry,
    Manifest,
    StageOutput,
    code_version,
    commit_in_place,
    finish_interrupted_commit,
    fingerprint,
    is_current,
    merge_ledgers,
    read_manifest,
)

Mapper = Callable[[str, Callable, list[tuple]], list]  # (stage name, unit function, argument tuples) -> results in order


def serial_map(name: str, fn: Callable, calls: list[tuple]) -> list:
    """Run every unit here, in order: what a notebook or a test needs, no orchestrator involved."""
    return [fn(*args) for args in calls]


def progress(message: str) -> None:
    """A progress line of a long stage (crawl, pretrain) on stderr, at INFO whatever the root logger's level."""
    log = logging.getLogger("corpusforge.progress")
    if not log.handlers:  # once per process: workers are separate processes
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s | %(message)s", datefmt="%H:%M:%S"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    log.info(message)


@dataclass
class StageResult:
    ledger: list[LedgerEntry]
    extra: dict = field(default_factory=dict)


@dataclass
class StageContext:
    """What a stage's planning and finishing code sees: the config, the run, where to write and how to map."""

    cfg: Any  # the pipeline config tree: one attribute per section (flows.config.PipelineConfig)
    run_dir: Path
    out: Path  # the stage's files: a temporary folder until the commit (the final folder for in-place stages)
    rejected: Path  # rejected rows of the stage, moved to RUN/rejected/<stage>/ by the commit
    work: Path  # bookkeeping of an attempt (finished units), kept by a resumed attempt, never committed
    map: Mapper
    log: Callable[[str], None]
    started: float = field(default_factory=time.time)
    notes: dict = field(default_factory=dict)  # what plan_units found out that finish reports (inputs, unread files)

    def upstream_files(self, dirname: str, pattern: str = "*.arrow") -> list[Path]:
        """The files a finished upstream stage lists in its manifest, in its order."""
        manifest = read_manifest(self.run_dir / dirname)
        if manifest is None:
            raise RuntimeError(f"{self.run_dir / dirname} has no finished output: run that stage first")
        return [self.run_dir / dirname / f.path for f in manifest.files if Path(f.path).match(pattern)]

    def upstream_manifest(self, dirname: str) -> Manifest:
        manifest = read_manifest(self.run_dir / dirname)
        if manifest is None:
            raise RuntimeError(f"{self.run_dir / dirname} has no finished output: run that stage first")
        return manifest


def merged_ledger(ctx: StageContext, results: list) -> StageResult:
    """The default finish: every unit returned its ledger entries; add them up."""
    return StageResult(merge_ledgers(results))


@dataclass(frozen=True)
class Stage:
    name: str  # the step name: --from/--to, manifests, fingerprints
    dirname: str  # its folder in the run directory
    ledger_names: tuple[str, ...]  # the ledger stages it reports (extract reports ingest, extract and annotate)
    sections: tuple[str, ...]  # config sections that define its output
    code: tuple[str, ...]  # modules (or packages) whose source defines its behaviour
    plan_units: Callable[[StageContext], list[tuple]]
    run_unit: Callable[..., Any]  # a module-level function: it is pickled to worker processes
    finish: Callable[[StageContext, list], StageResult] = merged_ledger
    output_schema: Callable[[], pa.Schema | None] = lambda: None  # read at plan time: registries may extend it
    upstream: str | None = None  # folder of the stage whose output it reads (None: the run's inputs)
    enabled: Callable[[Any], bool] = lambda cfg: True
    follows_upstream: Callable[[Any], bool] = lambda cfg: True  # False: its output outlives upstream changes
    reads_also: tuple[str, ...] = ()  # folders of earlier stages it reads besides its upstream (in its fingerprint)
    in_place: bool = False  # writes into its final folder as it goes, so a killed run resumes (training)
    after_commit: Callable[[StageContext], None] | None = None


# --- fingerprints ------------------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def code_fingerprint(modules: tuple[str, ...]) -> str:
    """sha256 over the source files of the modules (every .py file under a package), by content, not by path or
    mtime: the same code installed elsewhere gives the same fingerprint."""
    digest = hashlib.sha256()
    for name in sorted(modules):
        spec = find_spec(name)
        if spec is None or spec.origin is None:
            raise ValueError(f"stage code module {name!r} not found")
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if origin.name == "__init__.py" else [origin]
        for path in files:
            digest.update(str(path.relative_to(origin.parent)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def section_values(section: Any) -> Any:
    """A config section as it enters a fingerprint: fields marked speed_only (they change how fast, not what)
    left out."""
    if not hasattr(section, "model_dump"):
        return section
    speed_only = {
        name for name, info in type(section).model_fields.items() if (info.json_schema_extra or {}).get("speed_only")
    }
    return section.model_dump(mode="json", exclude=speed_only)


def config_fingerprint(stage: Stage, cfg: Any) -> str:
    return fingerprint({name: section_values(getattr(cfg, name)) for name in stage.sections})


def stage_fingerprint(stage: Stage, cfg: Any, upstream: str) -> str:
    schema = stage.output_schema()
    return fingerprint(
        stage.name,
        config_fingerprint(stage, cfg),
        upstream,
        code_fingerprint(stage.code),
        schema.to_string(show_schema_metadata=False) if schema is not None else None,
    )


# --- planning a run ----------------------------------------------------------------------------------------------


@dataclass
class PlannedStage:
    stage: Stage
    fingerprint: str
    upstream_fingerprint: str
    action: str  # "run", "skip" (its output is current, or before --from) or "off" (disabled, or after --to)


def plan_stages(
    stages: list[Stage],
    cfg: Any,
    run_dir: Path,
    inputs_fingerprint: str,
    first: int | None = None,
    last: int | None = None,
    force: bool = False,
) -> list[PlannedStage]:
    """Which stages run: the fingerprints chain from the inputs down, so a stale stage makes all below it stale.

    Stages from index `first` on run whatever their state (--from), those before it must be finished; stages after
    `last` are off (--to); `force` reruns every selected one. A commit that a kill cut short is finished first:
    its stage's output was whole, and counts as done.
    """
    last = len(stages) - 1 if last is None else last
    upstream, planned, by_dirname = inputs_fingerprint, [], {}
    for index, stage in enumerate(stages):
        finish_interrupted_commit(Path(run_dir), stage.name, stage.dirname)
        link = upstream_link(stage, cfg, upstream, by_dirname)
        fp = stage_fingerprint(stage, cfg, link)
        if not stage.enabled(cfg) or index > last:
            action = "off"
        elif first is not None and index < first:
            action = "skip"
        elif force or first is not None or not is_current(Path(run_dir) / stage.dirname, fp):
            action = "run"
        else:
            action = "skip"
        planned.append(PlannedStage(stage, fp, link, action))
        by_dirname[stage.dirname] = upstream = fp
    for p in planned:
        if p.action == "skip" and read_manifest(Path(run_dir) / p.stage.dirname) is None:
            raise RuntimeError(
                f"stage {p.stage.name} has no finished output in {run_dir}/{p.stage.dirname}: "
                f"run it first (drop --from, or use --from {p.stage.ledger_names[0]})"
            )
    return planned


# --- running one stage -------------------------------------------------------------------------------------------


def run_stage(
    stage: Stage,
    cfg: Any,
    run_dir: Path | str,
    *,
    upstream_fingerprint: str | None = None,
    map: Mapper = serial_map,
    log: Callable[[str], None] = progress,
    force: bool = False,
) -> Manifest:
    """Run one whole stage into `run_dir` unless its output is current; returns its manifest.

    `upstream_fingerprint` defaults to the fingerprint recorded by the upstream stage's manifest (for the first
    stage: the pipeline's, given by the caller). The stage's files appear under their final name only once all
    units finished, with the manifest written last; a killed run leaves only `.tmp-*` folders.
    """
    run_dir = Path(run_dir)
    if upstream_fingerprint is None:
        recorded = {name: _recorded_fingerprint(run_dir, name) for name in stage.reads_also}
        upstream_fingerprint = upstream_link(stage, cfg, _recorded_fingerprint(run_dir, stage.upstream), recorded)
    fp = stage_fingerprint(stage, cfg, upstream_fingerprint)
    final = run_dir / stage.dirname
    # A run killed in the middle of this stage's commit: the output was whole (its manifest is written first), so
    # the commit is finished now as it would have been, before deciding whether the stage is current.
    finish_interrupted_commit(run_dir, stage.name, stage.dirname)
    if not force and is_current(final, fp):
        return read_manifest(final)
    run_dir.mkdir(parents=True, exist_ok=True)
    for folder in (run_dir, run_dir / "rejected"):  # what writers killed mid-write left next to their targets
        remove_leftover_temporaries(folder)
    if stage.in_place:
        prepare_in_place(final, fp, fresh=read_manifest(final) is not None)  # a finished run redone: from scratch
        output, out_dir, rejected_dir, work_dir = None, final, final, final
    else:
        output = StageOutput(run_dir, stage.name, stage.dirname, fp)
        out_dir, rejected_dir, work_dir = output.out, output.rejected, output.work
    ctx = StageContext(cfg, run_dir, out_dir, rejected_dir, work_dir, map, log)
    unit = stage.run_unit
    if armed(f"{stage.name}:unit"):
        unit = KillAfter(unit, f"{stage.name}:unit")
    results = map(stage.name, unit, stage.plan_units(ctx))
    result = stage.finish(ctx, results)
    unbalanced = [e.name for e in result.ledger if not e.balanced()]
    if unbalanced:
        raise AssertionError(f"stage {stage.name}: ledger of {unbalanced} does not balance (in != out + dropped)")
    manifest = Manifest(
        stage=stage.name,
        fingerprint=fp,
        config_fingerprint=config_fingerprint(stage, cfg),
        upstream_fingerprint=upstream_fingerprint,
        code_version=code_version(),
        ledger=result.ledger,
        extra=result.extra,
    )
    if output is None:
        commit_in_place(final, manifest, started=ctx.started)
    else:
        output.commit(manifest)
    if stage.after_commit is not None:
        stage.after_commit(ctx)
    return manifest


def upstream_link(stage: Stage, cfg: Any, upstream: str, by_dirname: dict[str, str]) -> str:
    """What of the stages above enters a stage's fingerprint: its upstream's fingerprint (none when the stage
    outlives upstream changes, e.g. a kept tokenizer) and those of the other folders it reads."""
    link = upstream if stage.follows_upstream(cfg) else ""
    return fingerprint(link, *(by_dirname[name] for name in stage.reads_also)) if stage.reads_also else link


def _recorded_fingerprint(run_dir: Path, dirname: str | None) -> str:
    manifest = read_manifest(run_dir / dirname) if dirname else None
    if manifest is None:
        raise RuntimeError(
            f"no upstream fingerprint: {run_dir / (dirname or '')} has no finished output; run the stages above first "
            "or pass upstream_fingerprint"
        )
    return manifest.fingerprint


FINGERPRINT_MARKER = ".fingerprint"


def prepare_in_place(directory: Path, fp: str, fresh: bool) -> None:
    """An in-place stage resumes what an interrupted run of the same fingerprint left; anything else (another
    config, or a finished run being redone) is cleared first, so a rerun trains from scratch."""
    marker = directory / FINGERPRINT_MARKER
    stale = not marker.is_file() or marker.read_text() != fp
    if directory.exists() and (fresh or stale):
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    remove_leftover_temporaries(directory, recursive=True)  # e.g. a checkpoint that a kill cut short
    (directory / MANIFEST).unlink(missing_ok=True)
    write_text_atomic(marker, fp)


# --- the run's ledger --------------------------------------------------------------------------------------------

OUTPUT_DIRS = ("documents", "rejected", "tokenizer", "tokens", "model", "finetune")


def write_run_ledger(run_dir: Path, planned: list[PlannedStage], report: Path | None = None) -> dict:
    """RUN/manifest.json: every stage's in/out/dropped in pipeline order, errors, fingerprints and outputs (with
    the report's path once one is written)."""
    stages, errors, fingerprints = [], [], {}
    for p in planned:
        manifest = read_manifest(Path(run_dir) / p.stage.dirname)
        if manifest is None or p.action == "off":
            continue
        fingerprints[p.stage.name] = manifest.fingerprint
        for entry in manifest.ledger:
            row = entry.to_json()
            if "metrics" in manifest.extra:
                row["metrics"] = manifest.extra["metrics"]
            stages.append(row)
            errors.extend(entry.errors)
    absolute = Path(run_dir).resolve()
    outputs: dict = {name: str(absolute / name) for name in OUTPUT_DIRS if (absolute / name).exists()}
    outputs["report"] = str(Path(report).resolve()) if report else None
    ledger = {
        "run": str(absolute),
        "code_version": code_version(),
        "stages": stages,
        "errors": errors,
        "fingerprints": fingerprints,
        "outputs": outputs,
        "updated_at": time.time(),
    }
    write_json_atomic(Path(run_dir) / MANIFEST, ledger)
    return ledger
