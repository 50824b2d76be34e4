"""The global dedup step: candidate pairs from exact keys and LSH bands, union-find, one kept document per cluster.

Input: the key files of every unit of the run, in a stable order (that order is "first seen"), and optionally the
persistent index of earlier runs, whose documents come first. Documents are numbered in that order; all work is on
whole numpy arrays of those numbers, so memory is a few hundred bytes per document (band keys dominate) and the
signatures stay in the memory-mapped key files until a pair needs them.

1. Candidate pairs. Within each group of equal keys (exact text key; URL key if `url`; each LSH band's key) every
   member is paired with the group's first member (a star, not all pairs: linear in the group size). Groups made
   only of indexed documents were clustered by an earlier run and are skipped. Grouping is an argsort per key
   array; numpy sorts without holding the GIL, so bands run in a thread pool and keep every core busy.
2. Verification. LSH pairs whose estimated Jaccard is below `threshold` are dropped (`verify`).
3. Union-find (`corpus.dedup.unionfind`) over the remaining pairs gives the clusters.
4. The kept document of each cluster follows `policy`; documents of earlier runs are never dropped: a cluster that
   holds one that was kept then keeps it, and one that only holds an earlier run's duplicates keeps what those
   duplicates were dropped for.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpus.config import DedupConfig
from corpus.dedup.keys import check_params
from corpus.dedup.minhash import MinHasher, band_keys, estimated_jaccard, lsh_params
from corpus.dedup.unionfind import components_of_edges
from corpus.document import CLUSTERS_SCHEMA

CLUSTERS_WITH_MATCH_SCHEMA = pa.schema(list(CLUSTERS_SCHEMA) + [pa.field("match", pa.string())])
# `match` of a listed document: how it relates to the kept document (for drop-all: to the cluster's first document).
MATCH_KEPT, MATCH_EXACT, MATCH_URL, MATCH_NEAR = "kept", "exact", "url", "near"
_MATCH_NAMES = np.array([MATCH_EXACT, MATCH_URL, MATCH_NEAR, MATCH_KEPT], dtype=object)
PAIR_CHUNK = 1 << 14  # candidate pairs compared per step and thread: 2 x 16,384 x num_perm x 4 bytes (16 MiB)


class SignatureStore:
    """Signatures of the documents that take part in pairs, picked out of the key files in a streaming pass.

    Only those rows stay in memory (512 bytes each at 128 permutations), so memory follows the duplicates found,
    not the corpus; the files are read, not memory-mapped, so pages of unrelated rows never count as resident.
    """

    def __init__(self, paths: list[Path], file_rows: list[int], num_perm: int):
        self.paths, self.num_perm = paths, num_perm
        self.file_starts = np.concatenate([[0], np.cumsum(file_rows, dtype=np.int64)])
        self.rows = np.zeros(0, dtype=np.int64)  # sorted document numbers held
        self.values = np.zeros((0, num_perm), dtype=np.uint32)  # (len(rows), num_perm)

    def load(self, rows: np.ndarray) -> None:
        """Make sure the signatures of `rows` are held (one pass over the files that hold missing ones)."""
        rows = sorted_unique(np.asarray(rows, dtype=np.int64))
        missing = rows[~np.isin(rows, self.rows, assume_unique=True)] if len(self.rows) else rows
        if not len(missing):
            return
        picked = np.empty((len(missing), self.num_perm), dtype=np.uint32)  # filled in row order
        filled = 0
        file_of = np.searchsorted(self.file_starts, missing, side="right") - 1
        for f in np.unique(file_of):
            wanted = missing[file_of == f] - self.file_starts[f]
            offset = 0
            with pa.OSFile(str(self.paths[f]), "rb") as source:
                for batch in pa.ipc.open_stream(source):
                    local = wanted[(wanted >= offset) & (wanted < offset + batch.num_rows)] - offset
                    if len(local):
                        matrix = batch.column("signature").flatten().to_numpy().reshape(batch.num_rows, -1)
                        picked[filled : filled + len(local)] = matrix[local]
                        filled += len(local)
                    offset += batch.num_rows
        at = np.searchsorted(self.rows, missing)
        self.rows = np.insert(self.rows, at, missing)
        self.values = np.insert(self.values, at, picked, axis=0) if len(self.values) else picked

    def gather(self, rows: np.ndarray) -> np.ndarray:
        """(len(rows), num_perm) uint32 signatures of loaded document numbers."""
        at = np.searchsorted(self.rows, rows)
        assert (at < len(self.rows)).all() and (self.rows[at] == rows).all(), "signatures gathered before load()"
        return self.values[at]

    def jaccard(self, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        out = np.empty(len(left), dtype=np.float32)
        for lo in range(0, len(left), PAIR_CHUNK):
            hi = lo + PAIR_CHUNK
            out[lo:hi] = estimated_jaccard(self.gather(left[lo:hi]), self.gather(right[lo:hi]))
        return out


@dataclass
class KeySet:
    """Everything the global step needs of every document, indexed ones (0 .. n_old-1) first."""

    doc_ids: pa.ChunkedArray
    text_keys: np.ndarray  # (N, 2) uint64
    url_keys: np.ndarray  # (N,) uint64
    n_chars: np.ndarray  # (N,) int64
    n_shingles: np.ndarray  # (N,) int32
    band_keys: np.ndarray  # (bands, N) uint64
    n_old: int
    represented_by: pa.ChunkedArray  # (n_old,) for indexed documents: the kept id that stands for each (null: none)
    active: np.ndarray  # (N,) bool; False for indexed documents this run decides again (a rerun)
    signatures: SignatureStore

    @property
    def n_docs(self) -> int:
        return len(self.n_chars)


def build_clusters(cfg: DedupConfig, key_files: list[Path], index_dir: Path | None = None) -> pa.Table:
    """Cluster the documents of `key_files` (and of the index at `index_dir`); see the module docstring.

    Returns CLUSTERS_SCHEMA columns plus `match` ("kept", "exact", "url" or "near"), one row per document of this
    run in a cluster of two or more (a cluster may be completed by indexed documents, which are not listed).
    """
    from corpus.dedup.index import index_parts

    if not cfg.enabled:
        return CLUSTERS_WITH_MATCH_SCHEMA.empty_table()
    hasher = MinHasher.from_config(cfg)
    bands, rows = lsh_params(cfg)
    workers = cfg.workers or os.cpu_count() or 1
    old_files = index_parts(Path(index_dir), hasher) if index_dir else []
    keys = load_keys(old_files, [Path(p) for p in key_files], hasher, bands, rows, workers)
    left, right = candidate_pairs(cfg, keys, workers)
    table = assemble_clusters(cfg, keys, left, right)
    metadata = {"bands": str(bands), "rows": str(rows), "threshold": str(cfg.threshold), "policy": cfg.policy}
    return table.replace_schema_metadata({**hasher.params, **metadata})


# --- loading -----------------------------------------------------------------------------------------------------


def load_keys(
    old_files: list[Path], new_files: list[Path], hasher: MinHasher, bands: int, rows: int, workers: int
) -> KeySet:
    for path in old_files + new_files:
        check_params(path, hasher)
    with ThreadPoolExecutor(workers) as pool:
        parts = list(pool.map(lambda p: _read_key_file(p, bands, rows), old_files + new_files))
    old_parts, new_parts = parts[: len(old_files)], parts[len(old_files) :]

    def cat(name, dtype, width=None):
        arrays = [a for part in parts for a in part[name]]
        if arrays:
            return np.concatenate(arrays, axis=-1 if name == "band_keys" else 0)
        return np.zeros((bands, 0) if name == "band_keys" else ((0, width) if width else 0), dtype=dtype)

    doc_ids = pa.chunked_array([a for part in parts for a in part["doc_id"]], pa.string())
    n_old = sum(len(a) for part in old_parts for a in part["doc_id"])
    represented_by = pa.chunked_array([a for part in old_parts for a in part["represented_by"]], pa.string())
    active = np.ones(len(doc_ids), dtype=bool)
    if n_old and len(doc_ids) > n_old:
        new_ids = pa.chunked_array([a for part in new_parts for a in part["doc_id"]], pa.string())
        # A rerun of an indexed run: its own index rows, and rows that were dropped for one of its documents,
        # are what this run decides again, so they take no part.
        new_ids = new_ids.combine_chunks()
        itself = pc.is_in(doc_ids.slice(0, n_old), value_set=new_ids).to_numpy(zero_copy_only=False)
        decided_by_it = pc.is_in(represented_by, value_set=new_ids).to_numpy(zero_copy_only=False)
        active[:n_old] = ~(itself | decided_by_it)
    return KeySet(
        doc_ids=doc_ids,
        text_keys=cat("text_key", np.uint64, 2),
        url_keys=cat("url_key", np.uint64),
        n_chars=cat("n_chars", np.int64),
        n_shingles=cat("n_shingles", np.int32),
        band_keys=cat("band_keys", np.uint64),
        n_old=n_old,
        represented_by=represented_by,
        active=active,
        signatures=SignatureStore(old_files + new_files, [part["rows"] for part in parts], hasher.num_perm),
    )


def _read_key_file(path: Path, bands: int, rows: int) -> dict[str, list]:
    """Stream one key file, keeping copies of the small columns and the band keys (signatures are let go)."""
    names = ("doc_id", "text_key", "url_key", "n_chars", "n_shingles", "band_keys", "represented_by")
    out: dict = {name: [] for name in names}
    out["rows"] = 0
    with pa.OSFile(str(path), "rb") as source:
        for batch in pa.ipc.open_stream(source):
            # Columns of a batch read from a file share one buffer: copy what is kept, or every signature stays.
            out["doc_id"].append(pa.concat_arrays([batch.column("doc_id")]))
            text_key = batch.column("text_key")
            raw = np.frombuffer(text_key.buffers()[1], dtype=np.uint64)[2 * text_key.offset :]
            out["text_key"].append(raw[: 2 * len(text_key)].reshape(-1, 2).copy())
            out["url_key"].append(batch.column("url_key").to_numpy().copy())
            out["n_chars"].append(batch.column("n_chars").to_numpy().copy())
            out["n_shingles"].append(batch.column("n_shingles").to_numpy().copy())
            signature = batch.column("signature")
            matrix = signature.flatten().to_numpy().reshape(len(signature), -1)
            out["band_keys"].append(band_keys(matrix, bands, rows))
            if "represented_by" in batch.schema.names:
                out["represented_by"].append(pa.concat_arrays([batch.column("represented_by")]))
            out["rows"] += batch.num_rows
    return out


# --- candidate pairs ---------------------------------------------------------------------------------------------


def candidate_pairs(cfg: DedupConfig, keys: KeySet, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) document numbers of the pairs to cluster, left < right, each pair once."""
    jobs = []
    if cfg.exact:
        jobs.append(lambda: _exact_pairs(keys))
    if cfg.url:
        jobs.append(lambda: _group_pairs(keys.url_keys, keys.active & (keys.url_keys != 0), keys.n_old))
    near_jobs = []
    if cfg.near:
        banded = keys.active & (keys.n_shingles > 0)
        near_jobs = [lambda values=values: _group_pairs(values, banded, keys.n_old) for values in keys.band_keys]
    with ThreadPoolExecutor(workers) as pool:
        found = list(pool.map(lambda job: job(), jobs + near_jobs))
        sure = _unique_pairs(found[: len(jobs)])
        near = _unique_pairs(found[len(jobs) :])
        keys.signatures.load(np.concatenate([*sure, *near]))
        if cfg.verify:
            near = _similar_pairs(keys.signatures, *near, cfg.threshold, pool)
    return _unique_pairs([sure, near])


