"""Sequence classification fine-tuning: a labelled table in, the best model on the dev set out.

    read train (and dev, or a stratified split of train) -> map labels to ids
    load the classifier head on the checkpoint -> tokenize (with the specials the head pools on)
    for epoch in 1 .. epochs:
        train one pass in a seeded order (AdamW, linear warmup and decay, clipping)
        evaluate accuracy and macro-F1 on dev; save the model when the dev score (`select_metric`, macro-F1 by
        default: always answering the majority class scores high accuracy but low macro-F1) improved
        stop after `patience` epochs without improvement
    metrics.json: the best epoch's accuracy and macro-F1 next to the majority-class baseline

The checkpoint is ours (GPT-2 or RoBERTa from `training.pretrain`) or any local transformers folder (a BERT
folder works like the classic BertForSequenceClassification example); the head comes from
AutoModelForSequenceClassification, never from remote code.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from corpus.atomic import write_json_atomic
from training import checkpoint as ckpt
from training.config import FinetuneConfig

# RoBERTa-style models number positions from pad_token_id + 1: that many rows of the position table are not usable.
OFFSET_POSITIONS = {"roberta", "xlm-roberta", "camembert", "roberta-prelayernorm", "xmod", "data2vec-text"}
TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


# --- labelled tables -----------------------------------------------------------------------------------------


def read_labelled(path: Path, text_column: str, label_column: str) -> tuple[list[str], list[str]]:
    """Texts and labels (as strings: 1 and "1" are one class) of a CSV/TSV/JSONL/Parquet file.

    Every problem with the file is a ValueError that names the file (and the column or line).
    """
    path = Path(path)
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise ValueError(f"{path}: unknown table type {path.suffix!r}; use one of {sorted(TABLE_SUFFIXES)}")
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    columns = _read_jsonl(path) if kind == "jsonl" else _read_arrow_table(path, kind, text_column)
    for name in (text_column, label_column):
        if name not in columns:
            raise ValueError(f"{path}: no column {name!r} (columns: {sorted(columns)}); set finetune.text_column / label_column")
    texts, labels = columns[text_column], columns[label_column]
    if not labels:
        raise ValueError(f"{path}: no rows")
    for name, values in ((text_column, texts), (label_column, labels)):
        missing = [i for i, v in enumerate(values) if v is None]
        if missing:
            raise ValueError(f"{path}: column {name!r} is empty in {len(missing)} rows (first: row {missing[0]})")
    return [str(t) for t in texts], [label_key(v) for v in labels]


def label_key(value) -> str:
    """One spelling per label: 1, 1.0, "1" and True/False read from different formats name the same class."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _read_arrow_table(path: Path, kind: str, text_column: str) -> dict[str, list]:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    try:
        if kind == "parquet":
            table = pq.read_table(path)
        else:
            # TSV as GLUE writes it has no quoting: a `"` inside a sentence is just a character.
            parse = pcsv.ParseOptions(delimiter="\t", quote_char=False) if kind == "tsv" else pcsv.ParseOptions()
            convert = pcsv.ConvertOptions(column_types={text_column: pa.string()})  # "1984" stays text
            table = pcsv.read_csv(path, parse_options=parse, convert_options=convert)
    except (pa.ArrowException, OSError) as e:
        raise ValueError(f"{path}: cannot read it as {kind}: {e}") from e
    return {name: table.column(name).to_pylist() for name in table.column_names}


def _read_jsonl(path: Path) -> dict[str, list]:
    """One JSON object per line (blank lines skipped); Python's parser, which fails cleanly on deep nesting."""
    rows = []
    try:
        with open(path, encoding="utf-8-sig") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except (json.JSONDecodeError, RecursionError) as e:
                    raise ValueError(f"{path}: line {number} is not JSON ({type(e).__name__}: {str(e)[:100]})") from e
                if not isinstance(row, dict):
                    raise ValueError(f"{path}: line {number} is not a JSON object")
                rows.append(row)
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 ({e})") from e
    names = {name for row in rows for name in row}
    return {name: [row.get(name) for row in rows] for name in names}


# --- splits ----------------------------------------------------------------------------------------------------


def label_names(labels: list[str]) -> list[str]:
    """Classes in id order: numerically when every label is an integer (so 0/1 keep their ids), else by name."""
    unique = set(labels)
    if all(_is_int(v) for v in unique):
        return sorted(unique, key=int)
    return sorted(unique)


