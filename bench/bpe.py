"""Tokenizer stage against the raw libraries, in the same run.

1. Compression: our byte-level BPE trained on the first 90% of each English source in ../shared/data (the three
   Project Gutenberg books, WikiText-2 valid, English pages extracted with trafilatura from the bundled sample WARC
   and from the extraction benchmark pages, English by py3langid), against GPT-2's tokenizer: bytes per token on the
   last 10% of each source and on all of them, and the gap.
2. Fertility (tokens per word, per character for unsegmented scripts) and bytes per token per language on the
   lingua test sentences (1000 per language), ours against GPT-2's.
3. Round trip decode(encode(x)) == x with the tokenizer as the pipeline loads it, on every text of a pipeline run
   over the bundled sample plus the malformed t*.txt / h*.html inputs (extracted/ = every record that produced
   text, documents/ = what survives cleaning); NFC rewrites are counted apart from real failures.
4. `encode_shard` (Arrow read + encode_batch + ids to numpy + EOS + Arrow write, train/val) against raw
   `Tokenizer.encode_batch` on the same texts with the same tokenizer.
5. `token_stream` read speed (memory-mapped, zero copy, summed so every page is touched) against `np.fromfile`.
6. Export of those token shards to nanoGPT and Megatron files against a raw copy of the same token streams.

    python bench/bpe.py [--data /work/shared/data] [--vocab-size 50257] [--run RUN] [--encode-mb 8]
                              [--stream-mb 100]

Without --run, section 3 first runs the pipeline (`corpusforge run --preset sample --to shard`, about 2-3 minutes
on 2 cores) into the temporary folder; --run reuses a run made with the same inputs.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
import unicodedata
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path: keep bench/ off it so nothing here shadows a package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from corpus.document import Document, documents_to_table, tokens_schema  # noqa: E402
from corpus.shards import write_stream, write_table  # noqa: E402
from tokenizer.config import TokenizerConfig, TokensConfig  # noqa: E402
from tokenizer.encode import encode_shard, load_tokenizer, token_stream  # noqa: E402
from tokenizer.evaluate import bytes_per_token, fertility, round_trip_failures  # noqa: E402
from tokenizer.export import export_megatron, export_nanogpt  # noqa: E402
from tokenizer.train import train_tokenizer  # noqa: E402

DATA = Path(os.environ.get("CORPUSFORGE_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
REPO = Path(__file__).resolve().parents[1]
SAMPLE_WARC = REPO / "corpus" / "sample_data" / "sample.warc.gz"
TRAIN_FRACTION = 0.9


def read_book(path: Path) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.replace("\r\n", "\n")  # CRLF costs GPT-2 and us alike; compare on the words


def paragraphs(text: str) -> list[str]:
    return [p for p in text.split("\n\n") if p.strip()]


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


# --- 1. English sources and compression ------------------------------------------------------------------------


def split_at_boundary(text: str, fraction: float, boundary: str) -> tuple[str, str]:
    """(head, tail) cut at the first match of the regex `boundary` after `fraction` of the text."""
    at = int(len(text) * fraction)
    match = re.compile(boundary).search(text, at)
    cut = match.start() if match else at
    return text[:cut], text[cut:]


def split_list(items: list[str], fraction: float) -> tuple[list[str], list[str]]:
    """(head, tail) of a list of texts cut where the head reaches `fraction` of the UTF-8 bytes."""
    sizes = [len(t.encode()) for t in items]
    total, running = sum(sizes), 0
    for i, size in enumerate(sizes):
        if running + size > fraction * total:
            return items[:i], items[i:]
        running += size
    return items, []


def _trafilatura():
    """trafilatura.bare_extraction with the pipeline's default options, quiet."""
    import trafilatura

    from corpus.config import ExtractConfig
    from corpus.extract import trafilatura_options

    logging.getLogger("trafilatura").setLevel(logging.CRITICAL)
    logging.getLogger("htmldate").setLevel(logging.CRITICAL)
    options = trafilatura_options(ExtractConfig())

    def extract(html: str, url: str = "") -> str:
        result = trafilatura.bare_extraction(html, url=url or None, output_format="python", **options)
        return (result.text or "") if result is not None else ""

    return extract


