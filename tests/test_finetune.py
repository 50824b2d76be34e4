"""Fine-tuning for sequence classification: tables in four formats, splits, scores, and real SST-2 runs.

The end-to-end runs start from (a) our tiny GPT-2, pretrained here for a few seconds on token shards of the
English books with the pipeline's own tokenizer trainer, and (b) a classic BERT folder (config.json, weights,
vocab.txt, tokenizer_config.json) made here with random weights and a WordPiece vocabulary.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_training import _write_token_shard, one_torch_thread  # noqa: F401 (one_torch_thread: autouse fixture)

from corpus.document import tokens_schema
from training.config import FinetuneConfig, PretrainConfig
from training.finetune import (
    accuracy,
    finetune,
    label_key,
    label_names,
    length_bucketed_batches,
    linear_lr,
    load_splits,
    macro_f1,
    majority_baseline,
    pad_batch,
    read_labelled,
    stratified_sample,
    stratified_split,
)

SST2 = Path("classification") / "sst2-glue"
TEXTS = ["gutenberg/pg1342-pride-and-prejudice.txt", "gutenberg/pg2701-moby-dick.txt", "wikitext-2/valid.txt"]


# --- pure parts -----------------------------------------------------------------------------------------------


def test_scores_on_literal_predictions():
    gold = np.array([0, 0, 1, 1, 2])
    predicted = np.array([0, 1, 1, 1, 0])
    assert accuracy(gold, predicted) == pytest.approx(0.6)
    # F1 per class: 0 -> 2*1/(2+1+1) = 0.5; 1 -> 2*2/(4+1+0) = 0.8; 2 -> never predicted right = 0
    assert macro_f1(gold, predicted, 3) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert macro_f1(gold, gold, 3) == 1.0
    assert macro_f1(np.array([1, 1]), np.array([1, 1]), 2) == pytest.approx(0.5)  # class 0 absent on both sides scores 0
    assert majority_baseline(np.array([1, 1, 0]), np.array([1, 0, 1, 2])) == 0.5  # train says 1; half of dev is 1


def test_labels_keep_integer_ids_and_one_spelling_per_class():
    assert [label_key(v) for v in (1, 1.0, "1", True, " pos ", 2.5)] == ["1", "1", "1", "1", "pos", "2.5"]
    assert label_names(["10", "2", "0", "2"]) == ["0", "2", "10"]  # numeric order: 0/1 labels keep ids 0/1
    assert label_names(["pos", "neg", "neutral"]) == ["neg", "neutral", "pos"]
    assert label_names(["1", "x"]) == ["1", "x"]


def test_stratified_split_and_sample_keep_class_shares_and_follow_the_seed():
    labels = np.array([0] * 80 + [1] * 19 + [2])
    train, held_out = stratified_split(labels, 0.1, np.random.default_rng(0))
    assert np.bincount(labels[held_out], minlength=3).tolist() == [8, 2, 0]  # the single class-2 row stays in train
    assert len(np.intersect1d(train, held_out)) == 0 and len(train) + len(held_out) == 100
    again, _ = stratified_split(labels, 0.1, np.random.default_rng(0))
    other, _ = stratified_split(labels, 0.1, np.random.default_rng(1))
    assert (again == train).all() and not np.array_equal(other, train)

    picked = stratified_sample(labels, 10, np.random.default_rng(0))
    assert np.bincount(labels[picked], minlength=3).tolist() == [8, 2, 0]  # 8.0, 1.9, 0.1 by largest remainder
    assert (np.diff(picked) > 0).all()
    assert len(stratified_sample(labels, 500, np.random.default_rng(0))) == 100


def test_linear_schedule_warms_up_then_decays_to_zero():
    lrs = [linear_lr(step, total_steps=10, warmup_steps=2, peak=1.0) for step in range(11)]
    assert lrs[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert lrs[2:] == pytest.approx([1.0, 7 / 8, 6 / 8, 5 / 8, 4 / 8, 3 / 8, 2 / 8, 1 / 8, 0.0])


def test_length_bucketed_batches_cover_every_row_once_with_little_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 200, size=1000).tolist()
    batches = length_bucketed_batches(lengths, 32, np.random.default_rng(0), pool_batches=10)
    rows = np.concatenate(batches)
    assert sorted(rows.tolist()) == list(range(1000)) and max(len(b) for b in batches) == 32
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    shuffled = np.random.default_rng(1).permutation(1000)
    padded_random = sum(32 * max(lengths[i] for i in shuffled[s : s + 32]) for s in range(0, 1000, 32))
    assert padded < 0.7 * padded_random  # random batches pad most rows to nearly 200
    same = length_bucketed_batches(lengths, 32, np.random.default_rng(0), pool_batches=10)
    assert all((a == b).all() for a, b in zip(batches, same, strict=True))

    ids, attention = pad_batch([[5, 6, 7], [8]], pad_id=1)
    assert ids.tolist() == [[5, 6, 7], [8, 1, 1]] and attention.tolist() == [[1, 1, 1], [1, 0, 0]]


# --- reading tables -------------------------------------------------------------------------------------------

ROWS = [("a fine, \"quiet\" film", "pos"), ("1984", "neg"), ("dull", "neg"), ("it works", "pos")]


def test_csv_tsv_jsonl_and_parquet_read_alike(tmp_path):
    texts = [t for t, _ in ROWS]
    labels = [lab for _, lab in ROWS]
    pa_table = pa.table({"id": [1, 2, 3, 4], "review": texts, "sentiment": labels})
    pq.write_table(pa_table, tmp_path / "t.parquet")
    import pyarrow.csv as pcsv

    pcsv.write_csv(pa_table, tmp_path / "t.csv")
    # TSV as GLUE writes it: no quoting, a quote is an ordinary character
    (tmp_path / "t.tsv").write_text("id\treview\tsentiment\n" + "".join(f"{i}\t{t}\t{lab}\n" for i, (t, lab) in enumerate(ROWS)))
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps({"review": t, "sentiment": lab}) for t, lab in ROWS) + "\n\n")
    for name in ("t.parquet", "t.csv", "t.tsv", "t.jsonl"):
        assert read_labelled(tmp_path / name, "review", "sentiment") == (texts, labels), name

    # integer labels from one format and strings from another name the same classes
    (tmp_path / "ints.jsonl").write_text('{"text": "a", "label": 1}\n{"text": "b", "label": "0"}\n{"text": "c", "label": 1.0}\n')
    assert read_labelled(tmp_path / "ints.jsonl", "text", "label") == (["a", "b", "c"], ["1", "0", "1"])


def test_bad_inputs_are_value_errors_that_name_the_file_and_column(tmp_path, shared_data):
    good = tmp_path / "good.csv"
    good.write_text("text,label\ngood,1\nbad,0\nfine,1\nawful,0\n")
    with pytest.raises(ValueError, match=r"good\.csv: no column 'sentence'.*text_column"):
        # raised before any model is loaded: the folder does not even exist
        finetune(FinetuneConfig(data=str(good), text_column="sentence"), tmp_path / "no-model", tmp_path / "out")

    one_class = tmp_path / "one.tsv"
    one_class.write_text("text\tlabel\na\t1\nb\t1\nc\t1\n")
    with pytest.raises(ValueError, match=r"one\.tsv: column 'label' holds one class only \('1'\)"):
        load_splits(FinetuneConfig(data=str(one_class)), log=lambda _: None)

    with pytest.raises(ValueError, match=r"p03_truncated_footer\.parquet: cannot read it as parquet"):
        read_labelled(shared_data / "malformed" / "p03_truncated_footer.parquet", "text", "label")
    with pytest.raises(ValueError, match=r"j07_invalid_utf8\.jsonl: not UTF-8"):
        read_labelled(shared_data / "malformed" / "j07_invalid_utf8.jsonl", "text", "label")
    with pytest.raises(ValueError, match=r"j06_deep_nesting_100k\.jsonl: line 2 is not JSON \(RecursionError"):
        read_labelled(shared_data / "malformed" / "j06_deep_nesting_100k.jsonl", "text", "label")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"text,label\n\xff\xfe\x00bad,1\n")
    with pytest.raises(ValueError, match=r"binary\.csv: cannot read it as csv"):
        read_labelled(binary, "text", "label")
    with pytest.raises(ValueError, match=r"missing\.csv: no such file"):
        read_labelled(tmp_path / "missing.csv", "text", "label")
    with pytest.raises(ValueError, match=r"unknown table type '\.xlsx'"):
        read_labelled(tmp_path / "t.xlsx", "text", "label")

    holes = tmp_path / "holes.jsonl"
    holes.write_text('{"text": "a", "label": 1}\n{"text": "b"}\n')
    with pytest.raises(ValueError, match=r"holes\.jsonl: column 'label' is empty in 1 rows \(first: row 1\)"):
        read_labelled(holes, "text", "label")
    unseen = tmp_path / "dev.csv"
    unseen.write_text("text,label\nmeh,2\n")
    with pytest.raises(ValueError, match=r"dev\.csv: labels \['2'\] never occur in .*good\.csv"):
        load_splits(FinetuneConfig(data=str(good), eval_data=str(unseen)), log=lambda _: None)
    with pytest.raises(ValueError, match=r"no-model: no config\.json"):
        finetune(FinetuneConfig(data=str(good), eval_fraction=0.5), tmp_path / "no-model", tmp_path / "out", log=lambda _: None)


# --- real runs on SST-2 ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pretrained_gpt2(tmp_path_factory, shared_data):
    """Our tiny GPT-2 after 60 steps on the books, with the pipeline's tokenizer (4,096 tokens) exported next to it."""
    from tokenizers import Tokenizer

    from tokenizer.config import TokenizerConfig
    from tokenizer.train import train_tokenizer
    from training.pretrain import pretrain

    root = tmp_path_factory.mktemp("gpt2")
    docs = []
    for name in TEXTS:
        text = (shared_data / "english-text" / name).read_text(encoding="utf-8-sig").replace("\r\n", "\n")
        paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
        docs.extend("\n\n".join(paragraphs[i : i + 20]) for i in range(0, len(paragraphs), 20))
    info = train_tokenizer(docs, TokenizerConfig(vocab_size=4096), root / "tokenizer")
    tokenizer = Tokenizer.from_file(str(root / "tokenizer" / "tokenizer.json"))
    schema = tokens_schema(info["vocab_size"], tokenizer_sha256=info["sha256"], eos_id=info["eos_id"])
    ids = [e.ids + [info["eos_id"]] for e in tokenizer.encode_batch(docs)]
    for split, rows in (("train", [x for i, x in enumerate(ids) if i % 20]), ("val", ids[::20])):
        (root / "tokens" / split).mkdir(parents=True)
        _write_token_shard(root / "tokens" / split / "shard-00000.arrow", rows, schema)
    cfg = PretrainConfig(
        preset="tiny", device="cpu", max_steps=60, batch_size=16, block_size=64, lr=3e-3, min_lr=3e-4, warmup_steps=5,
        eval_every=60, eval_batches=2, log_every=20,
    )  # fmt: skip
    metrics = pretrain(cfg, root / "tokens", root / "tokenizer", root / "model", log=lambda _: None)
    assert metrics["final_val_loss"] < metrics["initial_val_loss"] - 1.0
    return root / "model"


