"""Stages `pretrain` -> RUN/model/ and `finetune` -> RUN/finetune/: the last tasks of the flow.

Both write into their final folder as they go (checkpoints), so an interrupted run resumes where it stopped; a
finished one that is run again (--force, --from) starts over. Each is one unit: in this worker on one device, or
torchrun (DDP) as a subprocess on several GPUs, its log lines streamed back.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from corpus.manifest import LedgerEntry
from corpus.stage import Stage, StageContext, StageResult

TRAINING_CODE = ("training.config", "training.data", "training.model", "training.checkpoint")


def plan_pretrain(ctx: StageContext) -> list[tuple]:
    ctx.notes["docs"] = ctx.upstream_manifest("tokens").extra["docs"]
    return [(ctx.cfg.pretrain, ctx.run_dir / "tokens", ctx.run_dir / "tokenizer", ctx.out, ctx.log)]


def pretrain_unit(cfg, tokens_dir: Path, tokenizer_dir: Path, out_dir: Path, log: Callable[[str], None]) -> dict:
    from training.launch import pretrain_on_available_devices

    return pretrain_on_available_devices(cfg, tokens_dir, tokenizer_dir, out_dir, log=log, resume=True)


def finish_pretrain(ctx: StageContext, results: list) -> StageResult:
    (metrics,) = results
    docs = ctx.notes["docs"]
    # The model trains on the train split; the val documents are read only to measure it.
    entry = LedgerEntry(
        "pretrain",
        docs["train"] + docs["val"],
        docs["train"],
        Counter({"validation_split": docs["val"]}) if docs["val"] else Counter(),
        seconds=time.time() - ctx.started,
    )
    return StageResult([entry], {"metrics": metrics})


def plan_finetune(ctx: StageContext) -> list[tuple]:
    model = Path(ctx.cfg.finetune.model) if ctx.cfg.finetune.model else ctx.run_dir / "model"
    return [(ctx.cfg.finetune, model, ctx.out)]


def finetune_unit(cfg, model_dir: Path, out_dir: Path) -> dict:
    from training.finetune import finetune

    return finetune(cfg, model_dir, out_dir)


def finish_finetune(ctx: StageContext, results: list) -> StageResult:
    (metrics,) = results
    rows = metrics["rows"]
    dropped = Counter({reason: n for reason, n in rows.items() if reason != "read" and n})
    entry = LedgerEntry("finetune", rows["read"], metrics["n_train"] + metrics["n_eval"], dropped, seconds=time.time() - ctx.started)
    return StageResult([entry], {"metrics": metrics})


PRETRAIN = Stage(
    name="pretrain",
    dirname="model",
    ledger_names=("pretrain",),
    sections=("pretrain",),
    code=(*TRAINING_CODE, "training.pretrain", "training.launch", "training.stages"),
    plan_units=plan_pretrain,
    run_unit=pretrain_unit,
    finish=finish_pretrain,
    upstream="tokens",
    enabled=lambda cfg: cfg.pretrain.enabled,
    in_place=True,
)

FINETUNE = Stage(
    name="finetune",
    dirname="finetune",
    ledger_names=("finetune",),
    sections=("finetune",),
    code=(*TRAINING_CODE, "training.finetune", "training.stages"),
    plan_units=plan_finetune,
    run_unit=finetune_unit,
    finish=finish_finetune,
    upstream="model",
    enabled=lambda cfg: bool(cfg.finetune.data),
    in_place=True,
)
