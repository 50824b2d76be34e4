"""Pretraining on real English text: the sampler, the schedule, learning, exact resume, checkpoints that load.

Token shards are built here from a Project Gutenberg book with a 512-token byte-level BPE trained in the test,
so the model (tiny preset) trains in seconds on a CPU.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from corpus.document import tokens_schema
from corpus.shards import read_table, write_stream
from tokenizer.encode import token_stream
from training.config import PretrainConfig
from training.data import (
    IGNORE_INDEX,
    CausalSampler,
    Masking,
    TokenStream,
    document_windows,
    eval_windows,
    load_splits,
    mask_tokens,
    read_token_meta,
)

BOOK = Path("english-text") / "gutenberg" / "pg1342-pride-and-prejudice.txt"
SPECIALS = ["<|endoftext|>", "<pad>", "<mask>"]


def _book_documents(shared_data: Path, n_chars: int = 300_000, doc_chars: int = 3000) -> list[str]:
    """The book's body (Gutenberg header and licence cut off) as documents of a few paragraphs each."""
    text = (shared_data / BOOK).read_text(encoding="utf-8-sig").replace("\r\n", "\n")
    body = text.split("*** START OF THIS PROJECT GUTENBERG EBOOK")[1].split("***", 1)[1]
    body = body.split("*** END OF THIS PROJECT GUTENBERG EBOOK")[0][:n_chars]
    docs, current = [], ""
    for paragraph in body.split("\n\n"):
        current += paragraph.strip() + "\n\n"
        if len(current) >= doc_chars:
            docs.append(current.strip())
            current = ""
    return docs


