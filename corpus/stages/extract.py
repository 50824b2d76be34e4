"""Stage `extract` -> RUN/extracted/: ingest, extract and annotate, fused per input unit so each page is parsed once.

Units are input files or byte/record ranges of large ones (`corpus.sources.plan_units`); each unit writes one part
of documents with their text and annotations, and one part of rejected rows (unreadable records, empty or oversize
extractions, annotation errors). URL lists among the inputs are crawled into WARC first (resumable: a rerun fetches
nothing twice). Files no reader handles are listed in the ledger's errors, never skipped quietly.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from importlib import resources
from pathlib import Path

from corpus import document
from corpus.atomic import atomic_path, write_json_atomic
from corpus.config import AnnotateConfig, ExtractConfig, IngestConfig
from corpus.document import DOCUMENT_SCHEMA, REJECTED_SCHEMA, Document, documents_to_table, rejected_table
from corpus.manifest import LedgerEntry, fingerprint, merge_ledgers, read_manifest
from corpus.repeats import RepeatMemo
from corpus.shards import BatchedWriter
from corpus.stage import Stage, StageContext, StageResult


def sample_input() -> Path:
    """The bundled sample crawl, the input of a run that names none."""
    return Path(str(resources.files("corpus.sample_data").joinpath("sample.warc.gz")))


def input_paths(cfg) -> list[str]:
    return list(cfg.input) or [str(sample_input())]


def inputs_fingerprint(cfg) -> str:
    """What the run reads, as the first link of the fingerprint chain: every input file (folders and globs
    expanded) with its size and mtime, so a changed or added file inside a folder is seen."""
    from corpus.sources import expand_inputs

    try:
        files = expand_inputs(input_paths(cfg), cfg.ingest.format)
    except ValueError as err:  # a missing input: the extract stage reports it when it runs
        return fingerprint(input_paths(cfg), str(err))
    identity = []
    for path in files:
        stat = os.stat(path)
        identity.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns])
    return fingerprint(identity)


def unit_key(unit, stage_fp: str) -> str:
    """What a unit's output depends on: its files (path, size, mtime), its range and the stage's config and code."""
    identity = []
    for path in unit.files or (unit.path,):
        stat = os.stat(path)
        identity.append([str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns])
    return fingerprint(identity, unit.start, unit.end, unit.format, stage_fp)


def plan(ctx: StageContext) -> list[tuple]:
    """One call per unit not already extracted by the run's last commit of this stage: a scheduled run over a
    folder that gained one WARC extracts that file only, and links the parts of the others."""
    from corpus.sources import plan_units, unread_inputs, url_list_inputs
    from corpus.stage import stage_fingerprint

    cfg = ctx.cfg
    inputs = input_paths(cfg)
    not_fetched: list[dict] = []  # lines of URL lists that got no response: rejected at ingest, with the reason
    if url_list_inputs(inputs):
        from corpus.sources.crawl import crawl_url_lists

        inputs = crawl_url_lists(inputs, ctx.run_dir / "crawl", cfg.crawl, log=ctx.log, not_fetched=not_fetched)
    units = plan_units(inputs, cfg.ingest)
    unread = unread_inputs(inputs, cfg.ingest.format)
    if not units and not_fetched:
        first = not_fetched[0]
        raise ValueError(
            f"no page of the URL list could be fetched: {_count_reasons(not_fetched)}; "
            f"first: {first['url']}: {first['reason']} ({first['detail']})"
        )
    if not units:
        not_read = f"; not read (no reader for their type): {', '.join(unread[:5])}" if unread else ""
        raise ValueError(f"no readable input file in {', '.join(map(str, inputs))}{not_read}")
    stage_fp = stage_fingerprint(EXTRACT, cfg, upstream="")
    keys = [unit_key(unit, stage_fp) for unit in units]
    resumed = _resume_interrupted_units(ctx, keys)
    reused = {**_reuse_committed_units(ctx, keys, skip=resumed), **resumed}
    ctx.notes.update(inputs=inputs, unread=unread, keys=keys, reused=reused, resumed=len(resumed))
    ctx.notes["not_fetched"] = _reject_not_fetched(not_fetched, ctx.rejected / NOT_FETCHED_PART)
    cores = os.cpu_count() or 1
    todo = [i for i in range(len(units)) if i not in reused]
    extract_cfg = cfg.extract.with_overlap_for(min(cfg.runner.workers or cores, max(len(todo), 1)), cores)
    return [
        (keys[i], units[i], cfg.ingest, extract_cfg, cfg.annotate, ctx.out / part_name(i), ctx.rejected / part_name(i), ctx.work)
        for i in todo
    ]


def part_name(index: int) -> str:
    return f"part-{index:05d}.arrow"


NOT_FETCHED_PART = "url-lists.arrow"  # rejected/extract/: the URL-list lines that got no response


def _count_reasons(rows: list[dict]) -> str:
    from collections import Counter

    return ", ".join(f"{reason} {n}" for reason, n in Counter(r["reason"] for r in rows).most_common())


def _reject_not_fetched(rows: list[dict], path: Path) -> LedgerEntry:
    """URL-list lines without a response as rejected rows (stage ingest, the crawler's reason); their ledger entry."""
    entry = LedgerEntry("ingest")
    if not rows:
        return entry
    from corpus.document import stable_id

    with BatchedWriter(path, REJECTED_SCHEMA, rejected_table) as writer:
        for row in rows:
            doc = Document(id=stable_id(row["source"], row["offset"]), url=row["url"], source=row["source"], offset=row["offset"])
            writer.add(doc.to_rejected_row("ingest", row["reason"], row["detail"][:500]))
            entry.in_ += 1
            entry.drop(row["reason"])
    return entry


def _resume_interrupted_units(ctx: StageContext, keys: list[str]) -> dict[int, list[LedgerEntry]]:
    """Units an interrupted attempt of this stage finished (their record is written last, after both files); the
    files of unfinished ones are removed, to be redone."""
    finished = {}
    for record_path in ctx.work.glob("*.json"):
        record = json.loads(record_path.read_text())
        finished[record["key"]] = record
    resumed, keep = {}, set()
    for index, key in enumerate(keys):
        record = finished.get(key)
        if record is None or record["part"] != part_name(index):
            continue
        if (ctx.out / record["part"]).is_file() and (ctx.rejected / record["part"]).is_file():
            resumed[index] = [LedgerEntry.from_json(e) for e in record["ledger"]]
            keep.add(record["part"])
    for folder in (ctx.out, ctx.rejected):
        for leftover in folder.iterdir():
            if leftover.name not in keep:
                leftover.unlink()
    return resumed


def _reuse_committed_units(ctx: StageContext, keys: list[str], skip: dict) -> dict[int, list[LedgerEntry]]:
    """Link the output of units whose key the committed extracted/ lists; returns their ledger entries by index."""
    previous = read_manifest(ctx.run_dir / "extracted")
    done = previous.extra.get("unit_keys", {}) if previous else {}
    reused = {}
    for index, key in enumerate(keys):
        entry = done.get(key)
        part = ctx.run_dir / "extracted" / entry["part"] if entry else None
        if index in skip or part is None or not part.is_file():
            continue
        _link(part, ctx.out / part_name(index))
        rejected = ctx.run_dir / "rejected" / "extract" / entry["part"]
        if rejected.is_file():
            _link(rejected, ctx.rejected / part_name(index))
        reused[index] = [LedgerEntry.from_json({**e, "seconds": 0.0}) for e in entry["ledger"]]  # no time spent now
    return reused


def _link(src: Path, dst: Path) -> None:
    """The same bytes under the new name: a hard link where the file system allows, else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def finish(ctx: StageContext, results: list) -> StageResult:
    from corpus.sources import FORMAT_SUFFIXES

    keys, reused = ctx.notes["keys"], ctx.notes["reused"]
    computed = iter(results)
    per_unit = [reused[i] if i in reused else next(computed) for i in range(len(keys))]
    ledger = merge_ledgers(per_unit)
    ledger[0] = ledger[0].merge(ctx.notes["not_fetched"])  # ingest: the URL-list lines that got no response
    known = " ".join(suffix for suffix, _ in FORMAT_SUFFIXES)
    for path in ctx.notes["unread"]:  # never read, so in no count: said here, not dropped quietly
        ledger[0].errors.append({"path": path, "offset": None, "error": f"no reader for this file type (known: {known}; or set ingest.format)"})
    unit_keys = {
        key: {"part": part_name(i), "ledger": [e.to_json() for e in entries]} for i, (key, entries) in enumerate(zip(keys, per_unit))
    }
    extra = {
        "units": len(keys),
        "reused_units": len(reused) - ctx.notes["resumed"],  # linked from the last commit
        "resumed_units": ctx.notes["resumed"],  # finished by an interrupted attempt
        "inputs": ctx.notes["inputs"],
        "unit_keys": unit_keys,
    }
    return StageResult(ledger, extra)


def extract_part(
    key: str,
    unit,
    ingest: IngestConfig,
    extract: ExtractConfig,
    annotate: AnnotateConfig,
    out_path: Path,
    rejected_path: Path,
    work: Path,
) -> list[LedgerEntry]:
    """`extract_unit` whose two files appear whole under their names, then a record of the finished unit (its key and
    ledger): a run killed after this returns resumes without redoing it."""
    with atomic_path(out_path) as out_tmp, atomic_path(rejected_path) as rejected_tmp:
        ledger = extract_unit(unit, ingest, extract, annotate, out_tmp, rejected_tmp, RepeatMemo(work / "repeats"))
    record = {"key": key, "part": out_path.name, "ledger": [e.to_json() for e in ledger]}
    write_json_atomic(work / f"{out_path.stem}.json", record)
    return ledger


def extract_unit(
    unit,
    ingest: IngestConfig,
    extract: ExtractConfig,
    annotate: AnnotateConfig,
    out_path: Path,
    rejected_path: Path,
    repeats: RepeatMemo | None = None,
) -> list[LedgerEntry]:
    """Read, extract and annotate one unit into `out_path`, its rejected records into `rejected_path`; returns the
    ledger entries of ingest, extract and annotate for this unit. With `repeats`, a payload seen before in the
    stage attempt takes the fields its first copy got (corpus.repeats)."""
    repeats = repeats if repeats is not None else RepeatMemo(None)
    from corpus.annotate import Annotator
    from corpus.extract import Extractor
    from corpus.sources import Rejection, read_unit

    ledger = {name: LedgerEntry(name) for name in ("ingest", "extract", "annotate")}
    timers = dict.fromkeys(ledger, 0.0)
    annotator = Annotator(annotate)
    with (
        BatchedWriter(out_path, DOCUMENT_SCHEMA, documents_to_table) as kept,
        BatchedWriter(rejected_path, REJECTED_SCHEMA, rejected_table) as rejected,
        Extractor(extract, repeats) as extractor,
    ):
        records = read_unit(unit, ingest, ledger["ingest"].errors)

        def to_extract():
            """The unit's documents; ingest rejections are written on the way."""
            while True:
                t0 = time.perf_counter()
                record = next(records, None)
                timers["ingest"] += time.perf_counter() - t0
                if record is None:
                    return
                ledger["ingest"].in_ += 1
                if isinstance(record, Rejection):
                    _reject(ledger, rejected, record.doc, record.stage, record.reason, record.detail)
                    continue
                ledger["ingest"].out += 1
                ledger["extract"].in_ += 1
                yield record

        # extract_many keeps the next page in the extraction child while this process annotates the current one.
        results = extractor.extract_many(to_extract())
        while True:
            t0, ingest_before = time.perf_counter(), timers["ingest"]
            result = next(results, None)
            # what this process waited for extraction (the reading done inside next() is ingest's)
            timers["extract"] += time.perf_counter() - t0 - (timers["ingest"] - ingest_before)
            if result is None:
                break
            if isinstance(result, Rejection):
                _reject(ledger, rejected, result.doc, result.stage, result.reason, result.detail, annotate)
                continue
            ledger["extract"].out += 1
            ledger["annotate"].in_ += 1
            t0 = time.perf_counter()
            known = repeats.annotated(result)
            if known is not None:
                for name, value in known.items():
                    setattr(result, name, value)
                doc = result
            else:
                try:
                    doc = annotator.annotate(result)
                except Exception as exc:  # one bad document must not lose the unit
                    timers["annotate"] += time.perf_counter() - t0
                    _reject(ledger, rejected, result, "annotate", "annotate_error", f"{type(exc).__name__}: {exc}", annotate)
                    continue
                repeats.remember(doc)
            timers["annotate"] += time.perf_counter() - t0
            ledger["annotate"].out += 1
            kept.add(doc)
    for name, entry in ledger.items():
        entry.seconds = timers[name]
    return list(ledger.values())


def _reject(
    ledger: dict, writer: BatchedWriter, doc: Document, stage: str, reason: str, detail: str, pii: AnnotateConfig | None = None
) -> None:
    """Write a rejected row. With `pii` (extracted text that never reached the annotator), personal data in its text
    and title is replaced first, as in kept documents: rejected/ is read by people too."""
    doc.raw = None
    if pii is not None and pii.pii and (doc.text or doc.title):
        from corpus.annotate import redact_pii

        try:
            redact_pii(doc, pii)
        except Exception as exc:  # a text the redactor cannot handle is withheld, not written in clear
            doc.text, doc.title = "", ""
            detail = f"{detail}; text withheld, PII replacement failed: {type(exc).__name__}"[:500]
    ledger[stage].drop(reason)
    writer.add(doc.to_rejected_row(stage, reason, detail))


EXTRACT = Stage(
    name="extract",
    dirname="extracted",
    ledger_names=("ingest", "extract", "annotate"),
    sections=("ingest", "extract", "annotate"),
    code=(
        "corpus.sources", "corpus.urls", "corpus.extract", "corpus.annotate", "corpus.families", "corpus.document", "corpus.stages.extract"
    ),
    plan_units=plan,
    run_unit=extract_part,
    finish=finish,
    output_schema=lambda: document.DOCUMENT_SCHEMA,  # read at plan time: signal families may extend it
)
