"""Train the byte-level BPE tokenizer on a reproducible sample of the document shards.

The tokenizer is assembled from named parts (NFC normalizer, GPT-2 byte-level pre-tokenizer, BPE model, byte-level
decoder) and saved as one self-contained `tokenizer.json` plus the two small JSON files that let
`transformers.AutoTokenizer.from_pretrained(folder)` load it. We write those JSON files ourselves rather than through
`transformers`: importing `transformers` imports torch, which the tokenizer library must not pull in.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from corpus.shards import open_batches, sha256_file
from tokenizer.config import TokenizerConfig

EOS_TOKEN = "<|endoftext|>"
# Order fixes the ids: eos = 0, pad = 1, mask = 2, cls = 3, sep = 4 (pad/mask/cls/sep serve masked models).
SPECIAL_TOKENS = [EOS_TOKEN, "<pad>", "<mask>", "<cls>", "<sep>"]

# Longer texts are cut into pieces of at most this many characters before training: the tokenizer's memory grows
# with the longest single string it holds (120-250x its size, DESIGN.md section 9).
MAX_CHUNK_CHARS = 1_000_000
# Texts per batch handed to train_from_iterator.
TRAIN_BATCH_TEXTS = 1000
# transformers' own spelling of "no limit" (VERY_LARGE_INTEGER): block sizes are the trainer's business.
MODEL_MAX_LENGTH = int(1e30)
_WHITESPACE = " \n\t\r"


def chunk_text(text: str, max_chars: int = MAX_CHUNK_CHARS) -> Iterator[str]:
    """Pieces of `text`, each at most `max_chars` characters, cut just before whitespace where there is some.

    Cutting *before* the whitespace keeps GPT-2's " word" pre-tokens whole; a window without whitespace is cut hard.
    """
    start = 0
    while len(text) - start > max_chars:
        end = start + max_chars
        cut = max(text.rfind(c, start + 1, end) for c in _WHITESPACE)
        if cut <= start:
            cut = end
        yield text[start:cut]
        start = cut
    if start < len(text):
        yield text[start:]


def _sample_unit(seed: int, doc_id: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, document id): the same documents are drawn on every run."""
    digest = hashlib.blake2b(f"{seed}\x00{doc_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def _eligible(batch: pa.RecordBatch, train_only: bool) -> pa.Array:
    """Rows that may be sampled: non-null text, and (when asked) not in the val split (null split counts as train)."""
    mask = pc.is_valid(batch.column("_text"))
    if train_only and "split" in batch.schema.names:
        mask = pc.and_(mask, pc.fill_null(pc.not_equal(batch.column("split"), "val"), True))
    return mask


def _text_batches(shard_paths: list[Path], column: str) -> Iterator[pa.RecordBatch]:
    """Record batches of the shards with the sampled column renamed `_text` (so `column="id"` cannot collide)."""
    for path in shard_paths:
        for batch in open_batches(path):
            names = ["id", "_text"] + (["split"] if "split" in batch.schema.names else [])
            columns = [batch.column("id"), batch.column(column)] + (
                [batch.column("split")] if "split" in batch.schema.names else []
            )
            yield pa.RecordBatch.from_arrays(columns, names=names)


def eligible_bytes(shard_paths: list[Path], cfg: TokenizerConfig, column: str = "text") -> int:
    """UTF-8 bytes of all sampleable documents, read from the offsets alone (no string is decoded)."""
    total = 0
    for batch in _text_batches(shard_paths, column):
        lengths = pc.binary_length(batch.column("_text")).filter(_eligible(batch, cfg.train_split_only))
        total += pc.sum(lengths).as_py() or 0
    return total


def sample_texts(
    shard_paths: list[Path], cfg: TokenizerConfig, column: str = "text", counts: Counter | None = None
) -> Iterator[str]:
    """A reproducible sample (by `cfg.seed`) of documents, at most `cfg.sample_bytes` UTF-8 bytes in all.

    Streams the shards batch by batch. When the corpus exceeds the budget, a document is drawn when a hash of
    (seed, id) falls under budget/total, which keeps the draw independent of shard order and batch size; a hard
    cap then skips any piece that would overflow the budget. Texts longer than MAX_CHUNK_CHARS come out in pieces.
    `counts`, when given, receives what happened to each document once the generator is exhausted: "sampled",
    "val_split" (held out by train_split_only), "empty_text", "not_drawn" and "over_budget".
    """
    counts = Counter() if counts is None else counts
    total = eligible_bytes(shard_paths, cfg, column)
    rate = cfg.sample_bytes / total if total else 1.0
    taken = 0
    for batch in _text_batches(shard_paths, column):
        eligible = _eligible(batch, cfg.train_split_only)
        n_valid = batch.num_rows - batch.column("_text").null_count
        counts["empty_text"] += batch.num_rows - n_valid
        counts["val_split"] += n_valid - (pc.sum(eligible).as_py() or 0)
        batch = batch.filter(eligible)
        for doc_id, text in zip(batch.column("id").to_pylist(), batch.column("_text").to_pylist(), strict=True):
            if not text:
                counts["empty_text"] += 1
                continue
            if rate < 1.0 and _sample_unit(cfg.seed, doc_id) >= rate:
                counts["not_drawn"] += 1
                continue
            used = False
            for piece in chunk_text(text):
                size = len(piece.encode("utf-8"))
                if taken + size > cfg.sample_bytes:
                    continue
                taken += size
                used = True
                yield piece
            counts["sampled" if used else "over_budget"] += 1


def _training_batches(texts: Iterable[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in texts:
        for piece in chunk_text(text):
            batch.append(piece)
            if len(batch) == TRAIN_BATCH_TEXTS:
                yield batch
                batch = []
    if batch:
        yield batch


def build_tokenizer():
    """An untrained tokenizer assembled from explicit parts; `train_tokenizer` fills in the BPE merges."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizers.NFC()
    # GPT-2 split regex on the raw bytes: every string is representable, no unknown token is ever needed.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer


def _training_pre_tokenizer(max_word_chars: int):
    """The saved pre-tokenizer, preceded by a cut of non-whitespace runs into pieces of `max_word_chars`.

    Used only while training. BPE training dedups words, so natural text is cheap; a long run without whitespace
    (base64, minified code, unspaced scripts) is one huge distinct word that nearly every merge must rescan, and
    training stalls (measured here: 3 MB of letters, > 2 minutes unsplit, ~4 s cut at 64). Tokens are at most
    `max_token_length` long, so cutting far above that loses only the pairs straddling a cut.
    """
    from tokenizers import Regex, pre_tokenizers

    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(rf"\S{{{max_word_chars}}}"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )


def _transformers_files(out_dir: Path) -> None:
    """tokenizer_config.json and special_tokens_map.json: what AutoTokenizer needs besides tokenizer.json."""
    special = {
        "bos_token": EOS_TOKEN,
        "eos_token": EOS_TOKEN,
        "unk_token": EOS_TOKEN,
        "pad_token": "<pad>",
        "mask_token": "<mask>",
        "cls_token": "<cls>",
        "sep_token": "<sep>",
    }
    config = {
        # Known to transformers 4 and 5 alike; loads tokenizer.json as is.
        "tokenizer_class": "PreTrainedTokenizerFast",
        **special,
        "model_max_length": MODEL_MAX_LENGTH,
        "add_prefix_space": False,
        # Older transformers default to True, which rewrites " ," to "," on decode and breaks the round trip.
        "clean_up_tokenization_spaces": False,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (out_dir / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n")


def _sanity_check(path: Path) -> int:
    """Reload the saved file and check a round trip and the pinned special ids; returns the eos id."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(path))
    probe = "Hello world, naïve café 東京 🙂\n\tend"
    ids = tokenizer.encode(probe, add_special_tokens=False).ids
    if tokenizer.decode(ids, skip_special_tokens=False) != probe:
        raise RuntimeError(f"{path}: saved tokenizer does not round-trip {probe!r}")
    for expected_id, token in enumerate(SPECIAL_TOKENS):
        if tokenizer.token_to_id(token) != expected_id:
            raise RuntimeError(f"{path}: {token} has id {tokenizer.token_to_id(token)}, expected {expected_id}")
    return tokenizer.token_to_id(EOS_TOKEN)


def train_tokenizer(texts: Iterable[str], cfg: TokenizerConfig, out_dir: Path) -> dict:
    """Train byte-level BPE on `texts` and save it to `out_dir` (tokenizer.json + transformers config files).

    Returns {"vocab_size": actual size (smaller than asked when the text runs out of pairs), "sha256": of
    tokenizer.json, "eos_id": id of <|endoftext|>}.
    """
    from tokenizers import pre_tokenizers, trainers

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer()
    saved_pre_tokenizer = tokenizer.pre_tokenizer
    tokenizer.pre_tokenizer = _training_pre_tokenizer(cfg.max_word_chars)
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        min_frequency=cfg.min_frequency,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        max_token_length=cfg.max_token_length,
        show_progress=False,
    )
    length = None
    if hasattr(texts, "__len__"):
        length = -(-len(texts) // TRAIN_BATCH_TEXTS)  # batches, a lower bound when long texts are chunked
    tokenizer.train_from_iterator(_training_batches(texts), trainer, length=length)
    tokenizer.pre_tokenizer = saved_pre_tokenizer

    path = out_dir / "tokenizer.json"
    tokenizer.save(str(path))
    _transformers_files(out_dir)
    eos_id = _sanity_check(path)
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    return {"vocab_size": vocab_size, "sha256": sha256_file(path), "eos_id": eos_id}