def _english(texts: list[str]) -> list[str]:
    """The texts py3langid labels English, exact duplicates dropped (first kept): a copy on both sides of the
    train/held-out cut would flatter our tokenizer."""
    from corpus.annotate.lang import identify_language

    seen: set[bytes] = set()
    kept = []
    for text in texts:
        digest = hashlib.sha1(text.encode()).digest()
        if text.strip() and digest not in seen and identify_language(text)[0] == "en":
            seen.add(digest)
            kept.append(text)
    return kept


def sample_warc_pages(warc: Path) -> list[str]:
    """Main texts of the sample WARC's pages, in record order (charset resolved as the pipeline does)."""
    from corpus.config import IngestConfig
    from corpus.sources import WorkUnit
    from corpus.sources.decode import decode_html
    from corpus.sources.warc import read_records

    extract = _trafilatura()
    texts = []
    for item in read_records(WorkUnit(str(warc), 0, -1, "warc"), IngestConfig(), []):
        if getattr(item, "raw", None):
            texts.append(extract(decode_html(item.raw, item.charset), item.url))
    return texts


def benchmark_pages(data: Path) -> list[str]:
    """Main texts of the extraction benchmarks' HTML pages (trafilatura-eval eval/ and cache/, cleanportaleval
    input/), in path order."""
    from corpus.sources.decode import decode_html

    extract = _trafilatura()
    root = data / "extraction"
    paths = sorted(
        [*(root / "trafilatura-eval" / "eval").glob("*.gz"), *(root / "trafilatura-eval" / "cache").glob("*.gz")]
    ) + sorted((root / "cleanportaleval" / "input").glob("*.gz"))
    return [extract(decode_html(gzip.decompress(p.read_bytes()))) for p in paths]


def english_sources(data: Path) -> dict[str, tuple[list[str], list[str]]]:
    """{source: (training texts, held-out texts)}: the first 90% of each source and the rest."""
    sources = {}
    for path in sorted((data / "english-text" / "gutenberg").glob("pg*.txt")):
        head, tail = split_at_boundary(read_book(path), TRAIN_FRACTION, r"\n\n")
        sources[f"gutenberg {path.stem.split('-', 1)[1]}"] = (paragraphs(head), [tail])
    wiki = (data / "english-text" / "wikitext-2" / "valid.txt").read_text(encoding="utf-8")
    head, tail = split_at_boundary(wiki, TRAIN_FRACTION, r"\n = [^=]")  # at an article title
    sources["wikitext-2 valid"] = ([line for line in head.splitlines() if line.strip()], [tail])
    start = time.perf_counter()
    sample = _english(sample_warc_pages(SAMPLE_WARC))
    bench = _english(benchmark_pages(data))
    print(
        f"extracted English pages (trafilatura + py3langid): {len(sample)} from the sample WARC, {len(bench)} from "
        f"the extraction benchmarks, in {time.perf_counter() - start:.0f} s"
    )
    sources["sample WARC pages (en)"] = split_list(sample, TRAIN_FRACTION)
    sources["extraction bench pages (en)"] = split_list(bench, TRAIN_FRACTION)
    return sources


def _mb(texts: list[str]) -> float:
    return sum(len(t.encode()) for t in texts) / 1e6


