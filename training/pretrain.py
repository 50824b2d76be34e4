"""Pretraining from token shards: one loop that reads top to bottom, and resumes exactly after a kill.

    for step in start .. max_steps:
        evaluate + checkpoint (every eval_every steps and at the end)
        learning rate = lr_at(step)
        micro-steps with gradient accumulation (bf16 autocast on CUDA)
        clip, AdamW step
        log loss, lr, tokens/s, MFU

`step` counts finished optimizer steps; a checkpoint at step S holds the weights after S updates, the sampler
after S * grad_accum batches and every RNG, so a run resumed from it draws exactly what the killed run would have.

Under torch.distributed (started by `training.launch`) every rank runs this same loop on a DDP-wrapped model:
all ranks draw the same global batch of world_size * batch_size windows from one seeded sampler and each keeps
its own slice (so the data order, and a checkpoint's sampler state, do not depend on the rank), gradients are
averaged by DDP, and rank 0 alone logs and writes checkpoints and metrics.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import platform
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from corpus.atomic import write_json_atomic
from corpus.failpoints import failpoint
from training import checkpoint as ckpt
from training.config import PretrainConfig
from training.data import (
    CausalSampler,
    MaskedSampler,
    Masking,
    TokenShardMeta,
    TokenStream,
    causal_eval_batches,
    document_windows,
    eval_windows,
    load_splits,
    masked_eval_batches,
    read_token_meta,
    shard_paths,
)
from training.model import (
    build_causal_lm,
    build_masked_lm,
    count_params,
    flops_per_token,
    mfu,
    objective_loss,
    param_groups,
    peak_flops,
    shape_of,
)

# Settings a checkpoint must share with the config resuming it: they decide the model, the data order and
# the batches; anything else (lr, max_steps, eval cadence) may change between sessions.
MUST_MATCH_TO_RESUME = ("objective", "preset", "block_size", "batch_size", "grad_accum", "seed", "mask_prob")


def lr_at(step: int, cfg: PretrainConfig) -> float:
    """Linear warmup to cfg.lr over warmup_steps, then cosine decay to min_lr at max_steps (and min_lr after)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / (cfg.warmup_steps + 1)
    if step >= cfg.max_steps:
        return cfg.min_lr
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)  # 0 .. 1
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def bits_per_byte(loss_nats: float, n_tokens: int, n_bytes: int) -> float:
    """Mean token loss in nats -> bits per UTF-8 byte of the text those tokens spell (tokenizer-independent)."""
    return loss_nats * n_tokens / (math.log(2) * n_bytes)


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("pretrain.device=cuda but torch sees no CUDA device; set pretrain.device=auto or cpu")
    return name


