"""Stages `tokenizer` -> RUN/tokenizer/ and `tokens` -> RUN/tokens/{train,val}/.

`tokenizer` trains byte-level BPE on a reproducible sample of the document shards (one unit: training is one
process); its ledger says what became of each document (sampled, held out as val, not drawn, over the byte budget,
empty). `tokens` encodes each document shard into a train and a val token shard; a document that encodes to no
token is counted, not written.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from corpus.manifest import LedgerEntry
from corpus.stage import Stage, StageContext, StageResult
from tokenizer.config import TokenizerConfig

SAMPLED = "sampled"


def lm_column(cfg) -> str:
    """The text view the tokenizer and model see (`lm_text`)."""
    return "text" if cfg.lm_text == "natural" else "terms"


def plan_tokenizer(ctx: StageContext) -> list[tuple]:
    ctx.notes["documents"] = ctx.upstream_manifest("documents").rows
    return [(ctx.cfg.tokenizer, ctx.upstream_files("documents"), lm_column(ctx.cfg), ctx.out)]


def tokenizer_unit(cfg: TokenizerConfig, shards: list[Path], column: str, out_dir: Path) -> dict:
    from tokenizer.train import sample_texts, train_tokenizer

    counts: Counter = Counter()
    info = train_tokenizer(sample_texts(shards, cfg, column=column, counts=counts), cfg, out_dir)
    return {"tokenizer": info, "documents": dict(counts)}


def finish_tokenizer(ctx: StageContext, results: list) -> StageResult:
    (result,) = results
    counts = Counter(result["documents"])
    entry = LedgerEntry("tokenizer", ctx.notes["documents"], counts.pop(SAMPLED, 0), +counts, seconds=_seconds(ctx))
    return StageResult([entry], {"tokenizer": result["tokenizer"]})


def plan_tokens(ctx: StageContext) -> list[tuple]:
    ctx.notes["documents"] = ctx.upstream_manifest("documents").rows
    return [(ctx.run_dir / "tokenizer", shard, ctx.out, ctx.cfg.tokens, lm_column(ctx.cfg)) for shard in ctx.upstream_files("documents")]


def tokens_unit(tokenizer_dir: Path, shard: Path, out_dir: Path, cfg, column: str) -> dict:
    from tokenizer.encode import encode_shard

    return encode_shard(tokenizer_dir, shard, out_dir, cfg, column)


def finish_tokens(ctx: StageContext, results: list) -> StageResult:
    docs = {split: sum(r["docs"][split] for r in results) for split in ("train", "val")}
    tokens = {split: sum(r["tokens"][split] for r in results) for split in ("train", "val")}
    empty = sum(r["empty"] for r in results)
    dropped = Counter({"no_tokens": empty}) if empty else Counter()
    entry = LedgerEntry("tokens", ctx.notes["documents"], docs["train"] + docs["val"], dropped, seconds=_seconds(ctx))
    return StageResult([entry], {"docs": docs, "tokens": tokens})


def _seconds(ctx: StageContext) -> float:
    return time.time() - ctx.started


TOKENIZER = Stage(
    name="tokenizer",
    dirname="tokenizer",
    ledger_names=("tokenizer",),
    sections=("tokenizer", "lm_text"),
    code=("tokenizer.train", "tokenizer.stages"),
    plan_units=plan_tokenizer,
    run_unit=tokenizer_unit,
    finish=finish_tokenizer,
    upstream="documents",
    follows_upstream=lambda cfg: cfg.tokenizer.retrain,
)

TOKENS = Stage(
    name="tokens",
    dirname="tokens",
    ledger_names=("tokens",),
    sections=("tokens", "lm_text"),
    code=("tokenizer.encode", "tokenizer.stages", "corpus.document"),
    plan_units=plan_tokens,
    run_unit=tokens_unit,
    finish=finish_tokens,
    upstream="tokenizer",
    reads_also=("documents",),  # a kept tokenizer still encodes new documents
)
