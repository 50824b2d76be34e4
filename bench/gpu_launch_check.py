"""The several-device path on the device machine: `training.launch.launch_pretrain` (torchrun, DDP, NCCL on CUDA).

With one GPU this starts one rank: it checks that torchrun starts, NCCL initialises, pretrain runs under DDP on the
GPU and metrics.json comes back; it measures nothing. `bench/gpu_check.sh` runs it on the token shards that
`bench/gpu_train.py --work DIR` left.

    python bench/gpu_launch_check.py --tokens DIR/tokens --tokenizer TOKENIZER_DIR --out DIR/launch
    python bench/gpu_launch_check.py ... --device cpu --nproc 2          # gloo, two CPU ranks

Prints the metrics' main figures as JSON last (also written to --json); exit code 1 if the run failed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and a bench script named like a package would shadow it.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from training.config import PretrainConfig  # noqa: E402
from training.launch import launch_pretrain  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--nproc", type=int, default=1)
    parser.add_argument("--preset", default="tiny", choices=["tiny", "small", "medium"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--block-size", type=int, default=256)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    cfg = PretrainConfig(
        preset=args.preset,
        max_steps=args.steps,
        batch_size=args.batch_size,
        block_size=args.block_size,
        lr=1e-3,
        warmup_steps=2,
        eval_every=args.steps,
        eval_batches=2,
        log_every=max(1, args.steps // 4),
        device=args.device,
        compile=False,
    )
    start = time.perf_counter()
    result: dict = {"nproc": args.nproc, "device": args.device}
    try:
        metrics = launch_pretrain(cfg, args.tokens, args.tokenizer, args.out, args.nproc, resume=False)
        losses = [metrics["initial_val_loss"], metrics["final_val_loss"]]
        result |= {
            "ok": metrics["world_size"] == args.nproc and all(math.isfinite(x) for x in losses) and losses[1] < losses[0],
            "world_size": metrics["world_size"],
            "device_name": metrics["device_name"],
            "val_loss": losses,
            "tokens_per_second": metrics["tokens_per_second"],
        }
    except Exception as exc:  # noqa: BLE001 (reported, with torchrun's last lines)
        result |= {"ok": False, "error": f"{type(exc).__name__}: {str(exc)[-3000:]}"}
    result["seconds"] = round(time.perf_counter() - start, 1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
