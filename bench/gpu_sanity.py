"""Quick checks of the GPU path of pretraining, before the throughput run (`bench/gpu_check.sh` runs both).

Each check is independent; a failing one is recorded with its error and the others still run. It checks, on the
model `training.model.build_causal_lm` builds (the one `pretrain` trains):

    matmul      the card's bf16 matrix rate (8192^3 products on CUDA): the ceiling to read MFU against
    sdpa        the model's attention is SDPA, and which SDPA kernel the forward and backward actually call
                (flash, cuDNN, memory-efficient or math: the profiler's aten op names)
    bf16        under autocast the logits are bf16, and the loss is within 2% of the fp32 loss on the same batch
    adamw       fused AdamW over `param_groups` takes a step: every parameter finite, the matrices moved
    memory      peak device memory of one training step at the benchmark's shape

    python bench/gpu_sanity.py                                        # cuda, small, B=32 T=1024
    python bench/gpu_sanity.py --device cpu --preset tiny --batch-size 2 --block-size 64

Prints one line per check and, last, all results as JSON (also written to --json). Exit code 1 if any check failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
import traceback
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and a bench script named like a package would shadow it.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

from training.model import build_causal_lm, lm_loss, param_groups  # noqa: E402

GPT2_VOCAB = 50257
SDPA_OPS = ("flash", "cudnn", "efficient", "math", "scaled_dot_product")


def check_matmul(device: str) -> dict:
    n = 8192 if device == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    _sync(device)
    reps = 10 if device == "cuda" else 2
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    seconds = (time.perf_counter() - start) / reps
    return {"n": n, "tflops": 2 * n**3 / seconds / 1e12}


def check_sdpa(model, batch: dict, device: str, autocast) -> dict:
    from torch.profiler import ProfilerActivity, profile

    implementation = getattr(model.config, "_attn_implementation", None)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with autocast:
            logits = model(input_ids=batch["input_ids"]).logits
        loss_sum, n = lm_loss(logits, batch["labels"])
        (loss_sum / n).backward()
    _sync(device)
    model.zero_grad(set_to_none=True)
    ops = sorted({e.key for e in prof.key_averages() if any(k in e.key.lower() for k in SDPA_OPS) and "attention" in e.key})
    ok = implementation == "sdpa" and any("scaled_dot_product" in op or "attention" in op for op in ops)
    kernel = next((k for k in ("flash", "cudnn", "efficient", "math") if any(k in op.lower() for op in ops)), None)
    return {"ok": ok, "attn_implementation": implementation, "kernel": kernel, "ops": ops}


def check_bf16(model, batch: dict, device: str, autocast) -> dict:
    with torch.no_grad():
        with autocast:
            logits = model(input_ids=batch["input_ids"]).logits
        low_sum, n = lm_loss(logits, batch["labels"])
        full_sum, _ = lm_loss(model(input_ids=batch["input_ids"]).logits, batch["labels"])
    low, full = (low_sum / n).item(), (full_sum / n).item()
    expected = torch.bfloat16 if device == "cuda" else torch.float32
    rel = abs(low - full) / abs(full)
    ok = logits.dtype == expected and math.isfinite(low) and rel < 0.02
    return {"ok": ok, "logits_dtype": str(logits.dtype), "loss_autocast": low, "loss_fp32": full, "rel_diff": rel}


def check_adamw(model, batch: dict, device: str, autocast) -> dict:
    fused = device == "cuda"
    optimizer = torch.optim.AdamW(param_groups(model, 0.1), lr=1e-3, betas=(0.9, 0.95), eps=1e-8, fused=fused)
    before = {name: p.detach().clone() for name, p in model.named_parameters() if p.dim() == 2}
    _sync(device)
    torch.cuda.reset_peak_memory_stats() if device == "cuda" else None
    start = time.perf_counter()
    with autocast:
        logits = model(input_ids=batch["input_ids"]).logits
    loss_sum, n = lm_loss(logits, batch["labels"])
    (loss_sum / n).backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    _sync(device)
    step_s = time.perf_counter() - start
    finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
    moved = sum(int(not torch.equal(before[name], p)) for name, p in model.named_parameters() if name in before)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None
    ok = finite and moved == len(before) and bool(optimizer.defaults.get("fused")) == fused
    return {"ok": ok, "fused": optimizer.defaults.get("fused"), "finite": finite, "matrices_moved": moved,
            "matrices": len(before), "eager_step_seconds": step_s, "peak_memory_gib": peak}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--preset", default="small", choices=["tiny", "small", "medium"])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--block-size", type=int, default=1024)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_sanity: torch sees no CUDA device", flush=True)
        return 1

    results: dict = {"device": torch.cuda.get_device_name() if args.device == "cuda" else "cpu", "checks": {}}
    if args.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # as pretrain sets them
        torch.backends.cudnn.allow_tf32 = True
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if args.device == "cuda" else contextlib.nullcontext()

    def run(name: str, fn, *fn_args) -> None:
        start = time.perf_counter()
        try:
            out = fn(*fn_args)
            out.setdefault("ok", True)
        except Exception as exc:  # noqa: BLE001 (each check reports its own failure)
            out = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]}
        out["seconds"] = round(time.perf_counter() - start, 2)
        results["checks"][name] = out
        shown = {k: v for k, v in out.items() if k != "traceback"}
        print(f"{'ok  ' if out['ok'] else 'FAIL'} {name}: {json.dumps(shown)}", flush=True)

    run("matmul", check_matmul, args.device)
    torch.manual_seed(0)
    model = build_causal_lm(args.preset, GPT2_VOCAB, args.block_size, GPT2_VOCAB - 1).to(args.device)
    ids = torch.randint(0, GPT2_VOCAB, (args.batch_size, args.block_size + 1), device=args.device)
    batch = {"input_ids": ids[:, :-1], "labels": ids[:, 1:]}
    run("sdpa", check_sdpa, model, batch, args.device, autocast)
    run("bf16", check_bf16, model, batch, args.device, autocast)
    run("adamw", check_adamw, model, batch, args.device, autocast)

    results["ok"] = all(c["ok"] for c in results["checks"].values())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "checks"} | {
        name: {k: v for k, v in c.items() if k != "traceback"} for name, c in results["checks"].items()}))  # fmt: skip
    return 0 if results["ok"] else 1


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


if __name__ == "__main__":
    sys.exit(main())