def compression(data: Path, vocab_size: int, work: Path) -> Path:
    sources = english_sources(data)
    train_texts = [t for head, _ in sources.values() for t in head]
    start = time.perf_counter()
    info = train_tokenizer(train_texts, TokenizerConfig(vocab_size=vocab_size), work / "tokenizer")
    seconds = time.perf_counter() - start
    print(
        f"trained on {_mb(train_texts):.2f} MB (first 90% of {len(sources)} sources): asked {vocab_size}, "
        f"got {info['vocab_size']} tokens in {seconds:.1f} s"
    )

    from tokenizers import Tokenizer

    ours = load_tokenizer(work / "tokenizer")
    gpt2 = Tokenizer.from_file(str(data / "tokenizers" / "gpt2" / "hf-format" / "tokenizer.json"))
    print(f"{'held-out text (last 10%)':<32}{'train MB':>9}{'MB':>7}{'ours':>8}{'gpt2':>8}{'gap':>9}{'round trip':>12}")
    rows = [(name, head, tail) for name, (head, tail) in sources.items()]
    rows.append(("all sources", train_texts, [t for _, tail in sources.values() for t in tail]))
    for name, head, tail in rows:
        ours_bpt, gpt2_bpt = bytes_per_token(ours, tail), bytes_per_token(gpt2, tail)
        failures = len(round_trip_failures(ours, tail))
        print(
            f"{name:<32}{_mb(head):>9.2f}{_mb(tail):>7.2f}{ours_bpt:>8.3f}{gpt2_bpt:>8.3f}"
            f"{(ours_bpt / gpt2_bpt - 1) * 100:>+8.1f}%{f'{failures} fail':>12}"
        )
    print("  (bytes per token, higher is better; gap = ours / gpt2 - 1; round trip: held-out texts not given back)")
    return work / "tokenizer"


# --- 2. fertility per language ----------------------------------------------------------------------------------


def multilingual(data: Path, tokenizer_dir: Path) -> None:
    from tokenizers import Tokenizer

    ours = load_tokenizer(tokenizer_dir)
    gpt2 = Tokenizer.from_file(str(data / "tokenizers" / "gpt2" / "hf-format" / "tokenizer.json"))
    folder = data / "multilingual" / "lingua-testdata" / "sentences"
    print(f"fertility (tokens per word; per character for zh, ja, th) on {folder}:")
    print(f"{'lang':<6}{'lines':>6}{'ours':>7}{'gpt2':>7}{'bpt ours':>10}{'bpt gpt2':>10}{'rt fail':>9}")
    totals = {"ours": 0.0, "gpt2": 0.0}
    paths = sorted(folder.glob("*.txt"))
    for path in paths:
        # split("\n"), not splitlines(): a sentence may hold U+2028 or U+0085, which splitlines() breaks at.
        lines = [line for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]
        ours_f, gpt2_f = fertility(ours, lines), fertility(gpt2, lines)
        totals["ours"] += ours_f
        totals["gpt2"] += gpt2_f
        fails = len(round_trip_failures(ours, [unicodedata.normalize("NFC", line) for line in lines]))
        print(
            f"{path.stem:<6}{len(lines):>6}{ours_f:>7.2f}{gpt2_f:>7.2f}{bytes_per_token(ours, lines):>10.2f}"
            f"{bytes_per_token(gpt2, lines):>10.2f}{fails:>9}"
        )
    print(f"{'mean':<12}{totals['ours'] / len(paths):>7.2f}{totals['gpt2'] / len(paths):>7.2f}")
    print("  (rt fail: NFC-normalized sentences whose decode(encode(x)) differs)")


# --- 3. round trip on a pipeline run ----------------------------------------------------------------------------


def pipeline_run(data: Path, work: Path) -> Path:
    """A pipeline run over the bundled sample and the malformed text/HTML inputs, through `shard`."""
    run = work / "run"
    malformed = data / "malformed"
    command = [sys.executable, "-m", "flows.cli", "run", "--preset", "sample", "--input", str(SAMPLE_WARC)]
    command += ["--input", str(malformed / "t*.txt"), "--input", str(malformed / "h*.html")]
    command += ["--output", str(run), "--to", "shard"]
    print("running:", " ".join(command[1:]))
    start = time.perf_counter()
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"pipeline run failed ({result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}")
    print(f"  done in {time.perf_counter() - start:.0f} s")
    return run