def test_our_pretrained_gpt2_beats_the_majority_class_on_sst2_dev(pretrained_gpt2, shared_data, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    cfg = FinetuneConfig(
        data=str(shared_data / SST2 / "train.tsv"),
        eval_data=str(shared_data / SST2 / "dev.tsv"),
        text_column="sentence",
        max_train=4000,
        max_eval=2000,
        epochs=3,
        batch_size=32,
        lr=1e-3,
        max_length=64,
        device="cpu",
    )
    logged = []
    metrics = finetune(cfg, pretrained_gpt2, tmp_path / "ft", log=logged.append)

    assert metrics["n_train"] == 4000 and metrics["n_eval"] == 2000 and metrics["eval_source"] == "eval_data"
    assert metrics["majority_baseline"] == pytest.approx(0.5555, abs=0.01)  # 3,741 of 6,735 dev rows are positive
    assert metrics["accuracy"] >= metrics["majority_baseline"] + 0.10, metrics["history"]
    assert 0.5 < metrics["macro_f1"] <= 1.0 and metrics["model_type"] == "gpt2" and metrics["labels"] == ["0", "1"]
    assert json.loads((tmp_path / "ft" / "metrics.json").read_text())["accuracy"] == metrics["accuracy"]
    assert any(line.startswith("epoch 1/3 | train loss") for line in logged)

    # The saved folder is the best epoch's model: loaded the standard way, it scores what metrics.json says.
    out = tmp_path / "ft"
    assert (out / "model.safetensors").is_file() and not list(out.glob("*.bin")) and not list(out.glob(".tmp-*"))
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    model = AutoModelForSequenceClassification.from_pretrained(str(out)).eval()
    assert type(model).__name__ == "GPT2ForSequenceClassification" and model.config.pad_token_id == tokenizer.pad_token_id
    assert model.config.id2label == {0: "0", 1: "1"}
    assert tokenizer("a gorgeous film")["input_ids"][-1] == tokenizer.eos_token_id  # the token the head pools on
    data = load_splits(cfg, log=lambda _: None)
    correct = 0
    with torch.no_grad():
        for start in range(0, len(data.eval_texts), 250):
            texts = data.eval_texts[start : start + 250]
            batch = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
            predicted = model(**batch).logits.argmax(-1).numpy()
            correct += int((predicted == data.eval_labels[start : start + 250]).sum())
    assert correct / len(data.eval_texts) == pytest.approx(metrics["accuracy"], abs=0.002)


def _bert_folder(texts: list[str], out: Path) -> None:
    """What a user's BERT folder holds: config.json, model.safetensors, vocab.txt, tokenizer_config.json."""
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertForSequenceClassification

    out.mkdir(parents=True)
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(texts, vocab_size=2000, show_progress=False)
    wordpiece.save_model(str(out))
    (out / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer", "do_lower_case": True}))
    n_vocab = len((out / "vocab.txt").read_text().splitlines())
    config = BertConfig(
        vocab_size=n_vocab, hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128,
        max_position_embeddings=128,
    )  # fmt: skip
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(str(out))


def test_a_local_bert_folder_fine_tunes_like_the_classic_example(shared_data, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import pyarrow.csv as pcsv

    sst = pcsv.read_csv(
        shared_data / SST2 / "train.tsv", parse_options=pcsv.ParseOptions(delimiter="\t", quote_char=False)
    ).slice(0, 3000)
    texts = sst.column("sentence").to_pylist()
    names = np.array(["negative", "positive"])[sst.column("label").to_numpy()]
    pq.write_table(pa.table({"review": texts, "sentiment": names}), tmp_path / "reviews.parquet")
    _bert_folder(texts, tmp_path / "bert")

    cfg = FinetuneConfig(
        data=str(tmp_path / "reviews.parquet"), text_column="review", label_column="sentiment", eval_fraction=0.2,
        epochs=3, batch_size=16, lr=1e-3, max_length=64, device="cpu",
    )  # fmt: skip
    metrics = finetune(cfg, tmp_path / "bert", tmp_path / "ft", log=lambda _: None)

    assert metrics["eval_source"] == "split" and metrics["n_train"] + metrics["n_eval"] == 3000 and metrics["n_eval"] == 600
    assert metrics["labels"] == ["negative", "positive"] and metrics["model_type"] == "bert"
    assert metrics["accuracy"] >= metrics["majority_baseline"] + 0.05, metrics["history"]
    model = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "ft"))
    assert type(model).__name__ == "BertForSequenceClassification"
    assert model.config.id2label == {0: "negative", 1: "positive"} and model.config.label2id == {"negative": 0, "positive": 1}
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "ft"))
    assert tokenizer.convert_ids_to_tokens(tokenizer("A good movie")["input_ids"]) == ["[CLS]", "a", "good", "movie", "[SEP]"]