def _train_tokenizer(docs: list[str], out: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=SPECIALS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(docs, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=SPECIALS[0], pad_token=SPECIALS[1], mask_token=SPECIALS[2])
    fast.save_pretrained(str(out))


def _write_token_shard(path: Path, ids_per_doc: list[list[int]], schema: pa.Schema) -> None:
    batch = pa.record_batch(
        [pa.array([f"doc-{i}" for i in range(len(ids_per_doc))]), pa.array(ids_per_doc, type=schema.field("input_ids").type)],
        schema=schema,
    )
    write_stream(path, schema, [batch])


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine, two spinning threads made a step 5x slower (measured)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, shared_data):
    """tokenizer/ and tokens/{train,val}/ as the pipeline lays them out: two train shards, one val shard."""
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("corpus")
    docs = _book_documents(shared_data)
    _train_tokenizer(docs, root / "tokenizer")
    tokenizer = AutoTokenizer.from_pretrained(str(root / "tokenizer"))
    eos = tokenizer.convert_tokens_to_ids(SPECIALS[0])
    sha = hashlib.sha256((root / "tokenizer" / "tokenizer.json").read_bytes()).hexdigest()
    schema = tokens_schema(len(tokenizer), tokenizer_sha256=sha, eos_id=eos)
    ids = [tokenizer(doc)["input_ids"] + [eos] for doc in docs]
    n_val = len(ids) // 10
    train, val = ids[:-n_val], ids[-n_val:]
    for split, shards in (("train", [train[: len(train) // 2], train[len(train) // 2 :]]), ("val", [val])):
        (root / "tokens" / split).mkdir(parents=True)
        for i, shard in enumerate(shards):
            _write_token_shard(root / "tokens" / split / f"shard-{i:05d}.arrow", shard, schema)
    return root


def _cfg(**overrides) -> PretrainConfig:
    base = {
        "preset": "tiny",
        "device": "cpu",
        "batch_size": 8,
        "block_size": 64,
        "lr": 3e-3,
        "min_lr": 3e-4,
        "warmup_steps": 5,
        "eval_batches": 2,
        "log_every": 1,
    }
    return PretrainConfig(**{**base, **overrides})


# --- pure parts -------------------------------------------------------------------------------------------


def test_lr_schedule_pins_warmup_cosine_and_floor():
    from training.pretrain import lr_at

    cfg = PretrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=110)
    before = cfg.model_dump()
    # Asked out of order, to show that no call depends on an earlier one (a pure function of the step).
    got = {step: lr_at(step, cfg) for step in (110, 0, 85, 10, 500, 35, 9, 60, 4, 109, 11)}
    assert got == pytest.approx(
        {
            0: 1e-3 / 11,  # warmup starts at lr / (warmup_steps + 1), not at 0 (a first step with lr 0 is wasted)
            4: 5e-3 / 11,  # linear
            9: 10e-3 / 11,  # last warmup step
            10: 1e-3,  # warmup ends at the peak
            11: 1e-4 + 9e-4 * (1 + math.cos(math.pi / 100)) / 2,  # 9.9978e-4: the cosine has begun
            35: 8.681981e-4,  # a quarter of the way down: floor + (peak - floor) * (1 + cos(pi/4)) / 2
            60: 5.5e-4,  # half way: the mean of peak and floor
            85: 2.318019e-4,  # three quarters: floor + (peak - floor) * (1 - cos(pi/4)) / 2
            109: 1.0022205e-4,  # one step before the end, just above the floor
            110: 1e-4,  # max_steps: the floor
            500: 1e-4,  # and the floor after it
        },
        rel=1e-6,
    )
    assert cfg.model_dump() == before
    steps = [lr_at(s, cfg) for s in range(10, 120)]
    assert all(a > b for a, b in zip(steps[:100], steps[1:101]))  # strictly down from the peak to the floor
    assert steps[100:] == [1e-4] * 10


def test_bits_per_byte_and_flops_numbers():
    from training.model import flops_per_token, mfu, padded_vocab_size, peak_flops
    from training.pretrain import bits_per_byte

    assert bits_per_byte(math.log(2), 100, 100) == pytest.approx(1.0)
    assert bits_per_byte(3.0, 1000, 4000) == pytest.approx(3.0 / 4 / math.log(2))
    # GPT-2 124M at T=1024: 6 * 85M + 12 * 12 * 768 * 1024
    assert flops_per_token(85_000_000, 12, 768, 1024) == 6 * 85_000_000 + 113_246_208
    assert peak_flops("NVIDIA H200") == 989e12
    assert peak_flops("NVIDIA H100 80GB HBM3") == 989e12
    assert peak_flops("NVIDIA H100 PCIe") == 756e12
    assert peak_flops("NVIDIA A100-SXM4-80GB") == 312e12
    assert peak_flops("x86_64") is None
    assert mfu(1000.0, 1e9, None) is None
    assert mfu(1e5, 1e9, 1e15) == pytest.approx(0.1)
    assert [padded_vocab_size(v) for v in (512, 513, 1024, 50257)] == [512, 576, 1024, 50304]


def test_token_stream_reads_windows_across_shards_and_sampler_state_resumes():
    stream = TokenStream([np.arange(0, 10, dtype=np.uint16), np.arange(10, 25, dtype=np.uint16)])
    assert len(stream) == 25
    assert stream.window(8, 5).tolist() == [8, 9, 10, 11, 12]
    assert stream.slice(20, 25).window(0, 5).tolist() == [20, 21, 22, 23, 24]
    sampler = CausalSampler(stream, block_size=4, batch_size=3, seed=7)
    batch = sampler.next_batch()
    assert batch["input_ids"].shape == (3, 4) and batch["input_ids"].dtype == np.int64
    # the stream counts up by one, so each label is its input plus one: labels are the next tokens
    assert (batch["labels"] == batch["input_ids"] + 1).all()
    sampler.next_batch()
    saved = json.loads(json.dumps(sampler.state_dict()))  # the state is plain JSON
    expected = [sampler.next_batch()["input_ids"] for _ in range(3)]
    other = CausalSampler(stream, block_size=4, batch_size=3, seed=999)
    other.load_state_dict(saved)
    assert all((other.next_batch()["input_ids"] == e).all() for e in expected)
    with pytest.raises(ValueError, match="resume=False"):
        CausalSampler(stream, block_size=5, batch_size=3, seed=7).load_state_dict(saved)
    windows = eval_windows(stream, block_size=4, n_windows=3)
    assert windows[:, 0].tolist() == [0, 10, 20]  # spread evenly, first and last window included


def test_document_windows_never_cross_an_eos_and_masking_is_80_10_10():
    eos = 0
    stream = TokenStream([np.array([5, 6, 7, eos, 8, 9, 10, 11, 12, eos, eos, 13], dtype=np.uint16)])
    # documents [5 6 7 eos] [8 .. 12 eos] [eos] [13]: cut at 4 tokens; the lone eos and the lone 13 are too short
    assert document_windows(stream, eos, block_size=4).tolist() == [[0, 4], [4, 4], [8, 2]]

    rng = np.random.default_rng(0)
    masking = Masking(mask_prob=0.15, mask_id=2, pad_id=1, vocab_size=500, special_ids=(0, 1, 2))
    ids = rng.integers(3, 500, size=(200, 100))
    ids[:, -10:] = 1  # padding
    attention = (ids != 1).astype(np.int64)
    batch = mask_tokens(ids, attention, np.random.default_rng(1), masking)
    targets = batch["labels"] != IGNORE_INDEX
    assert not targets[:, -10:].any()  # padding is never a target
    assert targets.sum() / attention.sum() == pytest.approx(0.15, abs=0.01)
    assert (batch["labels"][targets] == ids[targets]).all()
    as_mask = (batch["input_ids"] == 2) & targets
    kept = (batch["input_ids"] == ids) & targets
    assert as_mask.sum() / targets.sum() == pytest.approx(0.8, abs=0.02)
    assert kept.sum() / targets.sum() == pytest.approx(0.1 + 0.1 / 500, abs=0.02)
    assert (batch["input_ids"][~targets] == ids[~targets]).all()
    assert not np.isin(batch["input_ids"][targets & ~as_mask], masking.special_ids).any()  # random ones are ordinary


def test_param_groups_do_not_decay_biases_norms_or_embeddings():
    from training.model import build_causal_lm, param_groups

    model = build_causal_lm("tiny", vocab_size=500, block_size=64, eos_id=0)
    decay, plain = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    first_two = sorted(names[id(p)] for p in decay["params"])[:2]
    assert first_two == ["transformer.h.0.attn.c_attn.weight", "transformer.h.0.attn.c_proj.weight"]
    assert all(names[id(p)].endswith(".weight") and "ln_" not in names[id(p)] for p in decay["params"])
    plain_names = {names[id(p)] for p in plain["params"]}
    assert {"transformer.wte.weight", "transformer.wpe.weight", "transformer.ln_f.weight"} <= plain_names
    assert {"transformer.h.0.ln_1.bias", "transformer.h.0.attn.c_attn.bias"} <= plain_names
    assert len(decay["params"]) + len(plain["params"]) == len(list(model.parameters()))
    assert model.config.vocab_size == 512 and model.config.n_positions == 256


# --- real shards ------------------------------------------------------------------------------------------


def test_shards_read_zero_copy_and_val_falls_back_to_train_tail(corpus, tmp_path):
    train_shard = corpus / "tokens" / "train" / "shard-00000.arrow"
    ids = token_stream(train_shard)
    assert ids.dtype == np.uint16 and not ids.flags.owndata  # a view of the memory-mapped file
    meta = read_token_meta(train_shard)
    assert meta.vocab_size == 512 and meta.dtype == "uint16"
    first_doc = read_table(train_shard).column("input_ids")[0].as_py()
    assert ids[: len(first_doc)].tolist() == first_doc and first_doc[-1] == meta.eos_id
    assert len(ids) > 50_000 and int(ids.max()) < 512

    tokens = tmp_path / "tokens"
    (tokens / "val").mkdir(parents=True)
    (tokens / "train").symlink_to(corpus / "tokens" / "train")
    schema = pa.ipc.open_stream(pa.memory_map(str(train_shard))).schema
    _write_token_shard(tokens / "val" / "shard-00000.arrow", [[1, 2, 3]], schema)
    logged = []
    train, val, source = load_splits(tokens, 65, logged.append)
    full = len(TokenStream([token_stream(p) for p in sorted((tokens / "train").glob("*.arrow"))]))
    assert source == "train_tail" and "warning" in logged[0]
    assert len(train) + len(val) == full and len(val) == max(65, full // 10)


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    from training.pretrain import pretrain

    out = tmp_path_factory.mktemp("model")
    logged = []
    cfg = _cfg(max_steps=100, batch_size=16, eval_every=50, log_every=10)
    metrics = pretrain(cfg, corpus / "tokens", corpus / "tokenizer", out, log=logged.append)
    return out, metrics, logged


def _unigram_cross_entropy(corpus: Path) -> float:
    """Val loss of the best model that ignores context: train token frequencies (add-one smoothed)."""
    train, val, _ = load_splits(corpus / "tokens", 2)
    counts = np.bincount(np.concatenate(train.parts), minlength=512) + 1.0
    log_p = np.log(counts / counts.sum())
    return float(-log_p[np.concatenate(val.parts)].mean())


def test_loss_starts_at_ln_vocab_and_drops_below_what_token_frequencies_explain(corpus, trained):
    out, metrics, logged = trained
    ln_vocab = math.log(512)
    assert abs(metrics["initial_val_loss"] - ln_vocab) < 0.5
    assert abs(metrics["train_loss"][0][1] - ln_vocab) < 0.5
    # 100 steps of 1,024 tokens: past the unigram plateau, so the model uses context
    unigram = _unigram_cross_entropy(corpus)
    assert 5.0 < unigram < 5.5
    assert metrics["final_val_loss"] < unigram - 0.1, (metrics["val_loss"], unigram)
    assert 1.0 < metrics["val_bits_per_byte"] < 3.5  # about 2 bytes per token with 512 tokens
    assert metrics["steps"] == 100 and metrics["mfu"] is None and metrics["device"] == "cpu"
    assert metrics["tokens_per_second"] > 0
    saved = json.loads((out / "metrics.json").read_text())
    assert {"steps", "initial_val_loss", "final_val_loss", "val_bits_per_byte", "tokens_per_second", "mfu"} <= saved.keys()
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in lines if e["kind"] == "eval"] == [0, 50, 100]
    assert any(line.startswith("step 90/100 | loss") and "tok/s" in line for line in logged)


def test_checkpoint_loads_with_auto_classes_and_gives_identical_logits(trained):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out, _, _ = trained
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    model = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    ids = torch.tensor([tokenizer("It is a truth universally acknowledged")["input_ids"]])
    reloaded = AutoModelForCausalLM.from_pretrained(str(out / "trainer_state" / "step-00000100" / "model")).eval()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reloaded(ids).logits)
    # the exported weights are the checkpoint's, not a copy of something else
    assert torch.equal(
        load_file(str(out / "model.safetensors"))["transformer.h.0.attn.c_attn.weight"], model.transformer.h[0].attn.c_attn.weight
    )
    assert (out / "trainer_state" / "latest").read_text() == "step-00000100\n"
    assert sorted(p.name for p in (out / "trainer_state").iterdir()) == ["latest", "step-00000100"]
    generated = model.generate(ids, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert generated.shape == (1, ids.shape[1] + 8)


class _Killed(Exception):
    pass


def _kill_at(step: int):
    def log(line: str) -> None:
        if line.startswith(f"step {step}/") and "| loss" in line:
            raise _Killed(line)

    return log


def test_a_run_killed_and_resumed_equals_an_uninterrupted_run(corpus, tmp_path):
    from training.pretrain import pretrain

    cfg = _cfg(max_steps=12, eval_every=6, eval_batches=1)
    whole = pretrain(cfg, corpus / "tokens", corpus / "tokenizer", tmp_path / "whole", log=lambda _: None)

    with pytest.raises(_Killed):  # dies after the checkpoint at step 6, with steps 6..8 done and lost
        pretrain(cfg, corpus / "tokens", corpus / "tokenizer", tmp_path / "killed", log=_kill_at(8))
    resumed = pretrain(cfg, corpus / "tokens", corpus / "tokenizer", tmp_path / "killed", log=lambda _: None)

    assert resumed["resumed_from_step"] == 6
    assert [s for s, _ in resumed["train_loss"]] == list(range(12))
    np.testing.assert_allclose([v for _, v in resumed["train_loss"]], [v for _, v in whole["train_loss"]], rtol=0, atol=1e-6)
    assert resumed["final_val_loss"] == pytest.approx(whole["final_val_loss"], abs=1e-6)
    jsonl = [json.loads(line) for line in (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert [e["step"] for e in jsonl if e["kind"] == "train"] == list(range(12))  # the lost steps' lines are gone

    # a finished run resumed again trains nothing and reports the same numbers
    again = pretrain(cfg, corpus / "tokens", corpus / "tokenizer", tmp_path / "killed", log=lambda _: None)
    assert again["final_val_loss"] == resumed["final_val_loss"] and again["train_loss"] == resumed["train_loss"]

    with pytest.raises(ValueError, match="resume=False"):
        pretrain(
            _cfg(max_steps=12, eval_every=6, eval_batches=1, block_size=32),
            corpus / "tokens",
            corpus / "tokenizer",
            tmp_path / "killed",
            log=lambda _: None,
        )


def test_a_kill_while_saving_leaves_the_previous_checkpoint_usable(corpus, tmp_path, monkeypatch):
    from training import checkpoint
    from training.pretrain import pretrain

    cfg = _cfg(max_steps=6, eval_every=3, eval_batches=1)
    real_write = checkpoint.write_optimizer
    calls = []

    def dies_on_second_save(directory, optimizer):
        calls.append(directory)
        if len(calls) == 2:
            raise _Killed("killed while writing the step-6 checkpoint")
        real_write(directory, optimizer)

    monkeypatch.setattr(checkpoint, "write_optimizer", dies_on_second_save)
    with pytest.raises(_Killed):
        pretrain(cfg, corpus / "tokens", corpus / "tokenizer", tmp_path / "out", log=lambda _: None)
    assert checkpoint.load_latest(tmp_path / "out").state["step"] == 3
    monkeypatch.setattr(checkpoint, "write_optimizer", real_write)
    metrics = pretrain(cfg, corpus / "tokens", corpus / "tokenizer", tmp_path / "out", log=lambda _: None)
    assert metrics["resumed_from_step"] == 3 and metrics["steps"] == 6
    assert not [p for p in (tmp_path / "out" / "trainer_state").iterdir() if p.name.startswith(".tmp-")]


def test_masked_objective_trains_roberta_on_document_windows(corpus, tmp_path):
    from transformers import AutoModelForMaskedLM

    from training.pretrain import pretrain

    cfg = _cfg(objective="masked", max_steps=30, eval_every=30, log_every=10, lr=2e-3)
    metrics = pretrain(cfg, corpus / "tokens", corpus / "tokenizer", tmp_path / "mlm", log=lambda _: None)
    assert abs(metrics["initial_val_loss"] - math.log(512)) < 0.5
    assert metrics["final_val_loss"] < metrics["initial_val_loss"] - 1.0
    assert metrics["val_bits_per_byte"] is None
    model = AutoModelForMaskedLM.from_pretrained(str(tmp_path / "mlm"))
    assert type(model).__name__ == "RobertaForMaskedLM"


@pytest.mark.parametrize("architecture", ["roberta", "bert"])
def test_masked_loss_on_target_positions_equals_the_loss_over_full_logits(architecture):
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from training.model import MaskedLoss, build_masked_lm, lm_loss

    torch.manual_seed(0)
    if architecture == "roberta":
        model = build_masked_lm("tiny", vocab_size=300, block_size=32, eos_id=0, pad_id=1)
    else:  # a user's BERT checkpoint names its head `cls`, not `lm_head`
        model = BertForMaskedLM(BertConfig(vocab_size=320, hidden_size=64, num_hidden_layers=1, num_attention_heads=2, intermediate_size=128))
    model.eval()
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 300, size=(3, 32))
    attention = np.ones_like(ids)
    attention[2, 20:] = 0
    ids[2, 20:] = 1
    batch = mask_tokens(ids, attention, rng, Masking(0.15, mask_id=2, pad_id=1, vocab_size=300, special_ids=(0, 1, 2)))
    batch = {k: torch.from_numpy(v) for k, v in batch.items()}
    with torch.no_grad():
        sparse_sum, sparse_n = MaskedLoss(model)(**batch)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        full_sum, full_n = lm_loss(logits, batch["labels"])
    assert int(sparse_n) == int(full_n) == int((batch["labels"] != IGNORE_INDEX).sum()) > 0
    assert float(sparse_sum) == pytest.approx(float(full_sum), rel=1e-5)
