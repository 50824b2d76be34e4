"""Checkpoints that survive a kill at any instant and resume a run exactly; no pickle anywhere.

Layout under the model directory:
    trainer_state/step-00000100/model/          save_pretrained (config.json, model.safetensors, ...)
    trainer_state/step-00000100/optimizer.safetensors + optimizer.json   AdamW moments, param groups
    trainer_state/step-00000100/rng.safetensors torch CPU/CUDA generator states
    trainer_state/step-00000100/state.json      step, config, sampler state, python RNG, loss history
    trainer_state/latest                        name of the newest complete step directory
    config.json, model.safetensors, ...         the latest weights exported for from_pretrained(model_dir)

A step directory is written under a `.tmp-` name and renamed into place only when complete; `latest` is then
replaced atomically, and only after that are older step directories removed. A kill at any point leaves
`latest` naming a complete checkpoint.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from corpus.atomic import atomic_path, write_json_atomic, write_text_atomic

STATE_DIR = "trainer_state"
LATEST = "latest"
# Files of a tokenizer stage folder that are not the tokenizer itself.
NOT_TOKENIZER_FILES = {"manifest.json", "_SUCCESS"}


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    state: dict

    @property
    def model_dir(self) -> Path:
        return self.path / "model"


def step_name(step: int) -> str:
    return f"step-{step:08d}"


def save_checkpoint(out_dir: Path, model, optimizer: torch.optim.Optimizer, state: dict) -> Path:
    """Write one complete checkpoint of `state["step"]`, point `latest` at it, export its weights to out_dir."""
    root = Path(out_dir) / STATE_DIR
    root.mkdir(parents=True, exist_ok=True)
    name = step_name(state["step"])
    final = root / name
    shutil.rmtree(final, ignore_errors=True)  # a leftover of the same step from a run that died after the rename
    with atomic_path(final) as tmp:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        model.save_pretrained(tmp / "model")
        write_optimizer(tmp, optimizer)
        save_file(capture_torch_rng(), str(tmp / "rng.safetensors"))
        write_json_atomic(tmp / "state.json", {**state, "python_rng": capture_python_rng()})
    write_text_atomic(root / LATEST, name + "\n")
    for stale in root.iterdir():
        if stale.name not in (name, LATEST) and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    export_model(final / "model", Path(out_dir))
    return final


def load_latest(out_dir: Path) -> Checkpoint | None:
    pointer = Path(out_dir) / STATE_DIR / LATEST
    if not pointer.exists():
        return None
    path = pointer.parent / pointer.read_text().strip()
    return Checkpoint(path, json.loads((path / "state.json").read_text()))


def clear(out_dir: Path) -> None:
    shutil.rmtree(Path(out_dir) / STATE_DIR, ignore_errors=True)


def remove_leftovers(out_dir: Path) -> None:
    """Half-written `.tmp-*` files and folders of a session that was killed while writing them."""
    for path in [*Path(out_dir).glob(".tmp-*"), *Path(out_dir).glob(f"{STATE_DIR}/.tmp-*")]:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def export_model(model_dir: Path, out_dir: Path) -> None:
    """Put a checkpoint's save_pretrained files at the top of out_dir, each by an atomic rename.

    Weights are hard-linked (no second copy on disk) where the file system allows it.
    """
    for src in sorted(model_dir.iterdir()):
        with atomic_path(out_dir / src.name) as tmp:
            tmp.unlink(missing_ok=True)
            try:
                os.link(src, tmp)
            except OSError:
                shutil.copyfile(src, tmp)


def export_tokenizer(tokenizer_dir: Path, out_dir: Path) -> None:
    """Copy the tokenizer files byte for byte (their sha256 is what the token shards name), atomically each."""
    for src in sorted(Path(tokenizer_dir).iterdir()):
        if src.is_file() and src.name not in NOT_TOKENIZER_FILES:
            with atomic_path(out_dir / src.name) as tmp:
                shutil.copyfile(src, tmp)


# --- optimizer: tensors to safetensors, structure to JSON ---------------------------------------------------


def write_optimizer(directory: Path, optimizer: torch.optim.Optimizer) -> None:
    sd = optimizer.state_dict()
    tensors = {}
    scalars = {}
    for param_id, param_state in sd["state"].items():
        for key, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"{param_id}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{param_id}.{key}"] = value
    save_file(tensors, str(directory / "optimizer.safetensors"))
    write_json_atomic(directory / "optimizer.json", {"param_groups": sd["param_groups"], "scalars": scalars})


def restore_optimizer(directory: Path, optimizer: torch.optim.Optimizer) -> None:
    meta = json.loads((directory / "optimizer.json").read_text())
    state: dict[int, dict] = {}
    for flat, value in [*load_file(str(directory / "optimizer.safetensors")).items(), *meta["scalars"].items()]:
        param_id, key = flat.split(".", 1)
        state.setdefault(int(param_id), {})[key] = value
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


# --- random number generators ----------------------------------------------------------------------------


def capture_torch_rng() -> dict[str, torch.Tensor]:
    states = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        states.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    return states


def capture_python_rng() -> list:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def restore_rng(checkpoint: Checkpoint) -> None:
    states = load_file(str(checkpoint.path / "rng.safetensors"))
    torch.set_rng_state(states["cpu"])
    cuda = [states[f"cuda.{i}"] for i in range(torch.cuda.device_count()) if f"cuda.{i}" in states]
    if cuda:
        torch.cuda.set_rng_state_all(cuda)
    version, internal, gauss = checkpoint.state["python_rng"]
    random.setstate((version, tuple(internal), gauss))
