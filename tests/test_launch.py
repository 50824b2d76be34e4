"""Multi-process pretraining through torchrun (two CPU ranks on gloo), and the GPU benchmark's CPU smoke run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from test_training import _cfg, corpus, one_torch_thread  # noqa: F401 (corpus, one_torch_thread: fixtures)

from training.config import PretrainConfig
from training.launch import gpu_count, launch_pretrain, torchrun_command

ROOT = Path(__file__).resolve().parents[1]


def _gloo_available() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_gloo_available()


def test_torchrun_command_runs_this_interpreter_and_round_trips_the_config(tmp_path):
    cfg = PretrainConfig(preset="tiny", max_steps=7, batch_size=3)
    command = torchrun_command(cfg, tmp_path / "tokens", tmp_path / "tok", tmp_path / "out", 4)
    assert command[:6] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=4", "-m"]
    assert command[6] == "training.launch"
    assert PretrainConfig.model_validate_json(command[command.index("--config") + 1]) == cfg
    assert command[command.index("--out") + 1] == str(tmp_path / "out") and "--no-resume" not in command
    assert torchrun_command(cfg, tmp_path, tmp_path, tmp_path, 2, resume=False)[-1] == "--no-resume"
    import torch

    assert gpu_count() == (torch.cuda.device_count() if torch.cuda.is_available() else 0)


def test_two_cpu_ranks_train_exactly_like_one_process_with_their_global_batch(corpus, tmp_path):  # noqa: F811
    if not _gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    from transformers import AutoModelForCausalLM

    from training.pretrain import pretrain

    lines: list[str] = []
    tokens, tokenizer = corpus / "tokens", corpus / "tokenizer"
    ranks_cfg = _cfg(max_steps=6, batch_size=4, eval_every=3, eval_batches=1)
    ranks = launch_pretrain(ranks_cfg, tokens, tokenizer, tmp_path / "ddp", 2, lines.append)
    # One process drawing both ranks' rows: the same windows (one seeded sampler), the same mean gradient.
    single_cfg = _cfg(max_steps=6, batch_size=8, eval_every=3, eval_batches=1)
    single = pretrain(single_cfg, tokens, tokenizer, tmp_path / "one", log=lambda _: None)
    assert ranks["world_size"] == 2 and ranks["steps"] == 6 and ranks["tokens_seen"] == 6 * 8 * 64
    assert [s for s, _ in ranks["train_loss"]] == list(range(6))
    np.testing.assert_allclose([v for _, v in ranks["train_loss"]], [v for _, v in single["train_loss"]], rtol=0, atol=1e-5)

    # rank 0 alone speaks and writes; its lines arrived through `log`
    assert sum("x 2 ranks" in line for line in lines) == 1
    assert sum(line.startswith("step 5/6 | loss") for line in lines) == 1
    assert any(line.startswith("pretrain done") for line in lines)
    assert (tmp_path / "ddp" / "trainer_state" / "latest").read_text() == "step-00000006\n"
    assert json.loads((tmp_path / "ddp" / "metrics.json").read_text())["world_size"] == 2
    assert type(AutoModelForCausalLM.from_pretrained(str(tmp_path / "ddp"))).__name__ == "GPT2LMHeadModel"


def test_without_several_gpus_pretraining_stays_in_this_process(corpus, tmp_path):  # noqa: F811
    from training.launch import pretrain_on_available_devices

    lines: list[str] = []
    cfg = _cfg(max_steps=2, eval_batches=1)
    metrics = pretrain_on_available_devices(cfg, corpus / "tokens", corpus / "tokenizer", tmp_path, lines.append)
    assert metrics["world_size"] == 1 and metrics["steps"] == 2
    assert not any("torchrun" in line for line in lines)


def test_a_failing_rank_is_reported_with_its_last_lines(corpus, tmp_path):  # noqa: F811
    if not _gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available in this torch build")
    with pytest.raises(RuntimeError, match=r"with 2 processes exited with 1 \(FileNotFoundError: no token shards in .*no-tokens"):
        launch_pretrain(_cfg(max_steps=2), tmp_path / "no-tokens", corpus / "tokenizer", tmp_path / "out", 2, log=lambda _: None)


def test_gpu_benchmark_runs_on_cpu_with_a_tiny_model(shared_data):
    command = [
        sys.executable, str(ROOT / "bench" / "gpu_train.py"), "--device", "cpu", "--preset", "tiny", "--steps", "3",
        "--block-size", "32", "--batch-size", "2", "--raw-steps", "2", "--text-chars", "200000", "--data", str(shared_data),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["preset"] == "tiny" and figures["steps"] == 3 and figures["compile"] is False and figures["bf16"] is False
    assert figures["tokens_per_second"] > 0 and figures["raw_tokens_per_second"] > 0
    assert figures["mfu"] is None  # no peak FLOPs for a CPU
    assert 0 <= figures["data_wait_fraction"] < 1
    assert figures["n_params"] > 6_000_000  # GPT-2's 50,257-token vocabulary (padded to 50,304) dominates the tiny model
    assert "data:" in done.stdout and "ours/raw" in done.stdout
