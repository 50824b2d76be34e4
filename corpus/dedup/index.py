"""A dedup index that outlives a run: later runs are deduplicated against every document indexed before.

Layout of the index folder:
    index.json        {"version", "params" (signature parameters), "parts": [{"file", "rows", "added_at"}]}
    part-NNNNN.arrow  key-file rows (doc id, exact key, URL key, length, signature) plus `represented_by`: the id
                      that stands for the document in the corpus (its own id when it was kept, the kept document's
                      id when it was dropped as a duplicate, null when dropped with no document kept).

Parts are only ever added: each is written under a temporary name and renamed, then `index.json` is replaced the
same way, so a crash leaves the previous index intact (an unlisted part file is ignored and later overwritten).
Old signatures are never recomputed; their band keys are rebuilt from them in each run, so bands and rows may
change between runs while num_perm, ngram, char_ngram and seed may not.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from corpus.atomic import atomic_path, write_json_atomic
from corpus.config import DedupConfig
from corpus.dedup.keys import check_params, keys_schema
from corpus.dedup.minhash import MinHasher

INDEX_MANIFEST = "index.json"
INDEX_VERSION = 1


def index_schema(hasher: MinHasher) -> pa.Schema:
    schema = keys_schema(hasher)
    return schema.append(pa.field("represented_by", pa.string())).with_metadata(schema.metadata)


def index_parts(index_dir: Path, hasher: MinHasher) -> list[Path]:
    """Part files of the index in the order they were added ([] when there is no index yet)."""
    manifest = _read_manifest(Path(index_dir), hasher)
    return [Path(index_dir) / part["file"] for part in manifest["parts"]] if manifest else []


def update_index(cfg: DedupConfig, key_files: list[Path], index_dir: Path, clusters: pa.Table | None = None) -> int:
    """Add this run's documents to the index; returns the rows added.

    `clusters` (what `build_clusters` returned for this run) says which documents were dropped and for what;
    without it every document stands for itself. Documents whose id is already indexed are not added again, so
    rerunning a run does not duplicate it.
    """
    hasher = MinHasher.from_config(cfg)
    index_dir = Path(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    manifest = _read_manifest(index_dir, hasher) or {"version": INDEX_VERSION, "params": hasher.params, "parts": []}
    indexed = _indexed_ids(index_dir, manifest)
    name = f"part-{len(manifest['parts']):05d}.arrow"
    schema = index_schema(hasher)
    rows = 0
    with atomic_path(index_dir / name) as tmp, pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_stream(sink, schema) as writer:
        for path in key_files:
            check_params(Path(path), hasher)
            with pa.OSFile(str(path), "rb") as source:
                for batch in pa.ipc.open_stream(source):
                    if len(indexed):
                        batch = batch.filter(pc.invert(pc.is_in(batch.column("doc_id"), value_set=indexed)))
                    if batch.num_rows:
                        columns = batch.columns + [_represented_by(batch.column("doc_id"), clusters)]
                        writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=schema))
                        rows += batch.num_rows
    if not rows:
        (index_dir / name).unlink()
        return 0
    added_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest["parts"].append({"file": name, "rows": rows, "added_at": added_at})
    write_json_atomic(index_dir / INDEX_MANIFEST, manifest)
    return rows


def _represented_by(doc_ids: pa.Array, clusters: pa.Table | None) -> pa.Array:
    if clusters is None or not clusters.num_rows:
        return doc_ids
    position = pc.index_in(doc_ids, value_set=clusters.column("doc_id").combine_chunks())
    kept = pc.take(clusters.column("kept_id").combine_chunks(), position)
    kept = pc.if_else(pc.equal(kept, ""), pa.scalar(None, pa.string()), kept)  # drop-all: nothing stands for it
    return pc.if_else(pc.is_valid(position), kept, doc_ids)


def _indexed_ids(index_dir: Path, manifest: dict) -> pa.Array:
    ids = []
    for part in manifest["parts"]:
        with pa.OSFile(str(index_dir / part["file"]), "rb") as source:
            ids.extend(batch.column("doc_id") for batch in pa.ipc.open_stream(source))
    return pa.chunked_array(ids, pa.string()).combine_chunks() if ids else pa.array([], pa.string())


def _read_manifest(index_dir: Path, hasher: MinHasher) -> dict | None:
    path = index_dir / INDEX_MANIFEST
    if not path.exists():
        return None
    manifest = json.loads(path.read_text())
    if manifest.get("version") != INDEX_VERSION:
        raise ValueError(f"{path}: index version {manifest.get('version')} is not {INDEX_VERSION}; start a new index")
    differ = {k: (manifest["params"].get(k), v) for k, v in hasher.params.items() if manifest["params"].get(k) != v}
    if differ:
        listing = ", ".join(f"{k}={old} (config: {new})" for k, (old, new) in sorted(differ.items()))
        raise ValueError(
            f"the dedup index at {index_dir} was built with other signature settings: {listing}. Use the same "
            "dedup.num_perm/ngram/char_ngram/seed, or point dedup.index_path at a new folder."
        )
    return manifest