def pretrain(
    cfg: PretrainConfig,
    tokens_dir: Path,
    tokenizer_dir: Path,
    out_dir: Path,
    *,
    resume: bool = True,
    log: Callable[[str], None] = print,
) -> dict:
    """Train on tokens_dir/{train,val}; write the model, tokenizer, trainer_state/ and metrics.json to out_dir."""
    from transformers import AutoTokenizer

    started = time.time()
    rank, world = _distributed()
    is_main = rank == 0
    if not is_main:
        log = _silent  # one rank speaks for all
    tokens_dir, tokenizer_dir, out_dir = Path(tokens_dir), Path(tokenizer_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    if not (tokenizer_dir / "tokenizer.json").exists():
        raise FileNotFoundError(f"no tokenizer.json in {tokenizer_dir}; run the tokenizer stage first")
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    train, val, val_source = load_splits(tokens_dir, cfg.block_size + 1, log)
    meta = read_token_meta(shard_paths(tokens_dir / "train")[0])
    vocab_size = max(meta.vocab_size, len(tokenizer))
    data_id = {"tokenizer_sha256": meta.tokenizer_sha256, "train_tokens": len(train), "val_tokens": len(val)}

    if is_main:
        ckpt.remove_leftovers(out_dir)
        if not resume:
            ckpt.clear(out_dir)
    _barrier(world)  # the other ranks look for a checkpoint only after rank 0 has tidied the folder
    checkpoint = ckpt.load_latest(out_dir) if resume else None
    if checkpoint is not None:
        _check_resumable(checkpoint, cfg, data_id, log)
    elif is_main:
        (out_dir / "metrics.json").unlink(missing_ok=True)  # an earlier run's numbers must not pass for this one's

    # Everything random is seeded here; a resumed run overwrites these states from the checkpoint below.
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    model = _load_model(cfg, checkpoint, vocab_size, meta, tokenizer).to(device)
    optimizer = torch.optim.AdamW(
        param_groups(model, cfg.weight_decay), lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8, fused=device == "cuda"
    )
    sampler, eval_set = _data(cfg, train, val, meta, tokenizer, vocab_size, rank, world)
    start, history, timing = 0, [], {"seconds": 0.0, "tokens": 0}
    if checkpoint is not None:
        ckpt.restore_optimizer(checkpoint.path, optimizer)
        sampler.load_state_dict(checkpoint.state["sampler"])
        ckpt.restore_rng(checkpoint)
        start, history, timing = checkpoint.state["step"], checkpoint.state["history"], checkpoint.state["timing"]
        log(f"resuming from {checkpoint.path} at step {start}")
    if is_main:
        ckpt.export_tokenizer(tokenizer_dir, out_dir)

    n_params = count_params(model)
    flops_token = flops_per_token(n_params, *shape_of(model), cfg.block_size)
    if cfg.objective == "masked":  # MaskedLoss projects onto the vocabulary at the masked positions only
        vocab_matmul = 6 * model.config.vocab_size * model.config.hidden_size
        flops_token -= vocab_matmul * (1 - cfg.mask_prob)
    device_name = torch.cuda.get_device_name() if device == "cuda" else f"cpu ({platform.machine()})"
    peak = peak_flops(device_name) if device == "cuda" else None
    if peak is not None:
        peak *= world  # tokens/s counts every rank's tokens
    tokens_per_step = cfg.batch_size * cfg.block_size * cfg.grad_accum * world
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext()
    if device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    loss_module = objective_loss(model, cfg.objective)
    trained = loss_module if world == 1 else _ddp(loss_module, device)
    forward = torch.compile(trained) if cfg.compile else trained
    log(
        f"pretrain {cfg.objective}/{cfg.preset}: {n_params / 1e6:.2f}M params, vocab {vocab_size} "
        f"(padded {model.config.vocab_size}), {len(train):,} train / {len(val):,} val tokens, device {device_name}"
        + (f" x {world} ranks" if world > 1 else "")
    )

    def to_device(batch: dict[str, np.ndarray]) -> dict:
        tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}
        if device == "cuda":
            return {k: t.pin_memory().to(device, non_blocking=True) for k, t in tensors.items()}
        return tensors

    def run_model(batch: dict) -> tuple:
        with autocast:
            return forward(**batch)  # (summed loss, target tokens)

    @torch.no_grad()
    def evaluate() -> float:
        model.eval()
        total, count = 0.0, 0
        for batch in eval_set["batches"]:
            loss_sum, n = run_model(to_device(batch))
            total, count = total + loss_sum.item(), count + int(n.item())
        model.train()
        return total / max(count, 1)

    jsonl = _open_jsonl(out_dir / "metrics.jsonl", history) if is_main else open(os.devnull, "w")  # noqa: SIM115
    board = _tensorboard(out_dir) if is_main else None
    clock = _Throughput(timing)

    def record(entry: dict) -> None:
        history.append(entry)
        jsonl.write(json.dumps(entry) + "\n")
        jsonl.flush()
        if board is not None:
            for key, value in entry.items():
                if key not in ("kind", "step") and value is not None:
                    board.add_scalar(f"{entry['kind']}/{key}", value, entry["step"])

    model.train()
    try:
        for step in range(start, cfg.max_steps + 1):
            # 1. evaluate and checkpoint (before this step's update: step 0 measures the untrained model)
            if (step % cfg.eval_every == 0 or step == cfg.max_steps) and not (checkpoint is not None and step == start):
                clock.pause(device)
                val_loss = evaluate()
                bpb = bits_per_byte(val_loss, eval_set["tokens"], eval_set["bytes"]) if eval_set["bytes"] else None
                record({"kind": "eval", "step": step, "val_loss": val_loss, "val_bits_per_byte": bpb})
                log(f"step {step}/{cfg.max_steps} | val loss {val_loss:.4f}" + (f" | {bpb:.4f} bits/byte" if bpb else ""))
                if step > 0 and is_main:
                    state = {
                        "step": step,
                        "config": cfg.model_dump(),
                        "data": data_id,
                        "sampler": sampler.state_dict(),
                        "history": history,
                        "timing": timing,
                    }
                    path = ckpt.save_checkpoint(out_dir, model, optimizer, state)
                    log(f"step {step}/{cfg.max_steps} | checkpoint {path}")
                    if step < cfg.max_steps:
                        failpoint("pretrain:checkpoint")
                _barrier(world)  # no rank runs ahead of a checkpoint being written
                clock.restart()
            if step == cfg.max_steps:
                break

            # 2. learning rate of this step (a pure function of the step)
            lr = lr_at(step, cfg)
            for group in optimizer.param_groups:
                group["lr"] = lr

            # 3. micro-steps: gradients of grad_accum batches summed, each scaled so the sum is their mean
            loss_total = torch.zeros((), device=device)
            for micro in range(cfg.grad_accum):
                batch = to_device(sampler.next_batch())
                # DDP averages gradients across ranks on the last micro-step only
                with _no_sync(trained, micro < cfg.grad_accum - 1):
                    loss_sum, n = run_model(batch)
                    loss = loss_sum / n.clamp(min=1)
                    (loss / cfg.grad_accum).backward()
                loss_total += loss.detach()

            # 4. clip and step
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            clock.add(tokens_per_step)

            # 5. log (reading the loss waits for the device, so only every log_every steps)
            regular = step % cfg.log_every == 0 or step == cfg.max_steps - 1
            if step == start or regular:  # the first step of a resumed session too, on the terminal only
                if world > 1:  # the mean over ranks: the loss of the global batch
                    torch.distributed.all_reduce(loss_total)
                    loss_total /= world
                train_loss = loss_total.item() / cfg.grad_accum
                rate = clock.lap(discard=step == start)  # the first step of a session warms up (and compiles)
                step_mfu = mfu(rate, flops_token, peak) if rate else None
                if regular:  # the loss history of a resumed run is the one of an unbroken run
                    record({"kind": "train", "step": step, "loss": train_loss, "lr": lr, "tokens_per_second": rate, "mfu": step_mfu})
                log(
                    f"step {step}/{cfg.max_steps} | loss {train_loss:.4f} | lr {lr:.2e}"
                    + (f" | {rate:,.0f} tok/s" if rate else "")
                    + (f" | mfu {step_mfu:.1%}" if step_mfu is not None else "")
                )
    finally:
        jsonl.close()
        if board is not None:
            board.close()

    evals = [e for e in history if e["kind"] == "eval"]
    tokens_per_second = timing["tokens"] / timing["seconds"] if timing["seconds"] > 0 else None
    metrics = {
        "steps": max(start, cfg.max_steps),
        "initial_val_loss": evals[0]["val_loss"] if evals else None,
        "final_val_loss": evals[-1]["val_loss"] if evals else None,
        "val_bits_per_byte": evals[-1]["val_bits_per_byte"] if evals else None,
        "tokens_per_second": tokens_per_second,
        "mfu": mfu(tokens_per_second, flops_token, peak) if tokens_per_second else None,
        "objective": cfg.objective,
        "preset": cfg.preset,
        "n_params": n_params,
        "vocab_size": vocab_size,
        "padded_vocab_size": model.config.vocab_size,
        "device": device,
        "device_name": device_name,
        "tokens_seen": max(start, cfg.max_steps) * tokens_per_step,
        "train_tokens": len(train),
        "val_tokens": len(val),
        "val_source": val_source,
        "ln_vocab": math.log(vocab_size),
        "train_loss": [[e["step"], e["loss"]] for e in history if e["kind"] == "train"],
        "val_loss": [[e["step"], e["val_loss"]] for e in evals],
        "resumed_from_step": start if checkpoint is not None else None,
        "world_size": world,
        "seconds": round(time.time() - started, 3),
    }
    if is_main:
        write_json_atomic(out_dir / "metrics.json", metrics)
    log(
        f"pretrain done: val loss {metrics['initial_val_loss']:.4f} -> {metrics['final_val_loss']:.4f}"
        + (f", {metrics['val_bits_per_byte']:.4f} bits/byte" if metrics["val_bits_per_byte"] else "")
        + f"; model in {out_dir}"
    )
    return metrics


