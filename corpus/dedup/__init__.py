"""Exact and MinHash LSH deduplication over a whole run, explainable and incremental (DESIGN.md section 6).

Three steps, each a plain function the flow runs as tasks:

    keys_unit(cfg, shard, keys_path, keep_mask)      per unit, in parallel: exact key, URL key, length, signature
    build_clusters(cfg, key_files, index_dir=None)   once: candidate pairs, union-find, kept document per cluster
    apply_unit(clusters_path, shard, rejected, keep)  per unit: duplicates become rejected rows naming the kept one

and `update_index(cfg, key_files, index_dir, clusters)` adds a run to a persistent index that later runs
deduplicate against. DedupConfig's docstring derives the LSH bands and rows; `s_curve` and `format_s_curve` show
the probability of a pair being caught at each Jaccard similarity.
"""

from corpus.dedup.apply import apply_unit, dropped_documents, duplicates
from corpus.dedup.clusters import CLUSTERS_WITH_MATCH_SCHEMA, build_clusters
from corpus.dedup.exact import normalize_text
from corpus.dedup.index import update_index
from corpus.dedup.keys import keys_schema, keys_unit
from corpus.dedup.minhash import MinHasher, candidate_probability, format_s_curve, lsh_params, s_curve, threshold_for

__all__ = [
    "CLUSTERS_WITH_MATCH_SCHEMA",
    "MinHasher",
    "apply_unit",
    "build_clusters",
    "candidate_probability",
    "dropped_documents",
    "duplicates",
    "format_s_curve",
    "keys_schema",
    "keys_unit",
    "lsh_params",
    "normalize_text",
    "s_curve",
    "threshold_for",
    "update_index",
]