def _similar_pairs(store: SignatureStore, left, right, threshold: float, pool) -> tuple[np.ndarray, np.ndarray]:
    """The pairs whose estimated Jaccard reaches the threshold, checked in chunks across the pool."""
    bounds = list(range(0, len(left), PAIR_CHUNK)) + [len(left)]
    chunks = [(left[lo:hi], right[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:])]
    similarity = np.concatenate([np.zeros(0, np.float32), *pool.map(lambda c: store.jaccard(*c), chunks)])
    keep = similarity >= np.float32(threshold)
    return left[keep], right[keep]


def _group_pairs(values: np.ndarray, eligible: np.ndarray, n_old: int) -> tuple[np.ndarray, np.ndarray]:
    """Star pairs inside groups of equal values: (first member of the group, each later member of this run)."""
    members = np.flatnonzero(eligible)
    candidate_values = values[members]
    order = np.argsort(candidate_values)
    sorted_values = candidate_values[order]
    # Most values are unique: keep only the positions inside groups of two or more before any further work.
    repeated = sorted_values[1:] == sorted_values[:-1]
    in_group = np.zeros(len(members), dtype=bool)
    in_group[1:] |= repeated
    in_group[:-1] |= repeated
    at = np.flatnonzero(in_group)
    members, sorted_values = members[order[at]], sorted_values[at]
    if not len(members):
        return members, members
    starts = np.flatnonzero(np.concatenate([[True], sorted_values[1:] != sorted_values[:-1]]))
    group = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(members))))
    first = np.minimum.reduceat(members, starts)
    last = np.maximum.reduceat(members, starts)
    keep = (last >= n_old)[group] & (members >= n_old) & (members != first[group])
    return first[group[keep]], members[keep]


