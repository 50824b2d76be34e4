"""filter + shard: a keep mask (ours now) against a filtered copy of every kept document (before issue 14).

For each extracted part of a finished run, in this process, alternating the two (which goes first flips every
repetition) and reporting the median of --repeat runs:
- old: the filter and shard of git HEAD before issue 14, reimplemented here: every row becomes a `Document`
  (`to_pylist` -> `Document.from_row`), kept ones are copied to `filtered/part-N.arrow` and read back by shard the
  same way, rows go out through `documents_to_table` in batches of 128 (`BatchedWriter`). Same rules
  (`corpus.filters.check`), same `split_of`, same duplicate decision (`corpus.dedup.duplicates`, dict lookup);
- new: `corpus.stages.filter.filter_unit` (keep mask + rejects, only the rule columns to Python) and
  `corpus.stages.shard.shard_unit` (kept, non-duplicate rows taken with Arrow).
Both use the run's config (RUN/config.yaml) and its dedup/clusters.arrow, and write to a temp dir. The documents
tables and the rejected tables (ids, reasons, details and all) of the two must be equal, or the bench fails. Printed: seconds per
stage and new/old, and the bytes the filter writes besides its rejects (the filtered copy against the keep masks).
Peak RSS is not compared: at sample scale (~130 rows a part, about one 128-row write batch) it is dominated by
first-use loading shared by both sides and varies by several MiB between identical passes.

    python bench/stages.py [--run runs/sample] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from corpus.dedup import duplicates
from corpus.document import (
    DOCUMENT_SCHEMA,
    REJECTED_SCHEMA,
    Document,
    documents_to_table,
    rejected_table,
)
from corpus.filters import check
from corpus.shards import BatchedWriter, open_batches, read_table
from corpus.stages.filter import filter_unit, keep_mask_name
from corpus.stages.shard import shard_unit, split_of
from flows.config import load_config


def iter_documents(path: Path):
    for batch in open_batches(path):
        for row in batch.to_pylist():
            yield Document.from_row(row)


def old_filter(cfg, src: Path, out_path: Path, rejected_path: Path) -> None:
    with (
        BatchedWriter(out_path, DOCUMENT_SCHEMA, documents_to_table) as kept,
        BatchedWriter(rejected_path, REJECTED_SCHEMA, rejected_table) as rejected,
    ):
        for doc in iter_documents(src):
            verdict = check(doc, cfg)
            if verdict is None:
                kept.add(doc)
            else:
                rejected.add(doc.to_rejected_row("filter", *verdict))


def old_shard(cfg, clusters_path: Path, src: Path, out_path: Path) -> None:
    clusters = read_table(clusters_path)
    dup = duplicates(clusters)
    dropped = dict(zip(dup["doc_id"].to_pylist(), zip(dup["cluster_id"].to_pylist(), dup["kept_id"].to_pylist())))
    cluster_of = dict(zip(clusters["doc_id"].to_pylist(), clusters["cluster_id"].to_pylist()))
    with BatchedWriter(out_path, DOCUMENT_SCHEMA, documents_to_table) as out:
        for doc in iter_documents(src):
            if doc.id in dropped:
                continue
            doc.cluster_id = cluster_of.get(doc.id, "")
            doc.split = split_of(doc.id, cfg.val_fraction)
            out.add(doc)


def sides(cfg, clusters: Path, part: Path, tmp: Path) -> dict:
    """side -> (filter pass, shard pass, documents file, rejected file, intermediate file) for one part."""
    d = {s: tmp / s for s in ("old", "new")}
    for p in d.values():
        p.mkdir(parents=True, exist_ok=True)
    copy, mask = d["old"] / part.name, d["new"] / keep_mask_name(part)
    return {
        "old": (lambda: old_filter(cfg.filter, part, copy, d["old"] / "rej.arrow"),
                lambda: old_shard(cfg.shard, clusters, copy, d["old"] / "docs.arrow"),
                d["old"] / "docs.arrow", d["old"] / "rej.arrow", copy),
        "new": (lambda: filter_unit(cfg.filter, part, mask, d["new"] / "rej.arrow"),
                lambda: shard_unit(cfg.shard, clusters, part, mask, d["new"] / "docs.arrow"),
                d["new"] / "docs.arrow", d["new"] / "rej.arrow", mask),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path("runs/sample"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if not (args.run / "extracted").is_dir() or not (args.run / "dedup" / "clusters.arrow").exists():
        sys.exit(f"{args.run} is not a finished run: run `corpusforge run` first (or pass --run RUN)")
    cfg = load_config(config_file=args.run / "config.yaml")
    clusters = args.run / "dedup" / "clusters.arrow"
    parts = sorted((args.run / "extracted").glob("part-*.arrow"))
    secs = {(s, st): [] for s in ("old", "new") for st in ("filter", "shard")}  # one median per part
    written = {"old": 0, "new": 0}
    out = {"old": ([], []), "new": ([], [])}  # side -> (documents tables, rejected tables), one per part
    rows = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, part in enumerate(parts):
            work = sides(cfg, clusters, part, Path(tmp) / str(i))
            rows += sum(b.num_rows for b in open_batches(part))
            times = {key: [] for key in secs}
            for rep in range(args.repeat):
                for side in ("old", "new") if rep % 2 == 0 else ("new", "old"):
                    for stage, run in zip(("filter", "shard"), work[side][:2]):
                        t0 = time.perf_counter()
                        run()
                        times[side, stage].append(time.perf_counter() - t0)
            for key, values in times.items():
                secs[key].append(statistics.median(values))
            for side, (_, _, docs, rej, mid) in work.items():
                out[side][0].append(read_table(docs))
                out[side][1].append(read_table(rej))
                written[side] += mid.stat().st_size
    (old_docs, old_rej), (new_docs, new_rej) = ((pa.concat_tables(t) for t in out[s]) for s in ("old", "new"))
    if not old_docs.equals(new_docs):
        sys.exit(f"FAIL: documents differ: old {old_docs.num_rows} rows, new {new_docs.num_rows} rows")
    if not old_rej.equals(new_rej):
        same = old_rej.select(["id", "reason"]).equals(new_rej.select(["id", "reason"]))
        sys.exit(f"FAIL: rejected rows differ ({'same' if same else 'different'} ids and reasons)")
    print(f"{args.run}: {len(parts)} parts, {rows} extracted rows, {new_rej.num_rows} rejected by the filter, "
          f"{new_docs.num_rows} documents after dedup; old and new outputs equal")
    print(f"median of {args.repeat} per part, summed over the parts; {os.cpu_count()} cores")
    print("\n| stage | old s | new s | new/old |\n|---|---|---|---|")
    for stage in ("filter", "shard", "filter + shard"):
        old, new = (sum(sum(secs[side, st]) for st in ("filter", "shard") if st in stage) for side in ("old", "new"))
        print(f"| {stage} | {old:.3f} | {new:.3f} | {new / old:.2f} |")
    print(f"\n| written by the filter besides rejects | bytes |\n|---|---|\n| old: filtered/ copy | {written['old']:,} |"
          f"\n| new: keep masks | {written['new']:,} |")


if __name__ == "__main__":
    main()
