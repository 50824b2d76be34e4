"""The whole clean stage against raw `trafilatura.extract` on the same pages, in the same run.

Ours = read WARC + decode + extract (child process, timeout) + language + signals + terms + keyphrases + Arrow write
(`corpus.stages.extract_unit`) + filters and their Arrow write (`corpus.stages.filter_unit`), in a spawn process
pool of one, then two workers, over the same two work units.
Raw = `trafilatura.extract(payload.decode("utf-8", "replace"), ...)` in this process with the pipeline's trafilatura
options (`corpus.extract.trafilatura_options`: balanced, tables on, comments off), over the payloads our reader
hands to extraction (read before the clock starts: fastwarc reads ~7,000 records/s, noise next to extraction).
Three raw runs: with metadata as the Extractor's options ask for it (`with_metadata=True`: title, date by
htmldate's extensive search, author, site name, ...; the baseline of the 0.8x target), the same with the extensive
date search off (the date search our default `date_search="fast"` runs), and text only (extract's default output).

Ours runs as the pipeline runs it: `overlap: auto` (the default) is decided per worker count as the pipeline
decides it (`ExtractConfig.with_overlap_for`: on while workers < cores, so one worker overlaps the extraction child
with annotation and keeps about 1.2 cores busy; off when the workers fill the cores). Worker scaling is measured
apart, with one core per worker (overlap off at both counts): with overlap on, one worker already uses more than
one core and two cannot double it on a 2-core machine.

Two clocks, both printed:
- wall: docs/s as a user sees it;
- CPU: process time of every process involved (this one for raw; each worker and its extraction child for ours,
  via `time.process_time`, `RUSAGE_CHILDREN` and /proc for the children still alive, around the unit: the Extractor
  keeps its child alive from one unit to the next), as docs per CPU-second: the cost of the work, insensitive to
  other jobs on a shared machine.
Targets (issue 4): ours with one worker >= 0.8x raw with metadata; two workers >= 1.8x one worker (wall, one
core per worker).

    python bench/clean.py [--input FILE.warc.gz] [--set overlap=false] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from corpus.config import AnnotateConfig, ExtractConfig, FilterConfig, IngestConfig
from corpus.extract import trafilatura_options
from corpus.sources import Rejection, plan_units, read_unit
from corpus.stages import extract_unit, filter_unit
from flows.config import parse_sets  # --set values read as the CLI reads them

SAMPLE = Path(__file__).resolve().parents[1] / "corpus" / "sample_data" / "sample.warc.gz"
UNITS = 2  # the same units for every worker count: per-unit costs (a child start) must not differ between runs


def live_descendants_cpu() -> float:
    """CPU seconds of this process's live descendants, each with its own children that it has waited for, from
    /proc/PID/stat (utime, stime, cutime, cstime; Linux)."""
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    stats[int(entry)] = f.read().rsplit(")", 1)[1].split()  # fields 3 (state) on; comm may hold ")"
            except OSError:  # it ended meanwhile
                continue
    children: dict[int, list[int]] = {}
    for pid, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(pid)  # field 4: ppid
    ticks, pending = 0, list(children.get(os.getpid(), []))
    while pending:
        pid = pending.pop()
        ticks += sum(int(t) for t in stats[pid][11:15])  # fields 14-17: utime, stime, cutime, cstime
        pending += children.get(pid, [])
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> float:
    """CPU time of this process and of every process it started: those that ended and were waited for
    (RUSAGE_CHILDREN) and those still alive (the Extractor's child, kept alive between units: /proc). A difference of
    two readings is the CPU spent in between, provided no child ends between the two reads inside one reading."""
    live = live_descendants_cpu()
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ended.ru_utime + ended.ru_stime + live


def extraction_payloads(path: Path) -> list[bytes]:
    """The payloads our reader passes to extraction (HTTP and content-encoding undone)."""
    cfg = IngestConfig()
    return [r.raw for u in plan_units([str(path)], cfg) for r in read_unit(u, cfg, []) if not isinstance(r, Rejection)]


# The raw baselines: extract's own output (text only), the same with metadata as the Extractor's options ask for
# (title, date with htmldate's extensive search, author, site name, ...), and with the date search our default uses.
RAW_RUNS = {
    "raw trafilatura.extract, with_metadata=True": {"with_metadata": True},
    "raw trafilatura.extract, with_metadata=True, extensive date search off": {
        "with_metadata": True,
        "date_extraction_params": {"original_date": True, "extensive_search": False},
    },
    "raw trafilatura.extract, no metadata": {"with_metadata": False},
}


def raw_trafilatura(payloads: list[bytes], overrides: dict, warm: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of trafilatura.extract over the payloads, naively decoded, with the pipeline's
    options plus `overrides`, after the same untimed warm-up pages as our workers."""
    import trafilatura

    options = {**trafilatura_options(ExtractConfig()), **overrides}
    for raw in payloads[: max(warm, 1)]:
        trafilatura.extract(raw.decode("utf-8", "replace"), **options)
    wall, cpu = time.perf_counter(), time.process_time()
    for raw in payloads:
        trafilatura.extract(raw.decode("utf-8", "replace"), **options)
    return time.perf_counter() - wall, time.process_time() - cpu


def warm_worker(args) -> None:
    """Run the stage over the first records of the input, untimed: what a long-lived worker has already paid
    (imports, one spaCy tokenizer per language, first-use caches) stays out of a 20-second measurement, equally for
    every worker count. The sleep makes sure every worker of the pool gets one of these."""
    path, records, extract = args
    if records:
        cfg = IngestConfig(max_records=records)
        (unit,) = plan_units([str(path)], IngestConfig(unit_bytes=path.stat().st_size + 1))
        with tempfile.TemporaryDirectory() as tmp:
            extract_unit(unit, cfg, extract, AnnotateConfig(), Path(tmp) / "x.arrow", Path(tmp) / "r.arrow")
    time.sleep(0.5)


def ours_unit(args) -> tuple[int, float]:
    """(documents extracted, CPU seconds of this worker and its extraction child) for one unit."""
    unit, out_dir, i, extract = args
    cpu = cpu_seconds()
    extract_unit(unit, IngestConfig(), extract, AnnotateConfig(), out_dir / f"x{i}.arrow", out_dir / f"r{i}.arrow")
    filtered_paths = out_dir / f"f{i}.arrow", out_dir / f"fr{i}.arrow"
    (filtered,) = filter_unit(FilterConfig(), out_dir / f"x{i}.arrow", *filtered_paths)
    return filtered.in_, cpu_seconds() - cpu  # the extraction child may live on, idle, for the next unit


def ours(path: Path, workers: int, extract: ExtractConfig, warm: int) -> tuple[int, float, float]:
    """(documents extracted, wall seconds, CPU seconds) of the clean stage over UNITS units with `workers`."""
    size = path.stat().st_size
    units = plan_units([str(path)], IngestConfig(unit_bytes=max(size // UNITS, 1 << 16)))
    context = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(workers, mp_context=context) as pool:
        list(pool.map(warm_worker, [(path, warm, extract)] * workers))
        start = time.perf_counter()
        done = list(pool.map(ours_unit, [(u, Path(tmp), i, extract) for i, u in enumerate(units)]))
        seconds = time.perf_counter() - start
    return sum(n for n, _ in done), seconds, sum(c for _, c in done)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, default=SAMPLE)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="ExtractConfig key=value for ours")
    parser.add_argument("--workers", default="1,2", help="worker counts to run, e.g. 1,2 or 1")
    parser.add_argument("--warm", type=int, default=64, help="records each side processes untimed first (0: none)")
    args = parser.parse_args()
    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    logging.getLogger("htmldate").setLevel(logging.CRITICAL)
    extract = ExtractConfig(**parse_sets(args.overrides))
    payloads = extraction_payloads(args.input)
    n = len(payloads)
    settings = extract.model_dump(include={"backend", "date_search", "overlap", "fast", "favor"})
    print(f"pages: {n} passed to extraction, after {args.warm} untimed warm-up pages per process; ours: {settings}")
    runs = {name: raw_trafilatura(payloads, overrides, args.warm) for name, overrides in RAW_RUNS.items()}
    cores = multiprocessing.cpu_count()
    counts = [int(w) for w in args.workers.split(",")]
    as_run: list[str] = []  # one run per worker count, overlap decided as the pipeline decides it
    scaling: dict[int, str] = {}  # worker count -> run with one core per worker (overlap off)
    for workers, overlap in [(w, extract.with_overlap_for(w, cores).overlap) for w in counts] + [(w, False) for w in counts]:
        label = f"corpusforge clean stage, {workers} worker{'s' * (workers > 1)}, overlap {'on' if overlap else 'off'}"
        if label not in runs:
            extracted, wall, cpu = ours(args.input, workers, extract.model_copy(update={"overlap": overlap}), args.warm)
            runs[label] = (wall, cpu)
        if len(as_run) < len(counts):
            as_run.append(label)
        elif not overlap:
            scaling[workers] = label
    print(f"({cores} CPU cores; {extracted} documents through extraction and the filters per run)")
    print("\n| run | docs/s (wall) | docs per CPU-second |\n|---|---|---|")
    for name, (wall, cpu) in runs.items():
        print(f"| {name} | {n / wall:.1f} | {n / cpu:.1f} |")
    raw_names = list(RAW_RUNS)
    print("\n| ratio (docs/s over docs/s) | wall | CPU | target |\n|---|---|---|---|")
    for raw_name in raw_names:
        target = ">= 0.8" if raw_name == raw_names[0] else "-"
        print(f"| {as_run[0]} / {raw_name} | {ratio(runs, raw_name, as_run[0])} | {target} |")
    for workers in counts[1:]:
        base = scaling[counts[0]]
        print(f"| {scaling[workers]} / {base} | {ratio(runs, base, scaling[workers])} | >= 1.8 (wall) |")
    for name in as_run[1:]:
        print(f"| {name} / {as_run[0]} (overlap as the pipeline decides) | {ratio(runs, as_run[0], name)} | - |")


def ratio(runs: dict, base: str, other: str) -> str:
    """`other`'s docs/s over `base`'s on both clocks, as two table cells."""
    (base_wall, base_cpu), (wall, cpu) = runs[base], runs[other]
    return f"{base_wall / wall:.2f} | {base_cpu / cpu:.2f}"


if __name__ == "__main__":
    main()