def _comes_back_as_nfc(tokenizer, text: str) -> bool:
    """NFC is the one rewrite our byte-level BPE makes on purpose: such a text comes back in its NFC form."""
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    return tokenizer.decode(ids, skip_special_tokens=False) == unicodedata.normalize("NFC", text)


def round_trip(data: Path, tokenizer_dir: Path, run: Path) -> None:
    from corpus.shards import iter_rows

    tokenizer = load_tokenizer(tokenizer_dir)  # as encode_shard uses it: special-token strings are plain text
    malformed_dir = str(data / "malformed")
    print(f"round trip decode(encode(x)) == x on the texts of {run}:")
    print(f"{'folder':<12}{'from':<11}{'texts':>7}{'MB':>7}{'exact':>7}{'NFC only':>10}{'failures':>10}")
    survivors = set()
    for folder in ("extracted", "documents"):
        groups: dict[str, list[dict]] = {"sample": [], "malformed": []}
        for row in iter_rows(sorted((run / folder).glob("*.arrow")), ["id", "source", "text"]):
            if row["text"] is not None:
                groups["malformed" if row["source"].startswith(malformed_dir) else "sample"].append(row)
        for group, rows in groups.items():
            texts = [r["text"] for r in rows]
            failed = round_trip_failures(tokenizer, texts)
            nfc = [i for i in failed if _comes_back_as_nfc(tokenizer, texts[i])]
            real = sorted(set(failed) - set(nfc))
            print(
                f"{folder:<12}{group:<11}{len(texts):>7}{_mb(texts):>7.2f}{len(texts) - len(failed):>7}{len(nfc):>10}"
                f"{len(real):>10}"
            )
            for i in real:
                print(f"    FAILED {rows[i]['id']} {rows[i]['source']}")
            for i in nfc:
                print(f"    NFC    {rows[i]['id']} {Path(rows[i]['source']).name}")
            if folder == "documents" and group == "malformed":
                survivors = {Path(r["source"]).name for r in rows}
    inputs = sorted(p.name for p in [*(data / "malformed").glob("t*.txt"), *(data / "malformed").glob("h*.html")])
    print(f"  malformed inputs surviving cleaning: {len(survivors)} of {len(inputs)}: {', '.join(sorted(survivors))}")


def throughput(data: Path, tokenizer_dir: Path, megabytes: float, work: Path) -> None:
    books = sorted((data / "english-text" / "gutenberg").glob("pg*.txt"))
    paras = [p for b in books for p in paragraphs(read_book(b))]
    docs = ["\n\n".join(paras[i : i + 20]) for i in range(0, len(paras), 20)]  # ~8 KB documents
    copies = max(1, int(megabytes * 1e6 / sum(len(d.encode()) for d in docs)))
    texts = docs * copies
    rows = [
        Document(id=f"d{i}", source="bench", offset=i, text=t, split="val" if i % 20 == 0 else "train")
        for i, t in enumerate(texts)
    ]
    src = work / "documents" / "shard-00000.arrow"
    src.parent.mkdir()
    write_table(src, documents_to_table(rows))
    del rows

    cfg = TokensConfig()
    tokenizer = load_tokenizer(tokenizer_dir)

    def raw() -> None:
        for i in range(0, len(texts), cfg.batch_docs):
            tokenizer.encode_batch(texts[i : i + cfg.batch_docs], add_special_tokens=False)

    result: dict = {}

    def ours() -> None:
        result.update(encode_shard(tokenizer_dir, src, work / "tokens", cfg))

    raw_s, ours_s = best_of(2, raw), best_of(2, ours)
    n_bytes = sum(len(t.encode()) for t in texts)
    n_tokens = sum(result["tokens"].values())
    print(
        f"encode {n_bytes / 1e6:.1f} MB, {len(texts)} docs, {n_tokens / 1e6:.2f}M tokens "
        f"(TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM')}, {os.cpu_count()} cpus):"
    )
    print(f"  raw encode_batch   {n_tokens / raw_s / 1e6:6.2f} M tokens/s  {n_bytes / raw_s / 1e6:6.2f} MB/s")
    print(f"  encode_shard       {n_tokens / ours_s / 1e6:6.2f} M tokens/s  {n_bytes / ours_s / 1e6:6.2f} MB/s")
    print(f"  ratio encode_shard / raw = {raw_s / ours_s:.2f}")