def _is_int(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True


def stratified_sample(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of n items whose class shares match the whole's (largest remainder), seeded."""
    if n >= len(labels):
        return np.arange(len(labels))
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * n / len(labels)
    quota = np.floor(exact).astype(np.int64)
    quota[np.argsort(-(exact - quota), kind="stable")[: n - quota.sum()]] += 1
    picked = [rng.permutation(np.flatnonzero(labels == c))[:q] for c, q in zip(classes, quota, strict=True)]
    return np.sort(np.concatenate(picked))


def stratified_split(labels: np.ndarray, eval_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train, eval) indices; every class with two or more examples has at least one on each side."""
    eval_parts = []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_eval = min(max(round(len(members) * eval_fraction), 1), len(members) - 1) if len(members) > 1 else 0
        eval_parts.append(members[:n_eval])
    held_out = np.sort(np.concatenate(eval_parts))
    return np.setdiff1d(np.arange(len(labels)), held_out), held_out


@dataclass(frozen=True)
class LabelledSplits:
    train_texts: list[str]
    train_labels: np.ndarray  # (n_train,) class ids
    eval_texts: list[str]
    eval_labels: np.ndarray  # (n_eval,) class ids
    labels: list[str]  # id -> label
    eval_source: str  # "eval_data" or "split"
    rows: dict  # rows read and rows left out by the max_train/max_eval caps: the stage's ledger


def load_splits(cfg: FinetuneConfig, log: Callable[[str], None] = print) -> LabelledSplits:
    if not cfg.data:
        raise ValueError("finetune.data is empty: name a labelled CSV/TSV/JSONL/Parquet file")
    rng = np.random.default_rng(cfg.seed)
    texts, labels = read_labelled(Path(cfg.data), cfg.text_column, cfg.label_column)
    names = label_names(labels)
    if len(names) < 2:
        raise ValueError(
            f"{cfg.data}: column {cfg.label_column!r} holds one class only ({names[0]!r}); classification needs two or more"
        )
    ids = {name: i for i, name in enumerate(names)}
    y = np.array([ids[v] for v in labels], dtype=np.int64)
    if cfg.eval_data:
        eval_texts, eval_labels = read_labelled(Path(cfg.eval_data), cfg.text_column, cfg.label_column)
        unknown = sorted(set(eval_labels) - ids.keys())
        if unknown:
            raise ValueError(f"{cfg.eval_data}: labels {unknown[:5]} never occur in {cfg.data} (its labels: {names[:10]})")
        eval_y = np.array([ids[v] for v in eval_labels], dtype=np.int64)
        train_idx, source = np.arange(len(y)), "eval_data"
    else:
        train_idx, eval_idx = stratified_split(y, cfg.eval_fraction, rng)
        eval_texts, eval_y, source = [texts[i] for i in eval_idx], y[eval_idx], "split"
    rows = {"read": len(y) + (len(eval_y) if cfg.eval_data else 0), "over_max_train": 0, "over_max_eval": 0}
    if cfg.max_train:
        before = len(train_idx)
        train_idx = train_idx[stratified_sample(y[train_idx], cfg.max_train, rng)]
        rows["over_max_train"] = before - len(train_idx)
    if cfg.max_eval:
        keep = stratified_sample(eval_y, cfg.max_eval, rng)
        rows["over_max_eval"] = len(eval_y) - len(keep)
        eval_texts, eval_y = [eval_texts[i] for i in keep], eval_y[keep]
    if len(eval_y) == 0:
        raise ValueError(f"{cfg.data}: too few rows to hold out a dev set; give finetune.eval_data")
    log(f"finetune data: {len(train_idx):,} train / {len(eval_y):,} dev ({source}), {len(names)} classes")
    return LabelledSplits([texts[i] for i in train_idx], y[train_idx], eval_texts, eval_y, names, source, rows)


# --- scores ----------------------------------------------------------------------------------------------------


def accuracy(gold: np.ndarray, predicted: np.ndarray) -> float:
    return float((gold == predicted).mean())


def macro_f1(gold: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    """Unweighted mean over all classes of F1 = 2TP / (2TP + FP + FN); a class never gold nor predicted scores 0."""
    scores = []
    for c in range(n_classes):
        tp = int(((predicted == c) & (gold == c)).sum())
        fp = int(((predicted == c) & (gold != c)).sum())
        fn = int(((predicted != c) & (gold == c)).sum())
        scores.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(scores))


def majority_baseline(train_labels: np.ndarray, eval_labels: np.ndarray) -> float:
    """Dev accuracy of always answering the most frequent training label (what a model must beat)."""
    majority = np.bincount(train_labels).argmax()
    return float((eval_labels == majority).mean())


def linear_lr(step: int, total_steps: int, warmup_steps: int, peak: float) -> float:
    """Linear warmup to peak over warmup_steps, then linear decay to 0 at total_steps."""
    if step < warmup_steps:
        return peak * (step + 1) / (warmup_steps + 1)
    return peak * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


# --- model and tokens ------------------------------------------------------------------------------------------


def load_classifier(model_dir: Path, labels: list[str], log: Callable[[str], None] = print):
    """(tokenizer, model) with a fresh head for `labels`; the tokenizer adds the tokens the head pools on.

    Encoders (BERT, RoBERTa) classify from the first position, decoders (GPT-2) from the last non-pad one.
    A tokenizer that adds no special tokens of its own (ours) gets a post-processor that adds them: <cls> ... <sep>
    for encoders, ... <eos> for decoders. It is saved with the model, so the fine-tuned folder tokenizes a new
    text exactly as training did.
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise ValueError(f"{model_dir}: no config.json; give finetune.model a transformers checkpoint folder")
    config = AutoConfig.from_pretrained(str(model_dir), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    encoder = config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES
    _add_specials_if_missing(tokenizer, encoder)
    if tokenizer.pad_token_id is None:
        # GPT-2's own tokenizer has no pad; the head then pools the last non-EOS token, as in transformers' examples.
        tokenizer.pad_token = tokenizer.eos_token
    kwargs = {
        "num_labels": len(labels),
        "id2label": dict(enumerate(labels)),
        "label2id": {name: i for i, name in enumerate(labels)},
        "pad_token_id": tokenizer.pad_token_id,
    }
    try:
        with _quiet_transformers():  # its load report (a coloured table) would say what the line below says
            model, info = AutoModelForSequenceClassification.from_pretrained(
                str(model_dir),
                local_files_only=True,
                ignore_mismatched_sizes=True,  # a folder with another head (other num_labels) gets a fresh one
                output_loading_info=True,
                **kwargs,
            )
    except ValueError as e:
        raise ValueError(f"{model_dir}: {config.model_type} has no sequence classification model in transformers ({e})") from e
    fresh = sorted(set(info.get("missing_keys") or []) | {str(k[0] if isinstance(k, tuple) else k) for k in info.get("mismatched_keys") or []})
    if fresh:
        shown = ", ".join(fresh[:4]) + (f" and {len(fresh) - 4} more" if len(fresh) > 4 else "")
        log(f"new weights, initialised here and trained below: {shown}")
    if info.get("unexpected_keys"):
        log(f"checkpoint weights not used by the classifier: {len(info['unexpected_keys'])} (e.g. the pretraining head)")
    return tokenizer, model


@contextlib.contextmanager
def _quiet_transformers():
    """transformers' warnings off for a moment (restored after): errors still raise."""
    from transformers.utils import logging as hf_logging

    before = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(before)


def _add_specials_if_missing(tokenizer, encoder: bool) -> None:
    from tokenizers import processors

    probe = "a b"
    if tokenizer(probe)["input_ids"] != tokenizer(probe, add_special_tokens=False)["input_ids"]:
        return  # the tokenizer adds its own (BERT's [CLS] ... [SEP], RoBERTa's <s> ... </s>)
    if encoder:
        first = _known_token(tokenizer, "cls_token", "bos_token")
        last = _known_token(tokenizer, "sep_token", "eos_token")
    else:
        first, last = None, _known_token(tokenizer, "eos_token")
    if first is None and last is None:
        return
    template = " ".join(t for t in (first and first[0], "$A", last and last[0]) if t)
    specials = [t for t in (first, last) if t is not None]
    tokenizer.backend_tokenizer.post_processor = processors.TemplateProcessing(single=template, special_tokens=specials)


def _known_token(tokenizer, *attributes: str) -> tuple[str, int] | None:
    """(token, id) of the first named special token that is really in the vocabulary."""
    vocab = tokenizer.get_vocab()
    for attribute in attributes:
        token = getattr(tokenizer, attribute, None)
        if token is not None and token in vocab:
            return token, vocab[token]
    return None


def max_positions(config) -> int | None:
    """The longest sequence the model's position table takes (None: no table, e.g. rotary positions)."""
    positions = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
    if positions is not None and config.model_type in OFFSET_POSITIONS:
        positions -= (config.pad_token_id or 0) + 1
    return positions


def encode(tokenizer, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids per text, special tokens included, cut to max_length."""
    ids = []
    for start in range(0, len(texts), 1024):
        ids.extend(tokenizer(texts[start : start + 1024], truncation=True, max_length=max_length)["input_ids"])
    return ids


def length_bucketed_batches(
    lengths: list[int], batch_size: int, rng: np.random.Generator, pool_batches: int = 50
) -> list[np.ndarray]:
    """Row indices per batch, in a random order; rows of a batch have similar lengths, so little of it is padding.

    A random permutation is cut into pools of pool_batches batches, each pool sorted by length and cut into
    batches, and the batches shuffled: every epoch still sees its own random mix.
    """
    order = rng.permutation(len(lengths))
    pool = batch_size * pool_batches
    batches = []
    for start in range(0, len(order), pool):
        members = order[start : start + pool]
        members = members[np.argsort(np.asarray(lengths)[members], kind="stable")]
        batches.extend(members[i : i + batch_size] for i in range(0, len(members), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def _check_ids_fit(model, sequences: list[list[int]], model_dir: Path) -> None:
    """A tokenizer larger than the model's embedding table would fail deep inside torch with an IndexError."""
    rows = model.get_input_embeddings().num_embeddings
    largest = max((max(s) for s in sequences if s), default=-1)
    if largest >= rows:
        raise ValueError(
            f"{model_dir}: the tokenizer produced id {largest} but the model embeds only {rows} tokens; "
            "the folder's tokenizer and model do not belong together"
        )


def pad_batch(sequences: list[list[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Right-padded (B, T) ids to the longest sequence, and the attention mask (1 = token)."""
    longest = max(len(s) for s in sequences)
    ids = np.full((len(sequences), longest), pad_id, dtype=np.int64)
    attention = np.zeros((len(sequences), longest), dtype=np.int64)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq
        attention[row, : len(seq)] = 1
    return ids, attention


# --- the loop --------------------------------------------------------------------------------------------------


def finetune(cfg: FinetuneConfig, model_dir: Path, out_dir: Path, *, log: Callable[[str], None] = print) -> dict:
    """Fine-tune model_dir on cfg.data; write the best model (+ tokenizer) and metrics.json to out_dir."""
    import torch

    started = time.time()
    model_dir, out_dir = Path(model_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").unlink(missing_ok=True)  # an earlier run's numbers must not pass for this one's
    device = _resolve_device(cfg.device)
    data = load_splits(cfg, log)

    torch.manual_seed(cfg.seed)  # the new head's initial weights
    tokenizer, model = load_classifier(model_dir, data.labels, log)
    model.to(device)
    max_length = min(cfg.max_length, max_positions(model.config) or cfg.max_length)
    if max_length < cfg.max_length:
        log(f"finetune.max_length={cfg.max_length} exceeds the model's {max_length} positions: texts are cut at {max_length}")
    train_ids = encode(tokenizer, data.train_texts, max_length)
    eval_ids = encode(tokenizer, data.eval_texts, max_length)
    _check_ids_fit(model, train_ids + eval_ids, model_dir)
    train_lengths = [len(s) for s in train_ids]
    pad_id = tokenizer.pad_token_id
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device == "cuda" else contextlib.nullcontext()

    from training.model import param_groups

    optimizer = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr, fused=device == "cuda")
    steps_per_epoch = math.ceil(len(train_ids) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    warmup_steps = round(cfg.warmup_ratio * total_steps)
    order_rng = np.random.default_rng(cfg.seed)
    log(
        f"finetune {model.config.model_type} from {model_dir}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params, "
        f"{len(data.labels)} labels, {steps_per_epoch} steps/epoch, device {device}"
    )

    def to_device(sequences: list[list[int]]) -> tuple:
        ids, attention = pad_batch(sequences, pad_id)
        return torch.from_numpy(ids).to(device), torch.from_numpy(attention).to(device)

    @torch.no_grad()
    def predict(sequences: list[list[int]]) -> np.ndarray:
        model.eval()
        by_length = np.argsort([len(s) for s in sequences], kind="stable")  # little padding per batch
        predicted = np.zeros(len(sequences), dtype=np.int64)
        for start in range(0, len(sequences), 2 * cfg.batch_size):
            rows = by_length[start : start + 2 * cfg.batch_size]
            ids, attention = to_device([sequences[i] for i in rows])
            with autocast:
                logits = model(input_ids=ids, attention_mask=attention).logits  # (B, n_labels)
            predicted[rows] = logits.argmax(-1).cpu().numpy()
        model.train()
        return predicted

    board = _tensorboard(out_dir)
    history: list[dict] = []
    best: dict | None = None
    step, epochs_without_gain = 0, 0
    model.train()
    try:
        for epoch in range(1, cfg.epochs + 1):
            # 1. one pass over the training set in a seeded order
            loss_sum = torch.zeros((), device=device)
            for batch_rows in length_bucketed_batches(train_lengths, cfg.batch_size, order_rng):
                for group in optimizer.param_groups:
                    group["lr"] = linear_lr(step, total_steps, warmup_steps, cfg.lr)
                ids, attention = to_device([train_ids[i] for i in batch_rows])
                labels = torch.from_numpy(data.train_labels[batch_rows]).to(device)
                with autocast:
                    logits = model(input_ids=ids, attention_mask=attention).logits  # (B, n_labels)
                loss = torch.nn.functional.cross_entropy(logits.float(), labels)
                loss.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                loss_sum += loss.detach()  # read once per epoch: .item() would wait for the device every step
                step += 1

            # 2. evaluate on dev; keep the model only when the dev score that selects (macro-F1 by default) improved
            predicted = predict(eval_ids)
            scores = {
                "epoch": epoch,
                "train_loss": loss_sum.item() / steps_per_epoch,
                "accuracy": accuracy(data.eval_labels, predicted),
                "macro_f1": macro_f1(data.eval_labels, predicted, len(data.labels)),
            }
            history.append(scores)
            if board is not None:
                for key in ("train_loss", "accuracy", "macro_f1"):
                    board.add_scalar(f"finetune/{key}", scores[key], epoch)
            metric = cfg.select_metric
            improved = best is None or scores[metric] > best[metric]
            log(
                f"epoch {epoch}/{cfg.epochs} | train loss {scores['train_loss']:.4f} | dev accuracy {scores['accuracy']:.4f} "
                f"| macro-F1 {scores['macro_f1']:.4f}" + (" | best, saved" if improved else "")
            )
            if improved:
                best, epochs_without_gain = scores, 0
                _save_model(model, tokenizer, out_dir)
            else:
                epochs_without_gain += 1
                if epochs_without_gain >= cfg.patience:
                    log(f"early stop: no better dev {metric} for {epochs_without_gain} epoch(s)")
                    break
    finally:
        if board is not None:
            board.close()

    assert best is not None  # epochs >= 1
    metrics = {
        "accuracy": best["accuracy"],
        "macro_f1": best["macro_f1"],
        "majority_baseline": majority_baseline(data.train_labels, data.eval_labels),
        "n_train": len(train_ids),
        "n_eval": len(eval_ids),
        "rows": data.rows,
        "epochs": len(history),
        "best_epoch": best["epoch"],
        "select_metric": cfg.select_metric,
        "labels": data.labels,
        "eval_source": data.eval_source,
        "model_type": model.config.model_type,
        "base_model": str(model_dir),
        "device": device,
        "history": history,
        "seconds": round(time.time() - started, 3),
    }
    write_json_atomic(out_dir / "metrics.json", metrics)
    log(
        f"finetune done: dev accuracy {metrics['accuracy']:.4f} (majority class {metrics['majority_baseline']:.4f}), "
        f"macro-F1 {metrics['macro_f1']:.4f}; model in {out_dir}"
    )
    return metrics


def _resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("finetune.device=cuda but torch sees no CUDA device; set finetune.device=auto or cpu")
    return name


def _save_model(model, tokenizer, out_dir: Path) -> None:
    """save_pretrained (safetensors) and the tokenizer into a temporary folder, then each file renamed into place."""
    tmp = out_dir / f".tmp-best-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    ckpt.export_model(tmp, out_dir)
    shutil.rmtree(tmp)


def _tensorboard(out_dir: Path):
    if importlib.util.find_spec("tensorboard") is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(out_dir / "tensorboard"))
