"""Settings of the tokenizer and tokens stages."""

from __future__ import annotations

from pydantic import Field

from corpus.config import Section


class TokenizerConfig(Section):
    vocab_size: int = Field(16384, ge=512, le=1 << 20, description="BPE vocabulary size, special tokens included.")
    min_frequency: int = Field(2, ge=1, description="A pair must occur this often to be merged.")
    sample_bytes: int = Field(200 << 20, gt=0, description="UTF-8 bytes of documents sampled (reproducibly) for training.")
    seed: int = Field(0, description="Seed of the training sample.")
    max_token_length: int = Field(16, gt=0, description="Longest merged token, in characters (bounds training time).")
    max_word_chars: int = Field(
        64,
        ge=16,
        description="Training only: runs of non-whitespace longer than this are cut into pieces before pair counting "
        "(text without spaces otherwise stalls BPE training). The saved tokenizer is unaffected.",
    )
    train_split_only: bool = Field(
        True,
        description="Sample only documents of the train split, so the val split stays unseen by the tokenizer too.",
    )
    retrain: bool = Field(
        True,
        description="false: keep the run's trained tokenizer when only the documents changed (scheduled incremental "
        "runs: token ids stay comparable between runs); it is still trained when there is none or its own settings "
        "or code changed.",
    )


class TokensConfig(Section):
    batch_docs: int = Field(512, gt=0, description="Documents per encode_batch call at most.")
    batch_bytes: int = Field(
        8 << 20,
        gt=0,
        description="UTF-8 bytes of text per encode_batch call at most: the tokenizer holds ~30x the text of a batch "
        "in memory while encoding it.",
    )
