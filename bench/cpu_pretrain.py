"""CPU pretraining on the bundled sample: does a tiny model learn within 5 minutes? (issue 7)

Runs the pipeline on the bundled sample up to the token shards (or reuses --run), then trains the tiny preset
twice with `training.pretrain.pretrain`, the function the pipeline's last stage calls:

    causal   GPT-2, the sample preset's settings (500 steps, batch 16, lr 3e-3)
    masked   RoBERTa, 15% masking 80/10/10, more and larger steps (2000 x 32, lr 3e-3, warmup 100): a masked
             model learns from 15% of the positions, so it needs more tokens to leave the unigram plateau; its
             prediction head runs on the target positions only, which makes those steps cheap

and prints, for each, the val loss before and after, the drop, the wall time, and the val loss of a unigram model
fitted on the train tokens (the plateau a model reaches with no context). Target: a drop of 30% or more within
300 s. The last line printed is the figures as JSON.

    python bench/cpu_pretrain.py                 # about 6 minutes on 2 cores
    python bench/cpu_pretrain.py --run runs/sample   # reuse a run that has tokens/ and tokenizer/
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path: keep bench/ off it so nothing here shadows a package.
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TARGET_DROP, TARGET_SECONDS = 0.30, 300
RECIPES = {
    "causal": {"objective": "causal", "max_steps": 500, "batch_size": 16, "lr": 3e-3, "warmup_steps": 20, "eval_every": 250},
    "masked": {"objective": "masked", "max_steps": 2000, "batch_size": 32, "lr": 3e-3, "warmup_steps": 100, "eval_every": 1000},
}


def tokens_run(work: Path) -> Path:
    """`corpusforge run --to tokens` on the bundled sample, in a subprocess as a user would start it."""
    run = work / "run"
    command = [sys.executable, "-m", "flows.cli", "run", "--output", str(run), "--to", "tokens"]
    print("running:", " ".join(command[1:]), flush=True)
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"pipeline run failed ({result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}")
    return run


def unigram_val_loss(run: Path) -> float:
    """Cross-entropy (nats) on the val tokens of token frequencies counted on the train tokens (add-half smoothing)."""
    from tokenizer.encode import token_stream
    from training.data import read_token_meta, shard_paths

    def tokens(split: str) -> np.ndarray:
        return np.concatenate([token_stream(path) for path in shard_paths(run / "tokens" / split)])

    vocab = read_token_meta(shard_paths(run / "tokens" / "train")[0]).vocab_size
    counts = np.bincount(tokens("train"), minlength=vocab).astype(np.float64) + 0.5
    return float(-np.log(counts / counts.sum())[tokens("val")].mean())


def train(run: Path, recipe: dict, out: Path) -> dict:
    from training.config import PretrainConfig
    from training.pretrain import pretrain

    cfg = PretrainConfig(preset="tiny", device="cpu", log_every=250, **recipe)
    start = time.perf_counter()
    metrics = pretrain(cfg, run / "tokens", run / "tokenizer", out, resume=False, log=lambda line: print("  " + line, flush=True))
    seconds = time.perf_counter() - start
    drop = 1 - metrics["final_val_loss"] / metrics["initial_val_loss"]
    return {
        "initial_val_loss": round(metrics["initial_val_loss"], 4),
        "final_val_loss": round(metrics["final_val_loss"], 4),
        "drop": round(drop, 4),
        "seconds": round(seconds, 1),
        "tokens_per_second": round(metrics["tokens_per_second"]),
        "met": drop >= TARGET_DROP and seconds <= TARGET_SECONDS,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, help="a pipeline run with tokens/ and tokenizer/ (default: make one)")
    parser.add_argument("--objective", choices=sorted(RECIPES), action="append", help="only these (default: both)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cf-cpu-pretrain-") as tmp:
        run = args.run or tokens_run(Path(tmp))
        results = {"unigram_val_loss": round(unigram_val_loss(run), 4)}
        for name in args.objective or sorted(RECIPES):
            print(f"{name}: {RECIPES[name]}", flush=True)
            results[name] = train(run, RECIPES[name], Path(tmp) / name)
    print(f"\n{'objective':<10}{'val loss 0':>12}{'val loss end':>14}{'drop':>8}{'seconds':>9}{'tok/s':>9}  target")
    for name in args.objective or sorted(RECIPES):
        r = results[name]
        verdict = "met" if r["met"] else "NOT met"
        print(f"{name:<10}{r['initial_val_loss']:>12.3f}{r['final_val_loss']:>14.3f}{r['drop']:>8.1%}{r['seconds']:>9.0f}{r['tokens_per_second']:>9,}  {verdict}")
    print(f"unigram model's val loss (no context): {results['unigram_val_loss']:.3f}; target: drop >= 30% within {TARGET_SECONDS} s")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
