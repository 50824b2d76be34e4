"""WARC read-and-decode throughput of the sources reader against raw fastwarc iteration, in the same run.

Raw = fastwarc's ArchiveIterator over the page records (response, resource, conversion) with HTTP headers parsed,
reading each payload. Ours = `plan_units` + `read_unit`: the same records as Documents with provenance, bodies
de-chunked and content-decoded, damage checks. Both are then also timed with the payload decoded to text: raw with
a plain UTF-8 decode, ours with `decode_html` (header, meta and detected charsets). Prints MB/s and records/s of
each and the ratios ours/raw (target >= 0.8 for reading). Each file is timed best of `--repeat` runs.

    python bench/warc_read.py [--input FILE ...] [--repeat N]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from fastwarc.warc import ArchiveIterator, WarcRecordType

from corpus.config import IngestConfig
from corpus.document import Document
from corpus.sources import plan_units, read_unit
from corpus.sources.decode import decode_html

SAMPLE = Path(__file__).resolve().parents[1] / "corpus" / "sample_data" / "sample.warc.gz"
SHARED = Path(os.environ.get("CORPUSFORGE_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
PAGE_RECORDS = WarcRecordType.response | WarcRecordType.resource | WarcRecordType.conversion


def default_inputs() -> list[Path]:
    common_crawl = sorted((SHARED / "warc" / "commoncrawl").glob("*.warc*.gz")) if SHARED.is_dir() else []
    return [SAMPLE, *[p for p in common_crawl if ".wat." not in p.name]]


def raw_fastwarc(path: Path, decode: bool) -> int:
    n = 0
    with open(path, "rb") as f:
        for record in ArchiveIterator(f, record_types=PAGE_RECORDS, parse_http=True):
            payload = record.reader.read()
            if decode:
                payload.decode("utf-8", "replace")
            n += 1
    return n


def ours(path: Path, decode: bool) -> int:
    cfg = IngestConfig()
    n = 0
    for unit in plan_units([str(path)], cfg):
        for item in read_unit(unit, cfg, []):
            if decode and isinstance(item, Document):
                decode_html(item.raw, item.charset)
            n += 1
    return n


def best_of(fn, path: Path, decode: bool, repeat: int) -> tuple[int, float]:
    times, n = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        n = fn(path, decode)
        times.append(time.perf_counter() - start)
    return n, min(times)


def row(name: str, records, size: int, raw: float, mine: float, raw_dec: float, ours_dec: float) -> str:
    mb_s = f"{size / raw / 1e6:>9.1f} {size / mine / 1e6:>9.1f}"
    return f"{name[:52]:<52} {records:>7} {mb_s} {raw / mine:>6.2f} {raw_dec / ours_dec:>14.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, nargs="*", default=None)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    inputs = args.input or default_inputs()
    totals = {key: 0.0 for key in ("raw", "ours", "raw_decode", "ours_decode")}
    total_bytes = 0
    print(f"{'file':<52} {'records':>7} {'raw MB/s':>9} {'ours MB/s':>9} {'ratio':>6} {'+decode ratio':>14}")
    for path in inputs:
        size = path.stat().st_size
        n_raw, raw = best_of(raw_fastwarc, path, False, args.repeat)
        n_ours, mine = best_of(ours, path, False, args.repeat)
        _, raw_dec = best_of(raw_fastwarc, path, True, args.repeat)
        _, ours_dec = best_of(ours, path, True, args.repeat)
        for key, value in zip(totals, (raw, mine, raw_dec, ours_dec)):
            totals[key] += value
        total_bytes += size
        note = "" if n_raw == n_ours else f"  (ours {n_ours} records)"
        print(row(path.name, n_raw, size, raw, mine, raw_dec, ours_dec) + note)
    print(row("all files", "", total_bytes, *totals.values()))
    print("ratio = ours/raw throughput reading records (target >= 0.8); +decode: with payloads decoded to text")


if __name__ == "__main__":
    main()
