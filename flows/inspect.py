"""`corpusforge inspect`: what is in a run directory or a shard, as a dict (for --json) and as rich text."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from corpus.manifest import MANIFEST, read_manifest, verify
from corpus.shards import open_batches, read_schema

RUN_DIRS = ["extracted", "filter", "dedup", "documents", "tokenizer", "tokens", "model", "finetune"]


def inspect_target(target: Path, sample: int = 3, why: str | None = None, verify: bool = False) -> dict:
    target = Path(target)
    if target.is_file():
        return _inspect_shard(target, sample)
    if not (target / MANIFEST).is_file():
        raise FileNotFoundError(f"{target} is not a run directory (no {MANIFEST}) nor an Arrow shard")
    return _inspect_run(target, sample, why, verify)


def _inspect_shard(path: Path, sample: int) -> dict:
    schema = read_schema(path)
    rows, shown = 0, []
    for batch in open_batches(path):
        rows += batch.num_rows
        if len(shown) < sample:
            shown.extend(_preview(r) for r in batch.slice(0, sample - len(shown)).to_pylist())
    return {"shard": str(path), "schema": str(schema), "metadata": _metadata(schema), "rows": rows, "sample": shown}


def _metadata(schema) -> dict:
    return {k.decode(): v.decode() for k, v in (schema.metadata or {}).items()}


def _inspect_run(run: Path, sample: int, why: str | None, do_verify: bool) -> dict:
    ledger = json.loads((run / MANIFEST).read_text())
    dirs = {}
    for name in RUN_DIRS:
        manifest = read_manifest(run / name)
        if manifest is None:
            continue
        arrow = [f for f in manifest.files if f.path.endswith(".arrow")]
        dirs[name] = {
            "files": len(manifest.files),
            "rows": sum(f.rows for f in arrow),
            "bytes": sum(f.bytes for f in manifest.files),
            "schema": manifest.schema,
            "fingerprint": manifest.fingerprint,
        }
        if manifest.extra:
            dirs[name]["extra"] = manifest.extra
    drops = {}
    for stage in ledger.get("stages", []):
        for reason, n in stage.get("dropped", {}).items():
            drops[f"{stage['name']}/{reason}"] = n
    result = {
        "schemas": _schemas(run),
        "run": str(run),
        "stages": ledger.get("stages", []),
        "errors": ledger.get("errors", []),
        "outputs": ledger.get("outputs", {}),
        "directories": dirs,
        "drops": drops,
        "sample": _sample_documents(run, sample),
    }
    if why:
        result["why"] = explain(run, why)
    if do_verify:
        problems = [p for name in RUN_DIRS if (run / name / MANIFEST).is_file() for p in verify(run / name)]
        result["verify"] = {"ok": not problems, "problems": problems}
    return result


def _schemas(run: Path) -> dict:
    """Column -> type of the first shard of documents/ and tokens/, with nested types shown short."""
    out = {}
    for name, pattern in (("documents", "documents/*.arrow"), ("tokens", "tokens/train/*.arrow"), ("rejected", "rejected/*/*.arrow")):
        first = next(iter(sorted(run.glob(pattern))), None)
        if first is not None:
            out[name] = {f.name: _short_type(f.type) for f in read_schema(first)}
    return out


def _short_type(t) -> str:
    if pa.types.is_struct(t):
        return f"struct<{t.num_fields} fields>" if t.num_fields > 3 else str(t)
    return str(t)


def _sample_documents(run: Path, n: int) -> list[dict]:
    shown: list[dict] = []
    for path in sorted((run / "documents").glob("shard-*.arrow")):
        for batch in open_batches(path):
            shown.extend(_preview(r) for r in batch.slice(0, n - len(shown)).to_pylist())
            if len(shown) >= n:
                return shown
    return shown


def _preview(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if key in ("text", "terms") and isinstance(value, str):
            out[key] = value[:300] + ("…" if len(value) > 300 else "")
        elif key == "keyphrases" and value is not None:
            out[key] = [f"{k['phrase']} ({k['score']:.3f})" for k in value[:10]]
        elif key == "input_ids" and value is not None:
            out[key] = value[:32]
            out["n_tokens"] = len(value)
        elif key == "signals" and value is not None:
            out[key] = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in value.items()}
        else:
            out[key] = value
    return out


def explain(run: Path, doc_id: str) -> dict:
    """Where did this document end up: a documents shard, or which stage dropped it and why."""
    for path in sorted((run / "documents").glob("*.arrow")):
        for batch in open_batches(path):
            hit = batch.filter(pc.equal(batch.column("id"), doc_id))
            if hit.num_rows:
                row = hit.to_pylist()[0]
                return {"id": doc_id, "status": "kept", "shard": str(path), "split": row["split"], "cluster_id": row["cluster_id"]}
    for path in sorted((run / "rejected").rglob("*.arrow")):
        for batch in open_batches(path):
            hit = batch.filter(pc.equal(batch.column("id"), doc_id))
            if hit.num_rows:
                row = hit.to_pylist()[0]
                return {
                    "id": doc_id,
                    "status": "rejected",
                    "stage": row["stage"],
                    "reason": row["reason"],
                    "detail": row["detail"],
                    "kept_id": row["kept_id"],
                    "url": row["url"],
                    "file": str(path),
                }
    return {"id": doc_id, "status": "unknown", "detail": "not in documents/ nor rejected/ of this run"}


def render(result: dict, console) -> None:
    from rich.table import Table

    if "shard" in result:
        console.print(f"[bold]{result['shard']}[/bold]: {result['rows']} rows")
        console.print(result["schema"])
        if result["metadata"]:
            console.print(f"metadata: {result['metadata']}")
        for row in result["sample"]:
            console.print(row)
        return
    console.print(f"[bold]run[/bold] {result['run']}")
    table = Table(title="ledger", title_justify="left")
    for col in ("stage", "in", "out", "dropped", "seconds"):
        table.add_column(col)
    for s in result["stages"]:
        table.add_row(s["name"], str(s["in"]), str(s["out"]), str(sum(s["dropped"].values())), f"{s['seconds']:.1f}")
    console.print(table)
    if result["drops"]:
        drops = Table(title="drops by reason", title_justify="left")
        drops.add_column("stage/reason")
        drops.add_column("documents", justify="right")
        for reason, n in sorted(result["drops"].items(), key=lambda kv: -kv[1]):
            drops.add_row(reason, str(n))
        console.print(drops)
    for err in result["errors"]:
        console.print(f"[yellow]damaged input[/yellow] {err}")
    dirs = Table(title="directories", title_justify="left")
    for col in ("dir", "files", "rows", "MB"):
        dirs.add_column(col)
    for name, d in result["directories"].items():
        dirs.add_row(name, str(d["files"]), str(d["rows"]), f"{d['bytes'] / 1e6:.1f}")
    console.print(dirs)
    for name, fields in result.get("schemas", {}).items():
        console.print(f"[bold]{name} schema[/bold]  " + ", ".join(f"{f}: {t}" for f, t in fields.items()))
    tokens = result["directories"].get("tokens")
    if tokens and tokens.get("extra"):
        console.print(f"[bold]tokens[/bold] {tokens['extra']}")
    for row in result["sample"]:
        console.print(f"\n[bold]{row.get('title') or row.get('url')}[/bold]  [dim]{row['id']}  {row['lang']}  {row['split']}[/dim]")
        console.print(f"  {row['url']}")
        console.print(f"  {row['text'][:300]!r}")
        console.print(f"  keyphrases: {', '.join(row.get('keyphrases') or [])}")
    if "why" in result:
        console.print(f"\n[bold]why {result['why']['id']}[/bold]: {result['why']}")
    if "verify" in result:
        v = result["verify"]
        console.print("\n[green]verify: every sha256 matches[/green]" if v["ok"] else f"\n[red]verify failed[/red]: {v['problems']}")
