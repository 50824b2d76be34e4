"""Dedup against datasketch in the same run, on the labelled set, and at a million signatures.

1. Signatures: ours (normalize + shingle + hash + MinHash of a batch, `corpus.dedup`) against datasketch's batched
   path (`MinHash.bulk`) given the same normalized texts and the same 5-word shingles, same num_perm; docs/s and
   the ratio (target >= 3), in docs per CPU-second (best of 3). datasketch runs with its default scheme
   (affine32, 32-bit SHA-1 hashes) and with affine64 (64-bit hashes, like ours). Also the mean
   |estimated - true Jaccard| on the labelled pairs (<= 0.03).
2. Labelled set (tests/dedup_eval.py, real texts from ../shared/data): precision and recall of the dropped
   documents at threshold 0.8 (targets 0.95 and 0.90), with and without pair verification.
3. Clustering synthetic key files of 250k, 500k and 1M documents (20% near-duplicates, 5% exact copies), each size
   in a fresh process: seconds, peak RSS (VmHWM), CPU time / wall time (2.0 = both cores busy).

    python bench/dedup.py [--parts signatures labelled scale] [--docs 2000] [--sizes 250000 500000 1000000]

datasketch is needed for part 1 only (pip install datasketch); it is not a dependency of corpusforge.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from dedup_eval import (  # noqa: E402
    THRESHOLD,
    agnews_documents,
    evaluate,
    gutenberg_documents,
    make_labelled_set,
    shared_data_dir,
    wikitext_documents,
)

from corpus.config import DedupConfig  # noqa: E402
from corpus.dedup import build_clusters, dropped_documents, keys_schema, keys_unit, normalize_text  # noqa: E402
from corpus.dedup.exact import canonical_batch  # noqa: E402
from corpus.dedup.keys import GROUP_CHARS  # noqa: E402
from corpus.dedup.minhash import MinHasher, estimated_jaccard  # noqa: E402
from corpus.document import Document, documents_to_table  # noqa: E402
from corpus.shards import write_table  # noqa: E402

CHUNK_ROWS = 50_000  # rows per synthetic key file


def write_shard(path: Path, docs: list[tuple[str, str]]) -> None:
    rows = [Document(id=doc_id, source="bench", offset=i, text=text) for i, (doc_id, text) in enumerate(docs)]
    write_table(path, documents_to_table(rows))


def best_of(fn, repeats: int = 3) -> float:
    """Best CPU seconds of this process over `repeats` runs: both sides are single-threaded, and CPU time does not
    count the time other processes on a shared machine take from us."""
    times = []
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return min(times)


# --- 1. signatures -------------------------------------------------------------------------------------------------


def ours(texts: list[str], hasher: MinHasher) -> np.ndarray:
    """What keys_unit does per group of documents, without the Arrow I/O."""
    out, group, chars = [], [], 0
    for text in texts:
        group.append(text)
        chars += len(text)
        if chars >= GROUP_CHARS:
            out.append(hasher.signatures(canonical_batch(group))[0])
            group, chars = [], 0
    if group:
        out.append(hasher.signatures(canonical_batch(group))[0])
    return np.concatenate(out)


def datasketch_shingles(text: str, ngram: int = 5) -> list[bytes]:
    words = normalize_text(text).split(" ") if text.strip() else []
    if 0 < len(words) < ngram:
        return [" ".join(words).encode()]
    return [" ".join(words[i : i + ngram]).encode() for i in range(len(words) - ngram + 1)]


def datasketch_signatures(texts: list[str], num_perm: int, scheme: str) -> list:
    from datasketch import MinHash

    return MinHash.bulk([datasketch_shingles(t) for t in texts], num_perm=num_perm, scheme=scheme)


def bench_signatures(data_dir: Path, n_docs: int, labelled) -> None:
    texts = (gutenberg_documents(data_dir) + wikitext_documents(data_dir))[: n_docs * 3 // 4]
    texts += agnews_documents(data_dir)[: n_docs - len(texts)]
    mb = sum(len(t.encode()) for t in texts) / 1e6
    cfg = DedupConfig()
    hasher = MinHasher.from_config(cfg)
    print(f"== signatures: {len(texts)} real documents ({mb:.1f} MB), num_perm={cfg.num_perm}, ngram={cfg.ngram}")
    ours(texts[:50], hasher)  # warm the power tables
    t_ours = best_of(lambda: ours(texts, hasher))
    print(f"ours (normalize+shingle+hash+minhash)   {len(texts) / t_ours:9.0f} docs/CPU-s  {mb / t_ours:6.2f} MB/CPU-s")
    with tempfile.TemporaryDirectory() as tmp:
        shard = Path(tmp) / "shard.arrow"
        write_shard(shard, [(str(i), t) for i, t in enumerate(texts)])
        t_unit = best_of(lambda: keys_unit(cfg, shard, Path(tmp) / "keys.arrow"))
    print(f"ours keys_unit (Arrow in/out, exact keys) {len(texts) / t_unit:7.0f} docs/CPU-s")
    try:
        import datasketch
    except ImportError:
        print("datasketch not installed: pip install datasketch to compare")
        return
    for scheme in ("affine32", "affine64"):
        t_ds = best_of(lambda: datasketch_signatures(texts, cfg.num_perm, scheme))
        shingles = [datasketch_shingles(t) for t in texts]
        from datasketch import MinHash

        t_bulk = best_of(lambda: MinHash.bulk(shingles, num_perm=cfg.num_perm, scheme=scheme))
        print(
            f"datasketch {datasketch.__version__} MinHash.bulk {scheme}: {len(texts) / t_ds:6.0f} docs/CPU-s "
            f"(bulk call alone {len(texts) / t_bulk:6.0f})  ours/datasketch = {t_ds / t_ours:4.1f}x "
            f"(vs bulk call alone {t_bulk / t_ours:4.1f}x)"
        )

    pairs = labelled.variant_pairs()
    left, right, true = (np.array(c) for c in list(zip(*pairs))[:3])
    docs = [d.text for d in labelled.docs]
    sigs = ours(docs, hasher)
    ours_error = np.abs(estimated_jaccard(sigs[left], sigs[right]) - true).mean()
    ds = datasketch_signatures(docs, cfg.num_perm, "affine64")
    ds_error = np.abs(np.array([ds[a].jaccard(ds[b]) for a, b in zip(left, right)]) - true).mean()
    print(
        f"mean |estimated - true Jaccard| over {len(pairs)} labelled pairs (true J {true.min():.2f}-{true.max():.2f}): "
        f"ours {ours_error:.4f}, datasketch {ds_error:.4f}, "
        f"ideal permutations {np.mean(0.8 * np.sqrt(true * (1 - true) / cfg.num_perm)):.4f}"
    )


# --- 2. labelled set ---------------------------------------------------------------------------------------------


def bench_labelled(labelled_sets) -> None:
    print(f"== labelled set at threshold {THRESHOLD} (documents an exact-Jaccard dedup drops = truth)")
    for cfg in (DedupConfig(), DedupConfig(verify=False)):
        for seed, labelled in labelled_sets:
            with tempfile.TemporaryDirectory() as tmp:
                shard = Path(tmp) / "u.arrow"
                write_shard(shard, [(d.doc_id, d.text) for d in labelled.docs])
                keys_unit(cfg, shard, Path(tmp) / "k.arrow")
                dropped = set(dropped_documents(build_clusters(cfg, [Path(tmp) / "k.arrow"])))
            result = evaluate(labelled, dropped, THRESHOLD)
            print(
                f"verify={cfg.verify!s:5} seed={seed}: {len(labelled.docs)} docs, "
                f"{result['true_duplicates']} true duplicates; "
                f"precision {result['precision']:.3f} recall {result['recall']:.3f} "
                f"(false drops {result['false_drops']}, missed {result['missed']})"
            )


# --- 3. scale ------------------------------------------------------------------------------------------------------


def synthetic_key_files(folder: Path, total: int, num_perm: int, seed: int = 0) -> list[Path]:
    """Key files of random signatures; 20% are near copies (J 0.85-1.0) and 5% exact copies of earlier rows."""
    rng = np.random.default_rng(seed)
    schema = keys_schema(MinHasher(num_perm=num_perm))
    paths = []
    for start in range(0, total, CHUNK_ROWS):
        n = min(CHUNK_ROWS, total - start)
        sigs = rng.integers(0, 1 << 32, (n, num_perm), dtype=np.uint32)
        text_keys = rng.integers(0, 1 << 63, (n, 2), dtype=np.uint64)
        role = rng.random(n)
        base = (rng.random(n) * np.arange(n)).astype(np.int64)  # an earlier row of the same file
        near = (role < 0.20) & (np.arange(n) > 0)
        exact = (role >= 0.20) & (role < 0.25) & (np.arange(n) > 0)
        for rows in (np.flatnonzero(near), np.flatnonzero(exact)):
            sigs[rows] = sigs[base[rows]]
        similarity = rng.uniform(0.85, 1.0, n)
        changed = (rng.random((n, num_perm)) > similarity[:, None]) & near[:, None]
        sigs[changed] = rng.integers(0, 1 << 32, int(changed.sum()), dtype=np.uint32)
        text_keys[exact] = text_keys[base[exact]]
        batch = pa.RecordBatch.from_arrays(
            [
                pa.array([f"doc-{start + i:08d}" for i in range(n)], pa.string()),
                pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), n, [None, pa.py_buffer(text_keys.tobytes())]),
                pa.array(np.zeros(n, np.uint64)),
                pa.array(rng.integers(500, 5000, n)),
                pa.array(np.full(n, 400, np.int32)),
                pa.FixedSizeListArray.from_arrays(pa.array(sigs.ravel()), num_perm),
            ],
            schema=schema,
        )
        path = folder / f"keys-{start // CHUNK_ROWS:05d}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
            writer.write_batch(batch)
        paths.append(path)
    return paths


def peak_rss_mb() -> float:
    """Peak resident set of this process (VmHWM). ru_maxrss is not used: Linux carries it over from the parent
    across exec, so a child started by a big parent would report the parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cluster_child(folder: Path, n: int) -> None:
    """Run in a fresh process: cluster the first n synthetic documents and print the figures as JSON."""
    files = sorted(folder.glob("keys-*.arrow"))[: -(-n // CHUNK_ROWS)]
    baseline = peak_rss_mb()
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    table = build_clusters(DedupConfig(), files)
    wall = time.perf_counter() - t0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime - usage0.ru_utime - usage0.ru_stime
    dropped = len(dropped_documents(table))
    print(json.dumps({"n": n, "seconds": wall, "cpu_per_wall": cpu / wall, "peak_rss_mb": peak_rss_mb(),
                      "baseline_rss_mb": baseline, "dropped": dropped}))


def bench_scale(sizes: list[int]) -> None:
    if any(n % CHUNK_ROWS for n in sizes):
        sys.exit(f"--sizes must be multiples of {CHUNK_ROWS:,} (rows per synthetic key file)")
    num_perm = DedupConfig().num_perm
    print(f"== clustering synthetic signatures (num_perm={num_perm}, bands/rows derived), each size in a fresh process")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        synthetic_key_files(Path(tmp), max(sizes), num_perm)
        print(f"(generated {max(sizes):,} signatures in {time.perf_counter() - t0:.1f} s; ~25% planted duplicates)")
        previous = None
        for n in sizes:
            out = subprocess.run(
                [sys.executable, __file__, "--cluster-child", tmp, str(n)], capture_output=True, text=True, check=True
            )
            r = json.loads(out.stdout.strip().splitlines()[-1])
            growth = ""
            if previous:  # memory per extra document between two sizes: constant when memory is linear in N
                slope = (r["peak_rss_mb"] - previous["peak_rss_mb"]) * (1 << 20) / (n - previous["n"])
                growth = f", +{slope:.0f} bytes per extra doc"
            print(
                f"{n:>9,} docs: {r['seconds']:6.1f} s  cpu/wall {r['cpu_per_wall']:.2f}  "
                f"peak RSS {r['peak_rss_mb']:5.0f} MB (after imports {r['baseline_rss_mb']:.0f} MB{growth})  "
                f"dropped {r['dropped']:,}"
            )
            previous = r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=2000, help="real documents for the signature throughput")
    parser.add_argument("--sizes", type=int, nargs="+", default=[250_000, 500_000, 1_000_000])
    parts = ["signatures", "labelled", "scale"]
    parser.add_argument("--parts", nargs="+", choices=parts, default=parts)
    parser.add_argument("--cluster-child", nargs=2, metavar=("DIR", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cluster_child:
        cluster_child(Path(args.cluster_child[0]), int(args.cluster_child[1]))
        return
    if "scale" in args.parts and len(args.parts) == 1:
        bench_scale(sorted(args.sizes))
        return
    data_dir = shared_data_dir()
    if data_dir is None:
        sys.exit("real data not found: set CORPUSFORGE_SHARED_DATA to the shared/data folder")
    labelled_sets = [(seed, make_labelled_set(data_dir, seed=seed)) for seed in range(3)]
    if "signatures" in args.parts:
        bench_signatures(data_dir, args.docs, labelled_sets[0][1])
    if "labelled" in args.parts:
        bench_labelled(labelled_sets)
    if "scale" in args.parts:
        bench_scale(sorted(args.sizes))


if __name__ == "__main__":
    main()
