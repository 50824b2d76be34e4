"""The whole clean stage against raw `trafilatura.extract` on the same pages, in the same run.

Ours = read WARC + decode + extract (child process, timeout) + language + signals + terms + keyphrases + Arrow write
(`corpus.stages.extract_unit`) + filters (`corpus.stages.filter_unit`). Raw = fastwarc iteration and
`trafilatura.extract(html)` in-process with the same options. Prints docs/s of both and the ratios:
ours/raw with one worker (target >= 0.8) and two workers/one worker (target >= 1.8).

    python bench/clean.py [--input FILE.warc.gz] [--limit N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from corpus.config import AnnotateConfig, ExtractConfig, FilterConfig, IngestConfig
from corpus.extract import trafilatura_options
from corpus.sources import plan_units
from corpus.stages import extract_unit, filter_unit

SAMPLE = Path(__file__).resolve().parents[1] / "corpus" / "sample_data" / "sample.warc.gz"


def raw_trafilatura(path: Path, limit: int) -> tuple[int, float]:
    import logging

    import trafilatura
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    options = trafilatura_options(ExtractConfig())
    options.pop("with_metadata")
    start = time.perf_counter()
    n = 0
    with open(path, "rb") as f:
        for record in ArchiveIterator(f, record_types=WarcRecordType.response):
            html = record.reader.read().decode("utf-8", "replace")
            trafilatura.extract(html, with_metadata=True, **options)
            n += 1
            if n == limit:
                break
    return n, time.perf_counter() - start


def ours_unit(args) -> int:
    unit, out_dir, i = args
    ingest = IngestConfig()
    extract_unit(unit, ingest, ExtractConfig(), AnnotateConfig(), out_dir / f"x{i}.arrow", out_dir / f"r{i}.arrow")
    (filtered,) = filter_unit(FilterConfig(), out_dir / f"x{i}.arrow", out_dir / f"f{i}.arrow", out_dir / f"fr{i}.arrow")
    return filtered.in_


def ours(path: Path, workers: int, unit_bytes: int) -> tuple[int, float]:
    units = plan_units([str(path)], IngestConfig(unit_bytes=unit_bytes))
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(workers) as pool:
        list(pool.map(int, [0] * workers))  # start the workers before the clock
        start = time.perf_counter()
        n = sum(pool.map(ours_unit, [(u, Path(tmp), i) for i, u in enumerate(units)]))
        seconds = time.perf_counter() - start
    return n, seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", type=Path, default=SAMPLE)
    args = parser.parse_args()
    size = args.input.stat().st_size
    n_raw, t_raw = raw_trafilatura(args.input, 0)
    n1, t1 = ours(args.input, 1, size + 1)
    n2, t2 = ours(args.input, 2, max(size // 8, 1 << 16))
    raw_rate, one_rate, two_rate = n_raw / t_raw, n_raw / t1, n_raw / t2
    print(f"pages: {n_raw} response records ({n1} extracted by ours)")
    print(f"raw trafilatura.extract, 1 process : {raw_rate:7.1f} docs/s")
    print(f"corpusforge clean stage, 1 worker  : {one_rate:7.1f} docs/s   ratio to raw {one_rate / raw_rate:.2f} (target >= 0.8)")
    print(f"corpusforge clean stage, 2 workers : {two_rate:7.1f} docs/s   ratio to 1 worker {two_rate / one_rate:.2f} (target >= 1.8)")


if __name__ == "__main__":
    main()