def _check_resumable(checkpoint: ckpt.Checkpoint, cfg: PretrainConfig, data_id: dict, log: Callable[[str], None]) -> None:
    saved = checkpoint.state["config"]
    differ = {k: (saved.get(k), getattr(cfg, k)) for k in MUST_MATCH_TO_RESUME if saved.get(k) != getattr(cfg, k)}
    if checkpoint.state["data"] != data_id:
        differ["data"] = (checkpoint.state["data"], data_id)
    if differ:
        raise ValueError(
            f"{checkpoint.path} was trained with other settings or data ({differ}: saved, now); "
            "pass resume=False or use another output directory to start over"
        )
    changed = {k: (v, getattr(cfg, k)) for k, v in saved.items() if v != getattr(cfg, k, v)}
    if changed:
        log(f"resuming with changed settings (saved, now): {changed}")


def _load_model(cfg: PretrainConfig, checkpoint: ckpt.Checkpoint | None, vocab_size: int, meta: TokenShardMeta, tokenizer):
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM

    if checkpoint is not None:
        auto = AutoModelForCausalLM if cfg.objective == "causal" else AutoModelForMaskedLM
        return auto.from_pretrained(str(checkpoint.model_dir), attn_implementation="sdpa", dtype=torch.float32)
    if cfg.objective == "causal":
        return build_causal_lm(cfg.preset, vocab_size, cfg.block_size, meta.eos_id)
    return build_masked_lm(cfg.preset, vocab_size, cfg.block_size, meta.eos_id, _masking(cfg, tokenizer, vocab_size).pad_id)