def stream_speed(megabytes: float, work: Path) -> None:
    n = int(megabytes * 1e6) // 2
    per_doc = 1000
    values = (np.arange(n, dtype=np.uint64) % 50_257).astype(np.uint16)
    offsets = np.arange(0, n + 1, per_doc, dtype=np.int64)
    offsets[-1] = n
    schema = tokens_schema(50_257, tokenizer_sha256="0" * 64, eos_id=0)
    ids = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(values))
    path = work / "stream-tokens" / "train" / "shard-00000.arrow"  # a tokens/ folder with no val split
    path.parent.mkdir(parents=True)
    doc_ids = pa.array([str(i) for i in range(len(ids))])
    write_stream(path, schema, [pa.Table.from_arrays([doc_ids, ids], schema=schema)])
    del values, ids
    raw_path = work / "stream.u16"
    token_stream(path).tofile(raw_path)

    start = time.perf_counter()
    stream = token_stream(path)
    open_s = time.perf_counter() - start
    ours_s = best_of(3, lambda: token_stream(path).sum(dtype=np.uint64))
    raw_s = best_of(3, lambda: np.fromfile(raw_path, dtype=np.uint16).sum(dtype=np.uint64))
    gb = stream.nbytes / 1e9
    print(f"token_stream on a {gb * 1e3:.0f} MB shard (page cache warm): open {open_s * 1e3:.2f} ms")
    print(f"  token_stream + sum {gb / ours_s:6.2f} GB/s")
    print(f"  np.fromfile + sum  {gb / raw_s:6.2f} GB/s   ratio token_stream / fromfile = {raw_s / ours_s:.2f}")


# --- 6. export -------------------------------------------------------------------------------------------------


def export_speed(work: Path) -> None:
    """Export the stream_speed shard (train only) against writing the same token stream with numpy alone."""
    tokens = work / "stream-tokens"
    paths = sorted(tokens.rglob("*.arrow"))

    def raw() -> None:
        with open(work / "raw.bin", "wb") as sink:
            for path in paths:
                token_stream(path).tofile(sink)

    raw_s = best_of(3, raw)
    nano_s = best_of(3, lambda: export_nanogpt(tokens, work / "nanogpt"))
    mega_s = best_of(3, lambda: export_megatron(tokens, work / "megatron"))
    gb = sum(token_stream(p).nbytes for p in paths) / 1e9
    print(f"export of a {gb * 1e3:.0f} MB token shard (page cache warm):")
    print(f"  raw token_stream.tofile  {gb / raw_s:6.2f} GB/s")
    print(f"  export_nanogpt           {gb / nano_s:6.2f} GB/s   ratio export / raw = {raw_s / nano_s:.2f}")
    print(f"  export_megatron          {gb / mega_s:6.2f} GB/s   ratio export / raw = {raw_s / mega_s:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--vocab-size", type=int, default=50_257)
    parser.add_argument("--run", type=Path, default=None, help="Pipeline run to check the round trip on.")
    parser.add_argument("--encode-mb", type=float, default=8.0)
    parser.add_argument("--stream-mb", type=float, default=100.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tokenizer_dir = compression(args.data, args.vocab_size, work)
        multilingual(args.data, tokenizer_dir)
        round_trip(args.data, tokenizer_dir, args.run or pipeline_run(args.data, work))
        throughput(args.data, tokenizer_dir, args.encode_mb, work)
        stream_speed(args.stream_mb, work)
        export_speed(work)


if __name__ == "__main__":
    main()