def _exact_pairs(keys: KeySet) -> tuple[np.ndarray, np.ndarray]:
    """Groups of the high half of the text key; a pair also needs the low half equal (a 128-bit match)."""
    left, right = _group_pairs(keys.text_keys[:, 0], keys.active, keys.n_old)
    same = keys.text_keys[left, 1] == keys.text_keys[right, 1]
    return left[same], right[same]


def _unique_pairs(pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if not pairs:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    left = np.concatenate([p[0] for p in pairs]).astype(np.int64)
    right = np.concatenate([p[1] for p in pairs]).astype(np.int64)
    packed = sorted_unique((left << 32) | right)  # document numbers stay below 2^32
    return packed >> 32, packed & 0xFFFFFFFF


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique by sorting (numpy 2.4's hash-based np.unique was 5x slower on millions of int64 here)."""
    values = np.sort(values)
    return values[np.concatenate([[True], values[1:] != values[:-1]])] if len(values) else values


# --- clusters ----------------------------------------------------------------------------------------------------


def assemble_clusters(cfg: DedupConfig, keys: KeySet, left: np.ndarray, right: np.ndarray) -> pa.Table:
    assert keys.n_docs < 1 << 32, "document numbers must fit in 32 bits"
    nodes, labels = components_of_edges(left, right)
    order = np.lexsort((nodes, labels))
    nodes, labels = nodes[order], labels[order]
    # Only clusters with a document of this run matter: the others were settled by the run that indexed them.
    starts = _group_starts(labels)
    has_new = np.maximum.reduceat(nodes, starts) >= keys.n_old if len(nodes) else np.zeros(0, bool)
    live = np.repeat(has_new, np.diff(np.append(starts, len(nodes))))
    nodes, labels = nodes[live], labels[live]
    starts = _group_starts(labels)
    sizes = np.diff(np.append(starts, len(nodes)))
    cluster = np.repeat(np.arange(len(starts)), sizes)

    kept_node, kept_id, reference = _choose_kept(cfg, keys, nodes, cluster, starts)
    ref = reference[cluster]
    match = _match_codes(cfg, keys, nodes, ref)
    if cfg.policy == "drop-all":
        # The first document is its own reference: name its strongest tie to the others instead.
        others = np.where(nodes == ref, len(_MATCH_NAMES), match)
        strongest = np.minimum.reduceat(others, starts) if len(nodes) else others
        match = np.where(nodes == ref, strongest[cluster], match)
    else:
        match = np.where(nodes == kept_node[cluster], 3, match)
    keys.signatures.load(np.concatenate([nodes, ref]))  # a kept document found through the index may be new here
    jaccard = np.ones(len(nodes), dtype=np.float32)
    differ = nodes != ref
    jaccard[differ] = keys.signatures.jaccard(nodes[differ], ref[differ])

    listed = nodes >= keys.n_old
    take = pa.array(nodes[listed])
    # A cluster is named after its kept document, so it keeps its name across runs; with none kept, its first.
    kept_of_listed = kept_id.take(pa.array(cluster[listed]))
    first_of_listed = keys.doc_ids.take(pa.array(labels[listed]))
    return pa.table(
        {
            "doc_id": keys.doc_ids.take(take),
            "cluster_id": pc.if_else(pc.equal(kept_of_listed, ""), first_of_listed, kept_of_listed),
            "kept_id": kept_of_listed,
            "jaccard": pa.array(jaccard[listed], pa.float32()),
            "match": pa.array(_MATCH_NAMES[np.minimum(match[listed], 3)], pa.string()),
        },
        schema=CLUSTERS_WITH_MATCH_SCHEMA,
    )


def _group_starts(sorted_labels: np.ndarray) -> np.ndarray:
    if not len(sorted_labels):
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.concatenate([[True], sorted_labels[1:] != sorted_labels[:-1]]))


def _choose_kept(cfg: DedupConfig, keys: KeySet, nodes, cluster, starts) -> tuple[np.ndarray, pa.Array, np.ndarray]:
    """Per cluster: kept document number (-1: none, or a representative not in the index), kept id ("" for none),
    and reference number.

    The reference is what `jaccard` and `match` compare with: the kept document, or for drop-all the first one.
    """
    n_clusters = len(starts)
    is_old = nodes < keys.n_old
    old_nodes = nodes[is_old]
    own_ids = keys.doc_ids.take(pa.array(old_nodes))
    represented = keys.represented_by.take(pa.array(old_nodes)) if len(old_nodes) else pa.array([], pa.string())
    was_kept = np.zeros(len(nodes), dtype=bool)
    has_rep = np.zeros(len(nodes), dtype=bool)
    if len(old_nodes):
        was_kept[is_old] = pc.fill_null(pc.equal(own_ids, represented), False).to_numpy(zero_copy_only=False)
        has_rep[is_old] = pc.is_valid(represented).to_numpy(zero_copy_only=False) & ~was_kept[is_old]

    if cfg.policy == "drop-all":
        root = nodes[starts]
        return np.full(n_clusters, -1), pa.array([""] * n_clusters, pa.string()), root

    # Earlier runs' kept documents first (tier 0), then this run's (tier 1); earlier duplicates never (tier 2).
    tier = np.where(was_kept, 0, np.where(is_old, 2, 1))
    longer_first = -keys.n_chars[nodes] if cfg.policy == "keep-longest" else np.zeros(len(nodes), np.int64)
    best = np.lexsort((nodes, longer_first, tier, cluster))[starts]
    kept_node = nodes[best]
    kept_id = keys.doc_ids.take(pa.array(kept_node)).combine_chunks() if n_clusters else pa.array([], pa.string())

    # A cluster whose only earlier documents were dropped then keeps what they were dropped for.
    big = len(nodes)
    positions = np.where(has_rep, np.arange(len(nodes)), big)
    first_rep = np.minimum.reduceat(positions, starts) if n_clusters else positions
    external = (tier[best] == 1) & (first_rep < big)
    if external.any():
        rep_of = np.full(len(nodes), None, dtype=object)
        rep_of[is_old] = np.array(represented.to_pylist(), dtype=object)
        rep_ids = rep_of[first_rep[external]]
        old_ids = keys.doc_ids.slice(0, keys.n_old).combine_chunks()
        found = pc.fill_null(pc.index_in(pa.array(rep_ids.tolist(), pa.string()), value_set=old_ids), -1)
        ids = np.array(kept_id.to_pylist(), dtype=object)
        ids[external] = rep_ids
        kept_id = pa.array(ids.tolist(), pa.string())
        kept_node = kept_node.copy()
        kept_node[external] = found.to_numpy(zero_copy_only=False).astype(np.int64)
        # A representative missing from the index (never indexed): compare with the duplicate that led to it.
        reference = kept_node.copy()
        missing = external & (kept_node < 0)
        reference[missing] = nodes[first_rep[missing]]
        return kept_node, kept_id, reference
    return kept_node, kept_id, kept_node


def _match_codes(cfg: DedupConfig, keys: KeySet, nodes: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """0 exact (same normalized text), 1 url (same normalized URL, with `url` on), 2 near, for each node vs ref."""
    exact = (keys.text_keys[nodes] == keys.text_keys[ref]).all(axis=1)
    same_url = np.zeros(len(nodes), dtype=bool)
    if cfg.url:
        same_url = (keys.url_keys[nodes] == keys.url_keys[ref]) & (keys.url_keys[nodes] != 0)
    return np.where(exact, 0, np.where(same_url, 1, 2))
