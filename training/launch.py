"""Pretraining on several devices: the caller's process starts torchrun, torchrun starts one process per device.

    launch_pretrain(cfg, ..., nproc=N)                         (the flow task, or any caller)
      └─ python -m torch.distributed.run --nproc-per-node N -m training.launch --config '{...}' ...
           └─ N x `python -m training.launch`: init_process_group (nccl on CUDA, gloo on CPU) -> pretrain()

The ranks run the very loop a single process runs (training/pretrain.py), on a DDP-wrapped model. Rank 0 alone
prints, writes checkpoints and metrics.json; its lines reach the caller's `log` as they are printed, and the
caller reads metrics.json back when torchrun exits. CPU and GPU run the same code: gloo lets the tests start
two CPU ranks.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from pathlib import Path

from training.config import PretrainConfig

# Lines of a failed run quoted in the error: torchrun's closing summary, with the failed rank's traceback.
TAIL_LINES = 80


def gpu_count() -> int:
    """CUDA devices torch can use here (0 without CUDA)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def torchrun_command(
    cfg: PretrainConfig, tokens_dir: Path, tokenizer_dir: Path, out_dir: Path, nproc: int, *, resume: bool = True
) -> list[str]:
    """torchrun through this interpreter (`python -m torch.distributed.run`): no PATH lookup, the same venv."""
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",  # one machine: a free local rendezvous port, no master address to configure
        f"--nproc-per-node={nproc}",
        "-m",
        "training.launch",
        "--config",
        cfg.model_dump_json(),
        "--tokens",
        str(tokens_dir),
        "--tokenizer",
        str(tokenizer_dir),
        "--out",
        str(out_dir),
    ]
    return command + ([] if resume else ["--no-resume"])


def launch_pretrain(
    cfg: PretrainConfig,
    tokens_dir: Path,
    tokenizer_dir: Path,
    out_dir: Path,
    nproc: int,
    log: Callable[[str], None] = print,
    *,
    resume: bool = True,
) -> dict:
    """Run pretraining in `nproc` processes (DDP); stream their output to `log` line by line; return metrics.json."""
    if nproc < 1:
        raise ValueError(f"nproc={nproc}: need at least one process")
    out_dir = Path(out_dir)
    command = torchrun_command(cfg, Path(tokens_dir), Path(tokenizer_dir), out_dir, nproc, resume=resume)
    # Unbuffered children: a line reaches the caller when it is printed, not when a buffer fills.
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if cfg.device == "cpu" or gpu_count() == 0:
        env.setdefault("OMP_NUM_THREADS", "1")  # N ranks share the cores; torchrun's own default, said explicitly
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, bufsize=1) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                line = line.rstrip("\n")
                tail.append(line)
                log(line)
        except BaseException:  # the caller gave up (an interrupt, a cancelled flow run, a failing log)
            proc.terminate()  # torchrun passes SIGTERM on to its ranks
            raise
        code = proc.wait()
    if code != 0:
        raise RuntimeError(
            f"torchrun with {nproc} processes exited with {code} ({_root_cause(tail)}); last lines:\n" + "\n".join(tail)
        )
    metrics_path = out_dir / "metrics.json"
    if not metrics_path.is_file():
        raise RuntimeError(f"torchrun finished but wrote no {metrics_path}; last lines:\n" + "\n".join(tail))
    return json.loads(metrics_path.read_text())


def _root_cause(lines) -> str:
    """The last exception line a rank printed (torchrun's own ChildFailedError is only the messenger)."""
    for line in reversed(lines):
        found = re.match(r"\s*([\w.]*(?:Error|Exception)): (.+)", line)
        if found and not found.group(1).endswith("ChildFailedError"):
            return f"{found.group(1)}: {found.group(2)}"
    return "no exception printed"


def pretrain_on_available_devices(
    cfg: PretrainConfig,
    tokens_dir: Path,
    tokenizer_dir: Path,
    out_dir: Path,
    log: Callable[[str], None] = print,
    *,
    resume: bool = True,
) -> dict:
    """One process on CPU or one GPU; torchrun with one process per GPU when there are several."""
    n_gpus = gpu_count() if cfg.device != "cpu" else 0
    if n_gpus > 1:
        log(f"{n_gpus} GPUs: pretraining with torchrun --nproc-per-node {n_gpus}")
        return launch_pretrain(cfg, tokens_dir, tokenizer_dir, out_dir, n_gpus, log, resume=resume)
    from training.pretrain import pretrain

    return pretrain(cfg, tokens_dir, tokenizer_dir, out_dir, resume=resume, log=log)


# --- one rank (the process torchrun starts) -------------------------------------------------------------------


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m training.launch", description="One rank of a torchrun pretraining.")
    parser.add_argument("--config", required=True, help="PretrainConfig as JSON.")
    parser.add_argument("--tokens", required=True, type=Path, help="Token shards folder ({train,val}/*.arrow).")
    parser.add_argument("--tokenizer", required=True, type=Path, help="Tokenizer folder (tokenizer.json).")
    parser.add_argument("--out", required=True, type=Path, help="Model folder (checkpoints, metrics.json).")
    parser.add_argument("--no-resume", action="store_true", help="Start over instead of resuming the latest checkpoint.")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    import torch
    import torch.distributed as dist

    from training.pretrain import pretrain

    args = _parse_args(argv)
    cfg = PretrainConfig.model_validate_json(args.config)
    if "LOCAL_RANK" not in os.environ:
        raise SystemExit("training.launch runs under torchrun; call training.launch.launch_pretrain instead")
    use_cuda = cfg.device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))  # "cuda" in pretrain then means this rank's GPU
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    try:
        pretrain(cfg, args.tokens, args.tokenizer, args.out, resume=not args.no_resume, log=lambda line: print(line, flush=True))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    from torch.distributed.elastic.multiprocessing.errors import record

    # record: a rank's exception goes to torchrun's error file, so its summary names the root cause, traceback included.
    record(main)()
