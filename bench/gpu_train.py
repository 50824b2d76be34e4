"""Pretraining throughput: GPT-2 124M, T=1024, bf16, torch.compile, on token shards of ../shared/data text.

One call, at most about 8 minutes on one H200 (targets from issue 7: >= 400K tokens/s, >= 40% MFU, data wait
<= 2% of step time). It measures `training.pretrain.pretrain` itself, then two things around it in the same run:

    ours      tokens/s and MFU as pretrain reports them (its warm-up/compile step and evals excluded)
    data      the sampler and the host-to-device copy of one micro-batch, timed alone with the device idle:
              what a loop without prefetch waits per micro-step, as a fraction of the step time
    raw       the same transformers model, fused AdamW, bf16 autocast and compile stepping on one batch that
              is already on the device, no sampler, no logging: ours / raw is what our loop keeps of it

Token shards are written the way the pipeline lays them out, from the English books and WikiText-2 under
../shared/data, tokenized with GPT-2's own tokenizer.json (faster than training one; 50,257 ids fit uint16).
The windows repeat over 200 steps (about 0.9M tokens of text): this measures speed, not learning.

    python bench/gpu_train.py                                   # the GPU run (cuda, small, 200 steps, T=1024, B=32)
    python bench/gpu_train.py --device cpu --preset tiny --steps 5 --block-size 64 --batch-size 4 --raw-steps 3

The last line printed is the figures as JSON; `--json PATH` also writes them to a file, first right after
pretraining (raw figures still null) and again after the raw loop, so a run killed in the raw loop keeps its main
figures. Log lines carry the seconds since start, so the compile time shows (step 0's eval and first step).
`bench/gpu_check.sh` runs this on the device machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and a bench script named like a package would shadow it.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402

from corpus.document import tokens_schema  # noqa: E402
from corpus.shards import write_stream  # noqa: E402

SHARED_DATA = Path(os.environ.get("CORPUSFORGE_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
TEXTS = ["english-text/gutenberg/pg1342-pride-and-prejudice.txt", "english-text/gutenberg/pg2701-moby-dick.txt",
         "english-text/gutenberg/pg3261-news-from-nowhere.txt", "english-text/wikitext-2/valid.txt"]  # fmt: skip
GPT2_TOKENIZER = "tokenizers/gpt2/hf-format"
DOC_CHARS = 3000  # paragraphs are grouped into documents of about this many characters
VAL_EVERY = 20  # every 20th document goes to val


def documents(data_dir: Path, max_chars: int) -> list[str]:
    """The texts cut into documents of whole paragraphs; at most max_chars in all (0 = everything)."""
    docs, total = [], 0
    for name in TEXTS:
        text = (data_dir / name).read_text(encoding="utf-8-sig").replace("\r\n", "\n")
        current = ""
        for paragraph in text.split("\n\n"):
            current += paragraph.strip() + "\n\n"
            if len(current) >= DOC_CHARS:
                docs.append(current.strip())
                total += len(current)
                current = ""
                if max_chars and total >= max_chars:
                    return docs
    return docs


def write_token_shards(docs: list[str], tokenizer_dir: Path, tokens_dir: Path) -> dict:
    """tokens/{train,val}/shard-00000.arrow as the tokens stage writes them (schema metadata included)."""
    from tokenizers import Tokenizer

    tokenizer_json = tokenizer_dir / "tokenizer.json"
    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    eos = tokenizer.token_to_id("<|endoftext|>")
    schema = tokens_schema(
        tokenizer.get_vocab_size(), tokenizer_sha256=hashlib.sha256(tokenizer_json.read_bytes()).hexdigest(), eos_id=eos
    )
    ids = [encoding.ids + [eos] for encoding in tokenizer.encode_batch(docs)]
    splits = {"val": ids[::VAL_EVERY], "train": [x for i, x in enumerate(ids) if i % VAL_EVERY]}
    for split, rows in splits.items():
        (tokens_dir / split).mkdir(parents=True, exist_ok=True)
        doc_ids = pa.array([f"{split}-{i}" for i in range(len(rows))])
        batch = pa.record_batch([doc_ids, pa.array(rows, type=schema.field("input_ids").type)], schema=schema)
        write_stream(tokens_dir / split / "shard-00000.arrow", schema, [batch])
    return {"eos_id": eos, **{split: sum(len(r) for r in rows) for split, rows in splits.items()}}


def to_device(batch: dict[str, np.ndarray], device: str) -> dict:
    """Exactly what pretrain does with a batch: numpy -> tensors -> pinned -> non-blocking copy."""
    import torch

    tensors = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in batch.items()}
    if device == "cuda":
        return {k: t.pin_memory().to(device, non_blocking=True) for k, t in tensors.items()}
    return tensors


def data_seconds_per_batch(tokens_dir: Path, block_size: int, batch_size: int, device: str, n: int = 50) -> float:
    """Sampler + host-to-device of one micro-batch, the device otherwise idle (synchronized around each)."""
    import torch

    from training.data import CausalSampler, load_splits

    train, _, _ = load_splits(tokens_dir, block_size + 1, lambda _: None)
    sampler = CausalSampler(train, block_size, batch_size, seed=0)
    to_device(sampler.next_batch(), device)  # the first pinned allocation is not the steady state
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    sync()
    start = time.perf_counter()
    for _ in range(n):
        to_device(sampler.next_batch(), device)
        sync()
    return (time.perf_counter() - start) / n


def raw_tokens_per_second(
    preset: str, vocab_size: int, eos_id: int, block_size: int, batch_size: int, device: str, compile_model: bool, steps: int
) -> float:
    """The model stepping on one fixed on-device batch: no sampler, no schedule, no logging."""
    import contextlib

    import torch

    from training.model import build_causal_lm, lm_loss, param_groups

    torch.manual_seed(0)
    model = build_causal_lm(preset, vocab_size, block_size, eos_id).to(device)
    optimizer = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-4, fused=device == "cuda")
    forward = torch.compile(model) if compile_model else model
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext()
    ids = torch.randint(0, vocab_size, (batch_size, block_size + 1), device=device)  # (B, T+1)
    inputs, labels = ids[:, :-1], ids[:, 1:]
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)

    def step() -> None:
        with autocast:
            logits = forward(input_ids=inputs).logits  # (B, T, V)
        loss_sum, n = lm_loss(logits, labels)
        (loss_sum / n).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(3):  # compile and warm up
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps * batch_size * block_size / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--preset", default="small", choices=["tiny", "small", "medium"])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--block-size", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None, help="torch.compile (default: CUDA only)")
    parser.add_argument("--raw-steps", type=int, default=50, help="steps of the raw comparison loop (0 skips it)")
    parser.add_argument("--text-chars", type=int, default=0, help="use at most this many characters of text (0 = all)")
    parser.add_argument("--data", type=Path, default=SHARED_DATA, help="the shared data folder")
    parser.add_argument("--work", type=Path, default=None, help="folder for shards and the model (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file (after each phase)")
    parser.add_argument(
        "--raw-budget", type=float, default=0.0,
        help="skip the raw loop when more than this many seconds have passed since start (0 = never skip)",
    )  # fmt: skip
    args = parser.parse_args(argv)

    import torch

    from training.config import PretrainConfig
    from training.model import PRESETS, flops_per_token, peak_flops
    from training.pretrain import pretrain

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here; run with --device cpu (and a tiny size) to smoke-test")
    _tensorboard_or_off()
    compile_model = args.device == "cuda" if args.compile is None else args.compile
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu-train-"))
    started = time.perf_counter()
    _CLOCK["start"] = started
    print(f"versions: {json.dumps(_versions())}", flush=True)
    try:
        tokenizer_dir = args.data / GPT2_TOKENIZER
        t0 = time.perf_counter()
        n_tokens = write_token_shards(documents(args.data, args.text_chars), tokenizer_dir, work / "tokens")
        seconds = time.perf_counter() - t0
        print(f"token shards: {n_tokens['train']:,} train / {n_tokens['val']:,} val tokens in {seconds:.1f} s", flush=True)

        cfg = PretrainConfig(
            preset=args.preset,
            max_steps=args.steps,
            batch_size=args.batch_size,
            block_size=args.block_size,
            lr=6e-4,
            min_lr=6e-5,
            warmup_steps=min(20, args.steps // 10),
            eval_every=args.steps,  # evals at step 0 and at the end only (excluded from tokens/s anyway)
            eval_batches=2,
            log_every=max(1, args.steps // 10),
            device=args.device,
            compile=compile_model,
        )
        t0 = time.perf_counter()
        metrics = pretrain(cfg, work / "tokens", tokenizer_dir, work / "model", resume=False, log=_print_now)
        pretrain_s = time.perf_counter() - t0
        train_log = _train_log(work / "model" / "metrics.jsonl")
        peak_memory = torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else None
        if compile_model:
            torch._dynamo.reset()  # drop the compiled graphs (and the model they hold) before the raw loop
        if args.device == "cuda":
            torch.cuda.empty_cache()

        tokens_per_step = args.batch_size * args.block_size
        step_s = tokens_per_step / metrics["tokens_per_second"]
        data_s = data_seconds_per_batch(work / "tokens", args.block_size, args.batch_size, args.device)
        device_name = metrics["device_name"]
        peak = peak_flops(device_name) if args.device == "cuda" else None
        shape = PRESETS[args.preset]
        flops_token = flops_per_token(metrics["n_params"], shape.n_layer, shape.n_embd, args.block_size)
        figures = {
            "device": device_name,
            "preset": args.preset,
            "n_layer": shape.n_layer,
            "n_embd": shape.n_embd,
            "n_params": metrics["n_params"],
            "steps": args.steps,
            "block_size": args.block_size,
            "batch_size": args.batch_size,
            "compile": compile_model,
            "bf16": args.device == "cuda",
            "tokens_per_second": metrics["tokens_per_second"],
            "mfu": metrics["mfu"],
            "step_seconds": step_s,
            "data_seconds_per_step": data_s,
            "data_wait_fraction": data_s / step_s,
            "flops_per_token": flops_token,
            "peak_flops": peak,
            "raw_tokens_per_second": None,
            "raw_mfu": None,
            "ours_over_raw": None,
            "raw_skipped": None,
            "val_loss": [metrics["initial_val_loss"], metrics["final_val_loss"]],
            "pretrain_seconds": round(pretrain_s, 1),
            "total_seconds": round(time.perf_counter() - started, 1),
            "peak_memory_gib": peak_memory,
            "train_log": train_log,  # [step, loss, tokens/s, mfu] of each logged step (step 0: warm-up, no rate)
            "versions": _versions(),
        }
        _write_json(args.json, figures)
        _print_summary(figures)
        raw = None
        if not args.raw_steps:
            figures["raw_skipped"] = "--raw-steps 0"
        elif args.raw_budget and time.perf_counter() - started > args.raw_budget:
            figures["raw_skipped"] = f"past the {args.raw_budget:.0f} s budget at {time.perf_counter() - started:.0f} s"
            print(f"raw loop skipped: {figures['raw_skipped']}", flush=True)
        else:
            _print_now(f"raw loop: {args.raw_steps} steps" + (" (compiling again)" if compile_model else ""))
            raw = raw_tokens_per_second(
                args.preset, metrics["vocab_size"], n_tokens["eos_id"], args.block_size, args.batch_size, args.device, compile_model,
                args.raw_steps,
            )  # fmt: skip
            figures["raw_tokens_per_second"] = raw
            figures["raw_mfu"] = raw * flops_token / peak if peak else None
            figures["ours_over_raw"] = metrics["tokens_per_second"] / raw
        figures["total_seconds"] = round(time.perf_counter() - started, 1)
        _write_json(args.json, figures)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)

    if raw:
        print(f"raw:  {raw:,.0f} tokens/s on a fixed on-device batch; ours/raw = {figures['ours_over_raw']:.3f}")
    print(f"total {figures['total_seconds']} s")
    print(json.dumps(figures))
    return figures


def _print_summary(figures: dict) -> None:
    """The pretrain figures, printed as soon as they are known (before the raw loop)."""
    mfu = f"{figures['mfu']:.1%}" if figures["mfu"] is not None else "n/a (no peak for this device)"
    shape_line = f"B={figures['batch_size']} T={figures['block_size']}, {figures['steps']} steps, compile={figures['compile']}"
    print(f"== {figures['device']}: GPT-2 {figures['preset']}, {shape_line}")
    step_s, data_s = figures["step_seconds"], figures["data_seconds_per_step"]
    print(f"ours: {figures['tokens_per_second']:,.0f} tokens/s, MFU {mfu}, {step_s * 1e3:.1f} ms/step")
    wait = figures["data_wait_fraction"]
    print(f"data: {data_s * 1e3:.2f} ms per step (sampler + host-to-device alone) = {wait:.2%} of step time", flush=True)


_CLOCK = {"start": time.perf_counter()}


def _print_now(line: str) -> None:
    print(f"[{time.perf_counter() - _CLOCK['start']:6.1f}s] {line}", flush=True)


def _train_log(path: Path) -> list:
    """[step, loss, tokens/s, mfu] of each train entry pretrain logged (its metrics.jsonl)."""
    if not path.is_file():
        return []
    entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [[e["step"], e["loss"], e.get("tokens_per_second"), e.get("mfu")] for e in entries if e.get("kind") == "train"]


def _versions() -> dict:
    import platform

    import torch

    found = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda}
    for name in ("transformers", "tokenizers", "pyarrow", "numpy", "pydantic", "triton"):
        try:
            found[name] = __import__(name).__version__
        except Exception:  # noqa: BLE001 (a missing optional package is reported, not fatal)
            found[name] = None
    if torch.cuda.is_available():
        found["gpu"] = torch.cuda.get_device_name()
        found["capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
    return found


def _tensorboard_or_off() -> None:
    """pretrain logs to TensorBoard wherever the package is installed; where it is but will not import (another
    machine's image), the benchmark turns that log off rather than fail on it."""
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        return
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except Exception as exc:  # noqa: BLE001
        import training.pretrain

        training.pretrain._tensorboard = lambda _out_dir: None
        print(f"tensorboard does not import here ({type(exc).__name__}: {exc}); pretrain runs without its TensorBoard log")


def _write_json(path: Path | None, figures: dict) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{path.name}")
    tmp.write_text(json.dumps(figures, indent=2) + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