def _masking(cfg: PretrainConfig, tokenizer, vocab_size: int) -> Masking:
    if tokenizer.mask_token_id is None or tokenizer.pad_token_id is None:
        raise ValueError(
            "pretrain.objective=masked needs a tokenizer with <mask> and <pad> special tokens "
            f"(mask={tokenizer.mask_token_id}, pad={tokenizer.pad_token_id}); "
            "retrain the tokenizer with them or use objective=causal"
        )
    specials = tuple(tokenizer.all_special_ids)
    return Masking(cfg.mask_prob, tokenizer.mask_token_id, tokenizer.pad_token_id, vocab_size, specials)


def _data(
    cfg: PretrainConfig,
    train: TokenStream,
    val: TokenStream,
    meta: TokenShardMeta,
    tokenizer,
    vocab_size: int,
    rank: int = 0,
    world: int = 1,
):
    """The training sampler and the fixed evaluation set (batches, target tokens, UTF-8 bytes they spell)."""
    n_eval = cfg.eval_batches * cfg.batch_size
    global_batch = cfg.batch_size * world
    if cfg.objective == "causal":
        sampler = _slice_for_rank(CausalSampler(train, cfg.block_size, global_batch, cfg.seed), rank, world)
        windows = eval_windows(val, cfg.block_size, n_eval)  # (n_eval, T+1)
        # Bytes of the predicted tokens, decoded once: bits per byte compares models across tokenizers.
        n_bytes = sum(
            len(tokenizer.decode(row[1:].tolist(), skip_special_tokens=True, clean_up_tokenization_spaces=False).encode())
            for row in windows
        )
        batches = causal_eval_batches(windows, cfg.batch_size)
        return sampler, {"batches": batches, "tokens": windows[:, 1:].size, "bytes": n_bytes}
    masking = _masking(cfg, tokenizer, vocab_size)
    train_windows = document_windows(train, meta.eos_id, cfg.block_size)
    sampler = _slice_for_rank(MaskedSampler(train, train_windows, cfg.block_size, global_batch, masking, cfg.seed), rank, world)
    val_windows = document_windows(val, meta.eos_id, cfg.block_size)
    batches = masked_eval_batches(val, val_windows, cfg.block_size, cfg.batch_size, cfg.eval_batches, masking, cfg.seed + 1)
    # A masked LM's loss is not a code length of the text, so it has no bits per byte.
    return sampler, {"batches": batches, "tokens": 0, "bytes": 0}


