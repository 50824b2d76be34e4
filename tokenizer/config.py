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


class TokensConfig(Section):
    batch_docs: int = Field(512, gt=0, description="Documents per encode_batch call and per written Arrow batch.")
