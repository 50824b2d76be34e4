"""Token shards to training batches: memory-mapped streams, seeded samplers whose state resumes exactly.

A token shard (DESIGN.md section 4) stores documents' ids in one flat values buffer; read memory-mapped it is
a contiguous token stream. The causal sampler cuts random windows of `block_size + 1` tokens from the stream
of all train shards end to end (documents are separated by EOS, as GPT-2 was trained). The masked sampler
cuts windows inside documents only and pads them, so a sequence never attends across an EOS.

Samplers draw from their own numpy Generator; `state_dict()` is plain JSON (no pickle), and
`load_state_dict()` continues with the very next batch the saved sampler would have drawn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from tokenizer.encode import token_stream

# Positions with this label do not count in the loss (the value torch's cross_entropy ignores by default).
IGNORE_INDEX = -100


@dataclass(frozen=True)
class TokenShardMeta:
    """What a token shard's schema metadata says about the tokenizer that wrote it."""

    vocab_size: int
    eos_id: int
    dtype: str
    tokenizer_sha256: str


def read_token_meta(path: Path) -> TokenShardMeta:
    with pa.memory_map(str(path), "r") as source:
        meta = pa.ipc.open_stream(source).schema.metadata or {}
    meta = {k.decode(): v.decode() for k, v in meta.items()}
    missing = {"vocab_size", "eos_id", "dtype", "tokenizer_sha256"} - meta.keys()
    if missing:
        raise ValueError(
            f"{path}: token shard schema metadata lacks {sorted(missing)}; rewrite it with corpus.document.tokens_schema"
        )
    return TokenShardMeta(int(meta["vocab_size"]), int(meta["eos_id"]), meta["dtype"], meta["tokenizer_sha256"])


class TokenStream:
    """Several token arrays read end to end as one sequence, without copying them together."""

    def __init__(self, parts: list[np.ndarray]):
        self.parts = [p for p in parts if len(p)]
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])  # (n_parts + 1,) start of each part

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def _pieces(self, start: int, stop: int) -> Iterator[np.ndarray]:
        first = int(np.searchsorted(self.offsets, start, side="right")) - 1
        for i in range(first, len(self.parts)):
            lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
            if lo >= stop:
                break
            yield self.parts[i][max(start, lo) - lo : min(stop, hi) - lo]

    def window(self, start: int, length: int) -> np.ndarray:
        """Tokens [start, start + length) as int64 (a copy: the model wants int64 anyway)."""
        assert start >= 0 and start + length <= len(self), f"window {start}+{length} outside a stream of {len(self)}"
        pieces = list(self._pieces(start, start + length))
        return (pieces[0] if len(pieces) == 1 else np.concatenate(pieces)).astype(np.int64)

    def slice(self, start: int, stop: int) -> TokenStream:
        return TokenStream(list(self._pieces(start, stop)))

    def positions_of(self, token_id: int) -> np.ndarray:
        """Stream positions holding `token_id` (one pass over the data; used to find document ends)."""
        found = [np.flatnonzero(p == token_id) + off for p, off in zip(self.parts, self.offsets[:-1], strict=False)]
        return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)


def shard_paths(split_dir: Path) -> list[Path]:
    return sorted(Path(split_dir).glob("*.arrow"))


def load_stream(split_dir: Path) -> TokenStream:
    return TokenStream([token_stream(p) for p in shard_paths(split_dir)])


