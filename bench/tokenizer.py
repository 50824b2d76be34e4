"""Tokenizer stage against the raw libraries, in the same run.

1. Compression: bytes/token on held-out English (the last 10% of each Project Gutenberg book + WikiText-2 valid)
   of our byte-level BPE trained on the first 90% of the books, against GPT-2's tokenizer on the same text.
2. `encode_shard` (Arrow read + encode_batch + ids to numpy + EOS + Arrow write, train/val) against raw
   `Tokenizer.encode_batch` on the same texts with the same tokenizer.
3. `token_stream` read speed (memory-mapped, zero copy, summed so every page is touched) against `np.fromfile`.

    python bench/tokenizer.py [--data /work/shared/data] [--vocab-size 50257] [--encode-mb 8] [--stream-mb 100]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path and its name would shadow the `tokenizer` package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from corpus.document import Document, documents_to_table, tokens_schema  # noqa: E402
from corpus.shards import write_stream, write_table  # noqa: E402
from tokenizer.config import TokenizerConfig, TokensConfig  # noqa: E402
from tokenizer.encode import encode_shard, load_tokenizer, token_stream  # noqa: E402
from tokenizer.evaluate import bytes_per_token  # noqa: E402
from tokenizer.train import train_tokenizer  # noqa: E402

DATA = Path(os.environ.get("CORPUSFORGE_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")


def read_book(path: Path) -> str:
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.replace("\r\n", "\n")  # CRLF costs GPT-2 and us alike; compare on the words


def split_at_paragraph(text: str, fraction: float) -> tuple[str, str]:
    """(head, tail) cut at the paragraph break nearest `fraction` of the text."""
    cut = text.find("\n\n", int(len(text) * fraction))
    cut = int(len(text) * fraction) if cut < 0 else cut
    return text[:cut], text[cut:]


def paragraphs(text: str) -> list[str]:
    return [p for p in text.split("\n\n") if p.strip()]


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def compression(data: Path, vocab_size: int, work: Path) -> Path:
    books = sorted((data / "english-text" / "gutenberg").glob("pg*.txt"))
    heads, tails = zip(*(split_at_paragraph(read_book(p), 0.9) for p in books), strict=True)
    wiki = (data / "english-text" / "wikitext-2" / "valid.txt").read_text(encoding="utf-8")
    train_texts = [p for head in heads for p in paragraphs(head)]

    start = time.perf_counter()
    info = train_tokenizer(train_texts, TokenizerConfig(vocab_size=vocab_size), work / "tokenizer")
    seconds = time.perf_counter() - start
    print(
        f"trained on {sum(len(h.encode()) for h in heads) / 1e6:.2f} MB ({len(books)} books, first 90%): "
        f"asked {vocab_size}, got {info['vocab_size']} tokens in {seconds:.1f} s"
    )

    from tokenizers import Tokenizer

    ours = load_tokenizer(work / "tokenizer")
    gpt2 = Tokenizer.from_file(str(data / "tokenizers" / "gpt2" / "hf-format" / "tokenizer.json"))
    print(f"{'held-out text':<34}{'MB':>6}{'ours':>8}{'gpt2':>8}{'gap':>9}")
    for name, texts in [("gutenberg last 10%", list(tails)), ("wikitext-2 valid", [wiki]), ("both", [*tails, wiki])]:
        ours_bpt, gpt2_bpt = bytes_per_token(ours, texts), bytes_per_token(gpt2, texts)
        size = sum(len(t.encode()) for t in texts) / 1e6
        print(f"{name:<34}{size:>6.2f}{ours_bpt:>8.3f}{gpt2_bpt:>8.3f}{(ours_bpt / gpt2_bpt - 1) * 100:>+8.1f}%")
    print("  (bytes per token, higher is better; gap = ours / gpt2 - 1)")
    return work / "tokenizer"


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
    path = work / "stream.arrow"
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--vocab-size", type=int, default=50_257)
    parser.add_argument("--encode-mb", type=float, default=8.0)
    parser.add_argument("--stream-mb", type=float, default=100.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        tokenizer_dir = compression(args.data, args.vocab_size, work)
        throughput(args.data, tokenizer_dir, args.encode_mb, work)
        stream_speed(args.stream_mb, work)


if __name__ == "__main__":
    main()
