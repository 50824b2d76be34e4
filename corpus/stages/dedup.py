"""Stage `dedup` -> RUN/dedup/: exact and MinHash LSH duplicates over the whole run (DESIGN.md section 6).

Three phases: keys and signatures per extracted part (the rows the filter kept) in parallel; clusters over all of
them at once (`clusters.arrow`: doc_id, cluster_id, kept_id, jaccard, match); then one pass per part that writes
every duplicate to `rejected/dedup/` with the document it duplicated. With `dedup.index_path`, documents of earlier
runs take part as kept candidates, and this run's documents join the index once the stage has committed.
"""

from __future__ import annotations

from pathlib import Path

from corpus.manifest import merge_ledgers
from corpus.shards import read_table, write_table
from corpus.stage import Stage, StageContext, StageResult
from corpus.stages.filter import kept_parts


def plan(ctx: StageContext) -> list[tuple]:
    from corpus.dedup import keys_unit

    keys_dir = ctx.out / "keys"
    keys_dir.mkdir(exist_ok=True)  # a killed attempt of the same fingerprint may have made it
    parts = kept_parts(ctx)
    ctx.notes["parts"] = parts
    ctx.notes["key_files"] = [keys_dir / part.name for part, _ in parts]
    if not ctx.cfg.dedup.enabled:
        return []
    return [(keys_unit, ctx.cfg.dedup, part, key_file, mask) for (part, mask), key_file in zip(parts, ctx.notes["key_files"])]


def run_unit(fn, *args):
    """Phases map different functions; the unit names its own."""
    return fn(*args)


def finish(ctx: StageContext, results: list) -> StageResult:
    from corpus import dedup

    cfg = ctx.cfg.dedup
    index_dir = Path(cfg.index_path) if cfg.index_path else None
    clusters = dedup.build_clusters(cfg, ctx.notes["key_files"] if cfg.enabled else [], index_dir)
    clusters_path = ctx.out / "clusters.arrow"
    write_table(clusters_path, clusters)
    calls = [(dedup.apply_unit, clusters_path, part, ctx.rejected / part.name, mask) for part, mask in ctx.notes["parts"]]
    ledger = merge_ledgers(ctx.map("dedup-apply", run_unit, calls))
    n_clusters = len(set(clusters["cluster_id"].to_pylist()))
    return StageResult(ledger, {"clusters": n_clusters, "index": str(index_dir) if index_dir else None})


def update_index(ctx: StageContext) -> None:
    """Only after the commit: an index must never hold documents of a run that did not finish."""
    from corpus import dedup

    cfg = ctx.cfg.dedup
    if cfg.index_path and cfg.enabled:
        final = ctx.run_dir / "dedup"
        key_files = [final / "keys" / f.name for f in ctx.notes["key_files"]]
        dedup.update_index(cfg, key_files, Path(cfg.index_path), read_table(final / "clusters.arrow"))


DEDUP = Stage(
    name="dedup",
    dirname="dedup",
    ledger_names=("dedup",),
    sections=("dedup",),
    code=("corpus.dedup", "corpus.urls", "corpus.stages.dedup"),
    plan_units=plan,
    run_unit=run_unit,
    finish=finish,
    upstream="filter",
    after_commit=update_index,
)