def load_splits(tokens_dir: Path, min_tokens: int, log: Callable[[str], None] = print) -> tuple[TokenStream, TokenStream, str]:
    """Train and val streams and where val came from ("val" or "train_tail").

    A val split too short for one window is replaced by the tail of train.

    The tail is then cut off train (when train stays long enough), so val loss still measures held-out text.
    """
    tokens_dir = Path(tokens_dir)
    if not shard_paths(tokens_dir / "train"):
        raise FileNotFoundError(f"no token shards in {tokens_dir / 'train'}; run the tokens stage first")
    train = load_stream(tokens_dir / "train")
    if len(train) < min_tokens:
        raise ValueError(
            f"train split has {len(train)} tokens, fewer than one window of {min_tokens}; "
            "lower pretrain.block_size or give the pipeline more text"
        )
    val = load_stream(tokens_dir / "val")
    if len(val) >= min_tokens:
        return train, val, "val"
    n_tail = max(min_tokens, len(train) // 10)
    log(
        f"warning: val split has {len(val)} tokens, fewer than one window of {min_tokens}; "
        f"evaluating on the last {min(n_tail, len(train))} tokens of train instead"
    )
    if len(train) - n_tail >= min_tokens:
        return train.slice(0, len(train) - n_tail), train.slice(len(train) - n_tail, len(train)), "train_tail"
    log("warning: train is too short to hold out a tail; val overlaps train and val loss is not held out")
    return train, train.slice(max(0, len(train) - n_tail), len(train)), "train_tail"


class _SeededSampler:
    """Owns the random generator; subclasses say how a batch is cut."""

    kind = ""

    def __init__(self, seed: int, shape: dict):
        self.rng = np.random.default_rng(seed)
        self.shape = shape  # what a saved state must match to be resumable here
        self.batches_drawn = 0

    def next_batch(self) -> dict[str, np.ndarray]:
        batch = self._draw()
        self.batches_drawn += 1
        return batch

    def _draw(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {"kind": self.kind, "shape": self.shape, "batches_drawn": self.batches_drawn, "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        if state["kind"] != self.kind or state["shape"] != self.shape:
            raise ValueError(
                f"sampler state is for {state['kind']} {state['shape']}, this sampler is {self.kind} {self.shape}; "
                "the data or batch settings changed since the checkpoint: resume=False starts over"
            )
        self.rng.bit_generator.state = state["rng"]
        self.batches_drawn = state["batches_drawn"]


class CausalSampler(_SeededSampler):
    """Random windows of block_size + 1 tokens: input_ids = window[:-1], labels = window[1:]."""

    kind = "causal"

    def __init__(self, stream: TokenStream, block_size: int, batch_size: int, seed: int):
        assert len(stream) >= block_size + 1, f"stream of {len(stream)} tokens is shorter than one window of {block_size + 1}"
        super().__init__(seed, {"n_tokens": len(stream), "block_size": block_size, "batch_size": batch_size})
        self.stream, self.block_size, self.batch_size = stream, block_size, batch_size

    def _draw(self) -> dict[str, np.ndarray]:
        # integers' high is exclusive: the last window starts at len - (block_size + 1).
        starts = self.rng.integers(0, len(self.stream) - self.block_size, size=self.batch_size)
        windows = np.stack([self.stream.window(int(s), self.block_size + 1) for s in starts])  # (B, T+1)
        return {"input_ids": windows[:, :-1], "labels": windows[:, 1:]}


def eval_windows(stream: TokenStream, block_size: int, n_windows: int) -> np.ndarray:
    """Fixed evaluation windows (n, block_size + 1), evenly spread over the stream: no randomness to restore."""
    last_start = len(stream) - (block_size + 1)
    assert last_start >= 0, f"stream of {len(stream)} tokens is shorter than one window of {block_size + 1}"
    starts = np.linspace(0, last_start, n_windows).round().astype(np.int64)
    return np.stack([stream.window(int(s), block_size + 1) for s in starts])


def causal_eval_batches(windows: np.ndarray, batch_size: int) -> list[dict[str, np.ndarray]]:
    return [
        {"input_ids": windows[i : i + batch_size, :-1], "labels": windows[i : i + batch_size, 1:]}
        for i in range(0, len(windows), batch_size)
    ]


# --- masked language modelling -------------------------------------------------------------------------------


def document_windows(stream: TokenStream, eos_id: int, block_size: int, min_length: int = 2) -> np.ndarray:
    """(n, 2) [start, length] of windows that never cross a document end; each document's EOS stays in it.

    A document longer than block_size is cut into consecutive windows; pieces shorter than min_length are
    dropped (a lone EOS teaches nothing).
    """
    ends = stream.positions_of(eos_id) + 1  # exclusive end of each document
    if len(ends) == 0 or ends[-1] != len(stream):
        ends = np.append(ends, len(stream))  # text after the last EOS is a document too
    starts = np.concatenate([[0], ends[:-1]])
    lengths = ends - starts
    n_pieces = -(-lengths // block_size)  # ceil
    doc_of_piece = np.repeat(np.arange(len(starts)), n_pieces)
    piece_in_doc = np.arange(len(doc_of_piece)) - np.repeat(np.cumsum(n_pieces) - n_pieces, n_pieces)
    piece_starts = starts[doc_of_piece] + piece_in_doc * block_size
    piece_lengths = np.minimum(block_size, ends[doc_of_piece] - piece_starts)
    keep = piece_lengths >= min_length
    return np.stack([piece_starts[keep], piece_lengths[keep]], axis=1).astype(np.int64)


@dataclass(frozen=True)
class Masking:
    mask_prob: float  # fraction of real tokens selected as targets
    mask_id: int
    pad_id: int
    vocab_size: int  # real tokenizer vocabulary: random replacements come from here, not from the padded rows
    special_ids: tuple[int, ...]  # never selected for prediction (EOS, pad, mask, ...)


def pack_windows(stream: TokenStream, windows: np.ndarray, block_size: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Windows copied into a padded (n, block_size) array, with the attention mask (1 = token, 0 = pad)."""
    ids = np.full((len(windows), block_size), pad_id, dtype=np.int64)
    attention = np.zeros((len(windows), block_size), dtype=np.int64)
    for row, (start, length) in enumerate(windows):
        ids[row, :length] = stream.window(int(start), int(length))
        attention[row, :length] = 1
    return ids, attention


def mask_tokens(ids: np.ndarray, attention: np.ndarray, rng: np.random.Generator, masking: Masking) -> dict[str, np.ndarray]:
    """BERT masking: mask_prob of the real tokens become targets; of those 80% <mask>, 10% random, 10% kept."""
    candidates = (attention == 1) & ~np.isin(ids, masking.special_ids)
    selected = candidates & (rng.random(ids.shape) < masking.mask_prob)
    labels = np.where(selected, ids, IGNORE_INDEX)
    roll = rng.random(ids.shape)
    to_mask = selected & (roll < 0.8)
    to_random = selected & (roll >= 0.8) & (roll < 0.9)
    inputs = ids.copy()
    inputs[to_mask] = masking.mask_id
    # Random replacements are ordinary tokens: a stray <pad> would also shift RoBERTa's position ids.
    ordinary = np.setdiff1d(np.arange(masking.vocab_size), masking.special_ids)
    inputs[to_random] = ordinary[rng.integers(0, len(ordinary), size=int(to_random.sum()))]
    return {"input_ids": inputs, "attention_mask": attention, "labels": labels}


class MaskedSampler(_SeededSampler):
    """Random document windows, padded to block_size, masked afresh every draw."""

    kind = "masked"

    def __init__(self, stream: TokenStream, windows: np.ndarray, block_size: int, batch_size: int, masking: Masking, seed: int):
        assert len(windows) > 0, "no document window of at least two tokens"
        shape = {"n_tokens": len(stream), "n_windows": len(windows), "block_size": block_size, "batch_size": batch_size}
        super().__init__(seed, shape)
        self.stream, self.windows, self.masking = stream, windows, masking
        self.block_size, self.batch_size = block_size, batch_size

    def _draw(self) -> dict[str, np.ndarray]:
        picked = self.windows[self.rng.integers(0, len(self.windows), size=self.batch_size)]
        ids, attention = pack_windows(self.stream, picked, self.block_size, self.masking.pad_id)
        return mask_tokens(ids, attention, self.rng, self.masking)


def masked_eval_batches(
    stream: TokenStream, windows: np.ndarray, block_size: int, batch_size: int, n_batches: int, masking: Masking, seed: int
) -> list[dict[str, np.ndarray]]:
    """Fixed evaluation batches: evenly spread document windows with one fixed masking, the same every eval."""
    n = min(len(windows), batch_size * n_batches)
    picked = windows[np.linspace(0, len(windows) - 1, n).round().astype(np.int64)]
    ids, attention = pack_windows(stream, picked, block_size, masking.pad_id)
    batch = mask_tokens(ids, attention, np.random.default_rng(seed), masking)
    return [{k: v[i : i + batch_size] for k, v in batch.items()} for i in range(0, n, batch_size)]
