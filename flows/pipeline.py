"""The pipeline flow: each step runs its library function as one Prefect task per work unit, then commits.

Steps and the stage names of the ledger (DESIGN.md section 3):
    extract   -> extracted/   stages ingest, extract, annotate (fused per unit: each page is parsed once)
    filter    -> filtered/    stage filter
    dedup     -> dedup/       stage dedup
    shard     -> documents/   stage shard
    tokenizer -> tokenizer/   stage tokenizer
    tokens    -> tokens/      stage tokens
    pretrain  -> model/       stage pretrain
    finetune  -> finetune/    stage finetune
A step is skipped when its manifest carries the fingerprint it would have now (its config sections, the upstream
step's fingerprint and the code version), so a rerun only does what changed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from corpus import stages as corpus_stages
from corpus.shards import read_table
from corpus.manifest import (
    MANIFEST,
    LedgerEntry,
    Manifest,
    StageOutput,
    code_version,
    describe_file,
    fingerprint,
    is_current,
    merge_ledgers,
    read_manifest,
    write_json_atomic,
)
from flows.config import PipelineConfig, to_yaml



def progress(message: str) -> None:
    """A progress line of a long stage (crawl, pretrain): printed on stderr whatever Prefect's log level, and sent
    to the Prefect run's log (shown in the UI when the user's Prefect logs at INFO)."""
    progress_log = logging.getLogger("corpusforge.progress")
    if not progress_log.handlers:  # once per process: workers are separate processes
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s | %(message)s", datefmt="%H:%M:%S"))
        progress_log.addHandler(handler)
        progress_log.setLevel(logging.INFO)
        progress_log.propagate = False  # Prefect's root handler would print it a second time
    progress_log.info(message)
    try:
        from prefect.logging import get_run_logger

        get_run_logger().info(message)
    except Exception:  # outside a flow or task run (tests, library use): the stderr line is enough
        pass

STAGES = ["ingest", "extract", "annotate", "filter", "dedup", "shard", "tokenizer", "tokens", "pretrain", "finetune"]


@dataclass(frozen=True)
class Step:
    name: str
    dirname: str
    stages: tuple[str, ...]
    sections: tuple[str, ...]
    version: str = "1"  # bump when the step's behaviour changes, so old outputs are not reused


STEPS = [
    Step("extract", "extracted", ("ingest", "extract", "annotate"), ("ingest", "extract", "annotate")),
    Step("filter", "filtered", ("filter",), ("filter",)),
    Step("dedup", "dedup", ("dedup",), ("dedup",)),
    Step("shard", "documents", ("shard",), ("shard",)),
    Step("tokenizer", "tokenizer", ("tokenizer",), ("tokenizer", "lm_text")),
    Step("tokens", "tokens", ("tokens",), ("tokens", "lm_text")),
    Step("pretrain", "model", ("pretrain",), ("pretrain",)),
    Step("finetune", "finetune", ("finetune",), ("finetune",)),
]
STEP_OF_STAGE = {stage: step for step in STEPS for stage in step.stages}


def sample_input() -> Path:
    return Path(str(resources.files("corpus.sample_data").joinpath("sample.warc.gz")))


def input_paths(cfg: PipelineConfig) -> list[str]:
    return list(cfg.input) or [str(sample_input())]


def _input_identity(cfg: PipelineConfig) -> list:
    identity = []
    for item in input_paths(cfg):
        p = Path(item)
        stat = p.stat() if p.exists() else None
        identity.append([str(p.resolve()) if stat else item, stat.st_size if stat else None, stat.st_mtime_ns if stat else None])
    return identity


# --- planning --------------------------------------------------------------------------------------------------------


@dataclass
class PlannedStep:
    step: Step
    fingerprint: str
    config_fingerprint: str
    upstream_fingerprint: str
    action: str  # "run", "skip" (current) or "off" (disabled by config)


def enabled_steps(cfg: PipelineConfig) -> list[Step]:
    steps = [s for s in STEPS if s.name not in ("pretrain", "finetune")]
    if cfg.pretrain.enabled:
        steps.append(STEP_OF_STAGE["pretrain"])
    if cfg.finetune.data:
        steps.append(STEP_OF_STAGE["finetune"])
    return steps


def plan(cfg: PipelineConfig, from_stage: str | None = None, to_stage: str | None = None, force: bool = False) -> list[PlannedStep]:
    for name in (from_stage, to_stage):
        if name is not None and name not in STAGES:
            raise ValueError(f"unknown stage {name!r}: choose one of {', '.join(STAGES)}")
    order = [s.name for s in STEPS]
    first = order.index(STEP_OF_STAGE[from_stage].name) if from_stage else 0
    last = order.index(STEP_OF_STAGE[to_stage].name) if to_stage else len(order) - 1
    run_dir = Path(cfg.output)
    upstream = fingerprint(_input_identity(cfg))
    planned = []
    enabled = {s.name for s in enabled_steps(cfg)}
    for step in STEPS:
        idx = order.index(step.name)
        section_values = {name: _dump(getattr(cfg, name)) for name in step.sections}
        config_fp = fingerprint(section_values)
        fp = fingerprint(step.name, step.version, config_fp, upstream, code_version())
        if step.name not in enabled or idx > last:
            action = "off"
        elif idx < first:
            action = "skip"
        elif force or (from_stage and idx >= first) or not is_current(run_dir / step.dirname, fp):
            action = "run"
        else:
            action = "skip"
        planned.append(PlannedStep(step, fp, config_fp, upstream, action))
        upstream = fp
    for p in planned:
        if p.action == "skip" and read_manifest(run_dir / p.step.dirname) is None:
            raise RuntimeError(
                f"step {p.step.name} has no finished output in {run_dir}/{p.step.dirname}: "
                f"run it first (drop --from, or use --from {p.step.stages[0]})"
            )
    return planned


def _dump(value):
    """A config section as it enters a fingerprint: fields marked SPEED_ONLY left out."""
    if not hasattr(value, "model_dump"):
        return value
    speed_only = {name for name, field in type(value).model_fields.items() if (field.json_schema_extra or {}).get("speed_only")}
    return value.model_dump(mode="json", exclude=speed_only)


# --- Prefect API: one temporary server for the whole run, shared by the workers -------------------------------------


@contextlib.contextmanager
def prefect_api() -> Iterator[None]:
    """Use the user's Prefect server when PREFECT_API_URL is set; else start one temporary local server.

    Without this, every worker process would start its own temporary server (DESIGN.md section 9).
    """
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    home = Path(os.environ.setdefault("PREFECT_HOME", str(Path.home() / ".prefect")))
    home.mkdir(parents=True, exist_ok=True)
    if os.environ.get("PREFECT_API_URL"):
        yield
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start(timeout=120)
    os.environ["PREFECT_API_URL"] = server.api_url
    try:
        yield
    finally:
        # Send queued logs and events while the server is still up, not into a closed port at exit.
        with contextlib.suppress(Exception):
            from prefect.events.worker import EventsWorker
            from prefect.logging.handlers import APILogWorker

            APILogWorker.drain_all(timeout=5, at_exit=False)
            EventsWorker.drain_all(timeout=5, at_exit=False)
        server.stop()
        os.environ.pop("PREFECT_API_URL", None)


# --- progress reporting (the CLI plugs a rich progress bar in here) -------------------------------------------------

Reporter = Callable[[str, int, int], None]  # (step name, done units, total units)


def _no_report(step: str, done: int, total: int) -> None:
    pass


# --- the flow --------------------------------------------------------------------------------------------------------


def run_pipeline(
    cfg: PipelineConfig,
    from_stage: str | None = None,
    to_stage: str | None = None,
    force: bool = False,
    report: Reporter = _no_report,
) -> dict:
    """Run the steps that are not current; returns the top-level manifest (the ledger)."""
    planned = plan(cfg, from_stage, to_stage, force)
    run_dir = Path(cfg.output)
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_config(cfg, run_dir)
    global _reporter
    if any(p.action == "run" for p in planned):
        _reporter = report
        try:
            with prefect_api():
                _build_flow(cfg)(cfg, [p.step.name for p in planned if p.action == "run"])
        finally:
            _reporter = _no_report
    return write_ledger(run_dir, planned)


_reporter: Reporter = _no_report


def pipeline(cfg: PipelineConfig, steps: list[str]) -> None:
    """The Prefect flow body: each step maps its unit tasks over the task runner and commits."""
    planned = {p.step.name: p for p in plan(cfg)}
    for name in steps:
        STEP_RUNNERS[name](cfg, planned[name], _reporter)


def _build_flow(cfg: PipelineConfig):
    from prefect import flow
    from prefect.task_runners import ProcessPoolTaskRunner

    workers = cfg.runner.workers or os.cpu_count() or 1
    if cfg.runner.kind == "ray":
        from prefect_ray import RayTaskRunner  # the `ray` extra

        runner = RayTaskRunner(address=cfg.runner.ray_address or None)
    else:
        runner = ProcessPoolTaskRunner(max_workers=workers)
    return flow(pipeline, name="corpusforge-pipeline", task_runner=runner, validate_parameters=False)


def _task(fn, name: str, retries: int = 0):
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(fn, name=name, cache_policy=NO_CACHE, retries=retries, persist_result=False)


def _map_units(name: str, fn, calls: list[tuple], report: Reporter) -> list:
    """Submit one task per unit and gather results in unit order, reporting progress as they finish."""
    from prefect.futures import as_completed

    t = _task(fn, f"{name}-unit")
    futures = [t.submit(*args) for args in calls]
    index = {id(f): i for i, f in enumerate(futures)}
    results: list = [None] * len(futures)
    report(name, 0, len(futures))
    for done, future in enumerate(as_completed(futures), 1):
        results[index[id(future)]] = future.result()
        report(name, done, len(futures))
    return results


def _manifest(planned: PlannedStep, ledger: list[LedgerEntry], extra: dict | None = None) -> Manifest:
    return Manifest(
        stage=planned.step.name,
        fingerprint=planned.fingerprint,
        config_fingerprint=planned.config_fingerprint,
        upstream_fingerprint=planned.upstream_fingerprint,
        code_version=code_version(),
        ledger=ledger,
        extra=extra or {},
    )


def _upstream_files(run_dir: Path, dirname: str, pattern: str = "*.arrow") -> list[Path]:
    manifest = read_manifest(run_dir / dirname)
    assert manifest is not None, f"{run_dir / dirname} has no manifest"
    return [run_dir / dirname / f.path for f in manifest.files if Path(f.path).match(pattern)]


def _crawl_url_lists(cfg: PipelineConfig, run_dir: Path) -> list[str]:
    from corpus.sources.crawl import crawl_url_lists

    return crawl_url_lists(input_paths(cfg), run_dir / "crawl", cfg.crawl, log=progress)


def run_extract(cfg: PipelineConfig, planned: PlannedStep, report: Reporter) -> None:
    from corpus.sources import FORMAT_SUFFIXES, plan_units, unread_inputs, url_list_inputs

    run_dir = Path(cfg.output)
    inputs = input_paths(cfg)
    if url_list_inputs(inputs):  # network I/O is its own task, retried on its own; a resumed crawl refetches nothing
        inputs = _task(_crawl_url_lists, "crawl-url-lists", retries=2)(cfg, run_dir)
    units = plan_units(inputs, cfg.ingest)
    unread = unread_inputs(inputs, cfg.ingest.format)
    if not units:
        not_read = f"; not read (no reader for their type): {', '.join(unread[:5])}" if unread else ""
        raise ValueError(f"no readable input file in {', '.join(map(str, inputs))}{not_read}")
    out = StageOutput(run_dir, "extract", "extracted")
    cores = os.cpu_count() or 1
    extract_cfg = cfg.extract.with_overlap_for(min(cfg.runner.workers or cores, len(units)), cores)
    calls = [
        (unit, cfg.ingest, extract_cfg, cfg.annotate, out.out / f"part-{i:05d}.arrow", out.rejected / f"part-{i:05d}.arrow")
        for i, unit in enumerate(units)
    ]
    ledger = merge_ledgers(_map_units("extract", corpus_stages.extract_unit, calls, report))
    known = " ".join(suffix for suffix, _ in FORMAT_SUFFIXES)
    for path in unread:  # never read, so in no count: said here, not dropped quietly
        ledger[0].errors.append({"path": path, "offset": None, "error": f"no reader for this file type (known: {known}; or set ingest.format)"})
    out.commit(_manifest(planned, ledger, {"units": len(units), "inputs": inputs}))


def run_filter(cfg: PipelineConfig, planned: PlannedStep, report: Reporter) -> None:
    run_dir = Path(cfg.output)
    parts = _upstream_files(run_dir, "extracted")
    out = StageOutput(run_dir, "filter", "filtered")
    calls = [(cfg.filter, p, out.out / p.name, out.rejected / p.name) for p in parts]
    ledger = merge_ledgers(_map_units("filter", corpus_stages.filter_unit, calls, report))
    out.commit(_manifest(planned, ledger))


def run_dedup(cfg: PipelineConfig, planned: PlannedStep, report: Reporter) -> None:
    """Keys and signatures per unit in parallel, clusters over all of them at once, then one filter pass per unit."""
    from corpus import dedup
    from corpus.shards import write_table

    run_dir = Path(cfg.output)
    parts = _upstream_files(run_dir, "filtered")
    out = StageOutput(run_dir, "dedup", "dedup")
    keys_dir = out.out / "keys"
    keys_dir.mkdir()
    index_dir = Path(cfg.dedup.index_path) if cfg.dedup.index_path else None
    key_files = [keys_dir / p.name for p in parts]
    if cfg.dedup.enabled:
        _map_units("dedup-keys", dedup.keys_unit, [(cfg.dedup, p, k) for p, k in zip(parts, key_files)], report)
    clusters = dedup.build_clusters(cfg.dedup, key_files if cfg.dedup.enabled else [], index_dir)
    clusters_path = out.out / "clusters.arrow"
    write_table(clusters_path, clusters)
    calls = [(clusters_path, p, out.rejected / p.name) for p in parts]
    ledger = merge_ledgers(_map_units("dedup", dedup.apply_unit, calls, report))
    n_clusters = len(set(clusters["cluster_id"].to_pylist()))
    out.commit(_manifest(planned, ledger, {"clusters": n_clusters, "index": str(index_dir) if index_dir else None}))
    if index_dir is not None and cfg.dedup.enabled:
        # Only after the commit: an index must never hold documents of a run that did not finish.
        dedup.update_index(cfg.dedup, [run_dir / "dedup" / "keys" / p.name for p in parts], index_dir, read_table(run_dir / "dedup" / "clusters.arrow"))


def run_shard(cfg: PipelineConfig, planned: PlannedStep, report: Reporter) -> None:
    run_dir = Path(cfg.output)
    parts = _upstream_files(run_dir, "filtered")
    clusters_path = run_dir / "dedup" / "clusters.arrow"
    out = StageOutput(run_dir, "shard", "documents")
    calls = [
        (cfg.shard, clusters_path, p, out.out / f"shard-{p.stem.split('-')[-1]}.arrow") for p in parts
    ]
    ledger = merge_ledgers(_map_units("shard", corpus_stages.shard_unit, calls, report))
    out.commit(_manifest(planned, ledger))


def _lm_column(cfg: PipelineConfig) -> str:
    return "text" if cfg.lm_text == "natural" else "terms"


def _train_tokenizer(cfg: PipelineConfig, shards: list[Path], out_dir: Path) -> dict:
    from tokenizer.train import sample_texts, train_tokenizer

    return train_tokenizer(sample_texts(shards, cfg.tokenizer, column=_lm_column(cfg)), cfg.tokenizer, out_dir)


def run_tokenizer(cfg: PipelineConfig, planned: PlannedStep, report: Reporter) -> None:
    run_dir = Path(cfg.output)
    shards = _upstream_files(run_dir, "documents")
    n_docs = read_manifest(run_dir / "documents").rows
    out = StageOutput(run_dir, "tokenizer", "tokenizer")
    (info,) = _map_units("tokenizer", _train_tokenizer, [(cfg, shards, out.out)], report)
    ledger = [LedgerEntry("tokenizer", n_docs, n_docs, seconds=time.time() - out.started)]
    out.commit(_manifest(planned, ledger, {"tokenizer": info}))


def run_tokens(cfg: PipelineConfig, planned: PlannedStep, report: Reporter) -> None:
    from tokenizer.encode import encode_shard

    run_dir = Path(cfg.output)
    shards = _upstream_files(run_dir, "documents")
    out = StageOutput(run_dir, "tokens", "tokens")
    calls = [(run_dir / "tokenizer", s, out.out, cfg.tokens, _lm_column(cfg)) for s in shards]
    results = _map_units("tokens", encode_shard, calls, report)
    docs = {split: sum(r["docs"][split] for r in results) for split in ("train", "val")}
    tokens = {split: sum(r["tokens"][split] for r in results) for split in ("train", "val")}
    n_in = read_manifest(run_dir / "documents").rows
    entry = LedgerEntry("tokens", n_in, docs["train"] + docs["val"], seconds=time.time() - out.started)
    out.commit(_manifest(planned, [entry], {"docs": docs, "tokens": tokens}))


def _pretrain(cfg: PipelineConfig, run_dir: Path, out_dir: Path) -> dict:
    """In this worker on one device; as a torchrun subprocess (DDP) with its logs streamed here on several GPUs."""
    from training.launch import pretrain_on_available_devices

    return pretrain_on_available_devices(cfg.pretrain, run_dir / "tokens", run_dir / "tokenizer", out_dir, log=progress, resume=True)


def run_pretrain(cfg: PipelineConfig, planned: PlannedStep, report: Reporter) -> None:
    run_dir = Path(cfg.output)
    model_dir = run_dir / "model"
    _prepare_resumable_dir(model_dir, planned.fingerprint)
    started = time.time()
    (metrics,) = _map_units("pretrain", _pretrain, [(cfg, run_dir, model_dir)], report)
    docs = read_manifest(run_dir / "tokens").extra["docs"]
    entry = LedgerEntry("pretrain", docs["train"], docs["train"], seconds=time.time() - started)
    _commit_in_place(model_dir, _manifest(planned, [entry], {"metrics": metrics}))


def _finetune(cfg: PipelineConfig, run_dir: Path, out_dir: Path) -> dict:
    from training.finetune import finetune

    return finetune(cfg.finetune, Path(cfg.finetune.model) if cfg.finetune.model else run_dir / "model", out_dir)


def run_finetune(cfg: PipelineConfig, planned: PlannedStep, report: Reporter) -> None:
    run_dir = Path(cfg.output)
    out_dir = run_dir / "finetune"
    _prepare_resumable_dir(out_dir, planned.fingerprint)
    started = time.time()
    (metrics,) = _map_units("finetune", _finetune, [(cfg, run_dir, out_dir)], report)
    n = int(metrics.get("n_train", 0)) + int(metrics.get("n_eval", 0))
    entry = LedgerEntry("finetune", n, n, seconds=time.time() - started)
    _commit_in_place(out_dir, _manifest(planned, [entry], {"metrics": metrics}))


STEP_RUNNERS = {
    "extract": run_extract,
    "filter": run_filter,
    "dedup": run_dedup,
    "shard": run_shard,
    "tokenizer": run_tokenizer,
    "tokens": run_tokens,
    "pretrain": run_pretrain,
    "finetune": run_finetune,
}


def _prepare_resumable_dir(directory: Path, fp: str) -> None:
    """Training writes checkpoints in place so a killed run resumes; state from another config is discarded."""
    marker = directory / ".fingerprint"
    if directory.exists() and (not marker.is_file() or marker.read_text() != fp):
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST).unlink(missing_ok=True)
    marker.write_text(fp)


def _commit_in_place(directory: Path, manifest: Manifest) -> None:
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name not in (MANIFEST, ".fingerprint"))
    manifest.files = [describe_file(p, directory) for p in files]
    manifest.created_at = time.time()
    write_json_atomic(directory / MANIFEST, manifest.to_json())


# --- the ledger ------------------------------------------------------------------------------------------------------


def _write_config(cfg: PipelineConfig, run_dir: Path) -> None:
    text = f"# corpusforge config, fingerprint {fingerprint(cfg.model_dump(mode='json'))}\n" + to_yaml(cfg)
    path = run_dir / "config.yaml"
    tmp = path.with_name(".tmp-config.yaml")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_ledger(run_dir: Path, planned: list[PlannedStep]) -> dict:
    """Top-level manifest.json: every stage's in/out/dropped in pipeline order, plus where the outputs are."""
    stages, errors, fingerprints = [], [], {}
    for p in planned:
        manifest = read_manifest(run_dir / p.step.dirname)
        if manifest is None or p.action == "off":
            continue
        fingerprints[p.step.name] = manifest.fingerprint
        for entry in manifest.ledger:
            row = entry.to_json()
            if "metrics" in manifest.extra:
                row["metrics"] = manifest.extra["metrics"]
            stages.append(row)
            errors.extend(entry.errors)
    absolute = run_dir.resolve()
    outputs = {
        "documents": str(absolute / "documents"),
        "rejected": str(absolute / "rejected"),
        "tokenizer": str(absolute / "tokenizer"),
        "tokens": str(absolute / "tokens"),
        "model": str(absolute / "model"),
        "finetune": str(absolute / "finetune"),
        "report": None,
    }
    ledger = {
        "run": str(absolute),
        "code_version": code_version(),
        "stages": stages,
        "errors": errors,
        "fingerprints": fingerprints,
        "outputs": {k: v for k, v in outputs.items() if v is None or Path(v).exists()},
        "updated_at": time.time(),
    }
    write_json_atomic(run_dir / MANIFEST, ledger)
    return ledger
