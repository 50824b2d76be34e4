"""Settings of pretraining and fine-tuning."""

from __future__ import annotations

from pydantic import Field

from corpus.config import Section


class PretrainConfig(Section):
    enabled: bool = Field(True, description="false stops the pipeline after the token shards.")
    objective: str = Field("causal", pattern="^(causal|masked)$", description="causal (GPT-2) or masked (RoBERTa MLM).")
    preset: str = Field("tiny", pattern="^(tiny|small|medium)$", description="Model size: tiny (CPU demo), small (124M), medium (350M).")
    max_steps: int = Field(300, gt=0, description="Optimizer steps.")
    batch_size: int = Field(16, gt=0, description="Sequences per micro-batch.")
    grad_accum: int = Field(1, gt=0, description="Micro-batches per optimizer step.")
    block_size: int = Field(128, ge=8, description="Sequence length in tokens.")
    lr: float = Field(1e-3, gt=0, description="Peak learning rate.")
    min_lr: float = Field(1e-4, ge=0, description="Learning rate at the end of the cosine decay.")
    warmup_steps: int = Field(20, ge=0, description="Linear warmup steps.")
    weight_decay: float = Field(0.1, ge=0, description="AdamW weight decay (not applied to norms, biases, embeddings).")
    grad_clip: float = Field(1.0, ge=0, description="Gradient norm clip (0 disables).")
    eval_every: int = Field(100, gt=0, description="Steps between evaluations and checkpoints.")
    eval_batches: int = Field(8, gt=0, description="Batches per evaluation.")
    device: str = Field("auto", pattern="^(auto|cpu|cuda)$", description="auto picks cuda when available.")
    compile: bool = Field(False, description="torch.compile the model.")
    seed: int = Field(1337, description="Seed of weights and data order.")
    mask_prob: float = Field(
        0.15, gt=0, lt=1, description="masked objective: fraction of tokens to predict (of those 80% <mask>, 10% random, 10% kept)."
    )
    log_every: int = Field(10, gt=0, description="Steps between training-loss log lines (points of the loss curve in metrics.json).")


class FinetuneConfig(Section):
    data: str = Field("", description="Labelled CSV/TSV/JSONL/Parquet file; empty skips fine-tuning.")
    eval_data: str = Field("", description="Held-out labelled file; empty takes a stratified split of `data`.")
    text_column: str = Field("text", description="Column with the text.")
    label_column: str = Field("label", description="Column with the label.")
    model: str = Field("", description="Checkpoint folder to start from; empty uses this run's pretrained model.")
    epochs: int = Field(3, gt=0, description="Maximum epochs (early stopping on dev may end sooner).")
    batch_size: int = Field(32, gt=0, description="Examples per batch.")
    lr: float = Field(5e-4, gt=0, description="Learning rate.")
    max_length: int = Field(128, ge=8, description="Tokens per example.")
    max_train: int = Field(0, ge=0, description="Use at most this many training examples (0 = all).")
    seed: int = Field(0, description="Seed of splits and order.")
    eval_fraction: float = Field(
        0.1, gt=0, lt=1, description="Share of `data` held out (stratified by label) as the dev set when `eval_data` is empty."
    )
    max_eval: int = Field(0, ge=0, description="Evaluate on at most this many dev examples, a stratified sample (0 = all).")
    select_metric: str = Field(
        "macro_f1",
        pattern="^(macro_f1|accuracy)$",
        description="Dev score that picks the best epoch (the model kept) and drives early stopping: macro_f1 (a "
        "majority-class model scores low on it) or accuracy.",
    )
    patience: int = Field(1, ge=1, description="Stop after this many epochs without a better dev score (`select_metric`).")
    weight_decay: float = Field(0.01, ge=0, description="AdamW weight decay (not applied to norms, biases, embeddings).")
    warmup_ratio: float = Field(0.06, ge=0, lt=1, description="Share of the planned steps spent warming the learning rate up.")
    grad_clip: float = Field(1.0, ge=0, description="Gradient norm clip (0 disables).")
    device: str = Field("auto", pattern="^(auto|cpu|cuda)$", description="auto picks cuda when available.")