def test_our_masked_checkpoint_gets_a_roberta_head_and_cls_sep_tokens(pretrained_gpt2, shared_data, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from training.pretrain import pretrain

    corpus = pretrained_gpt2.parent
    mlm_cfg = PretrainConfig(
        preset="tiny", objective="masked", device="cpu", max_steps=3, batch_size=8, block_size=64, eval_batches=1
    )
    pretrain(mlm_cfg, corpus / "tokens", corpus / "tokenizer", tmp_path / "mlm", log=lambda _: None)
    cfg = FinetuneConfig(
        data=str(shared_data / SST2 / "dev.tsv"), text_column="sentence", max_train=300, max_eval=100, epochs=1, device="cpu"
    )
    metrics = finetune(cfg, tmp_path / "mlm", tmp_path / "ft", log=lambda _: None)

    assert metrics["model_type"] == "roberta" and metrics["n_train"] == 300 and metrics["n_eval"] == 100
    model = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "ft"))
    assert type(model).__name__ == "RobertaForSequenceClassification"
    # our tokenizer adds no special tokens itself; the head pools position 0, so the saved tokenizer puts <cls> there
    tokenizer = AutoTokenizer.from_pretrained(str(tmp_path / "ft"))
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("a good film")["input_ids"])
    assert tokens[0] == "<cls>" and tokens[-1] == "<sep>"


def test_max_positions_reads_each_family_s_position_table():
    from transformers import BertConfig, GPT2Config, RobertaConfig

    from training.finetune import max_positions

    assert max_positions(GPT2Config(n_positions=256)) == 256
    assert max_positions(BertConfig(max_position_embeddings=128)) == 128
    # RoBERTa numbers positions from pad_token_id + 1: our masked preset at block_size 64 has 66 rows, 64 usable
    assert max_positions(RobertaConfig(max_position_embeddings=66, pad_token_id=1)) == 64