# --- several processes (torch.distributed, started by training.launch) ------------------------------------------


def _distributed() -> tuple[int, int]:
    """(rank, world size): (0, 1) unless a process group is initialized."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _silent(_: str) -> None:
    pass


def _barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()


def _ddp(model, device: str):
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[torch.cuda.current_device()] if device == "cuda" else None)


def _no_sync(trained, skip_sync: bool):
    """DDP's no_sync() on micro-steps whose gradients are only accumulated; a no-op without DDP."""
    from torch.nn.parallel import DistributedDataParallel

    return trained.no_sync() if skip_sync and isinstance(trained, DistributedDataParallel) else contextlib.nullcontext()


class _RankSlice:
    """A sampler drawing world * B rows per batch, seen by one rank as its own B rows.

    Every rank runs the same seeded sampler, so all draw the same global batches (those of one process with
    batch world * B) and the state rank 0 checkpoints is every rank's state.
    """

    def __init__(self, sampler, rank: int, world: int):
        self.sampler, self.rank, self.world = sampler, rank, world

    def next_batch(self) -> dict[str, np.ndarray]:
        batch = self.sampler.next_batch()
        rows = len(next(iter(batch.values()))) // self.world
        return {k: v[self.rank * rows : (self.rank + 1) * rows] for k, v in batch.items()}

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)


def _slice_for_rank(sampler, rank: int, world: int):
    return sampler if world == 1 else _RankSlice(sampler, rank, world)


class _Throughput:
    """Training seconds and tokens, without evals, checkpoints or each session's first (warm-up) step."""

    def __init__(self, totals: dict):
        self.totals = totals  # {"seconds", "tokens"}, carried in the checkpoint across sessions
        self.restart()

    def restart(self) -> None:
        self.mark, self.pending = time.perf_counter(), 0

    def add(self, tokens: int) -> None:
        self.pending += tokens

    def lap(self, *, discard: bool = False) -> float | None:
        """Close the interval since the last mark (the caller has just waited for the device); its tokens/s."""
        elapsed = time.perf_counter() - self.mark
        rate = self.pending / elapsed if self.pending and elapsed > 0 else None
        if not discard:
            self.totals["seconds"] += elapsed
            self.totals["tokens"] += self.pending
        self.restart()
        return None if discard else rate

    def pause(self, device: str) -> None:
        if self.pending:
            if device == "cuda":
                torch.cuda.synchronize()
            self.lap()


def _open_jsonl(path: Path, history: list[dict]):
    """metrics.jsonl restarted from the checkpoint's history: lines of a killed session's lost steps go away."""
    f = open(path, "w")  # noqa: SIM115 (closed by the training loop's finally)
    f.writelines(json.dumps(entry) + "\n" for entry in history)
    f.flush()
    return f


def _tensorboard(out_dir: Path):
    if importlib.util.find_spec("tensorboard") is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out_dir / "tensorboard"))
