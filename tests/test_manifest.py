import json
from collections import Counter

import pyarrow as pa

from corpus.document import DOCUMENT_SCHEMA, REJECTED_SCHEMA, Document, documents_to_table, rejected_table, tokens_schema
from corpus.manifest import LedgerEntry, Manifest, StageOutput, is_current, merge_ledgers, read_manifest, verify
from corpus.shards import read_table, write_table


def _doc(i):
    return Document(id=f"d{i}", source="s.warc.gz", offset=i * 100, url=f"https://x/{i}", text=f"text {i}")


def test_ledger_merge_keeps_the_invariant():
    a = LedgerEntry("filter", 10, 7, Counter({"gopher_min_words": 3}), 1.0)
    b = LedgerEntry("filter", 5, 4, Counter({"gopher_min_words": 1}), 0.5)
    (m,) = merge_ledgers([[a], [b]])
    assert (m.in_, m.out, dict(m.dropped), m.seconds) == (15, 11, {"gopher_min_words": 4}, 1.5)
    assert m.balanced()
    assert not LedgerEntry("x", 3, 1, Counter({"r": 1})).balanced()
    assert m.to_json() == {"name": "filter", "in": 15, "out": 11, "dropped": {"gopher_min_words": 4}, "seconds": 1.5}


def test_document_row_round_trip_and_schemas():
    doc = _doc(1)
    doc.keyphrases = [("web text", 0.5)]
    doc.signals = {"n_words": 2}
    table = documents_to_table([doc])
    assert table.schema == DOCUMENT_SCHEMA
    back = Document.from_row(table.to_pylist()[0])
    assert (back.id, back.text, back.keyphrases, back.signals["n_words"]) == ("d1", "text 1", [("web text", 0.5)], 2)
    rej = rejected_table([_doc(2).to_rejected_row("filter", "gopher_min_words", "n_words=2 < 50")])
    assert rej.schema == REJECTED_SCHEMA and rej["reason"][0].as_py() == "gopher_min_words"


def test_tokens_schema_switches_to_uint32_past_uint16():
    assert tokens_schema(65535, tokenizer_sha256="x", eos_id=0).field("input_ids").type == pa.large_list(pa.uint16())
    big = tokens_schema(65536, tokenizer_sha256="x", eos_id=0)
    assert big.field("input_ids").type == pa.large_list(pa.uint32())
    assert big.metadata[b"dtype"] == b"uint32" and big.metadata[b"eos_id"] == b"0"


def _commit(run, fp="fp1"):
    out = StageOutput(run, "filter", "filtered")
    write_table(out.out / "part-00000.arrow", documents_to_table([_doc(1), _doc(2)]))
    write_table(out.rejected / "part-00000.arrow", rejected_table([_doc(3).to_rejected_row("filter", "r")]))
    m = Manifest("filter", fp, "c", "u", "0", ledger=[LedgerEntry("filter", 3, 2, Counter({"r": 1}))])
    return out.commit(m)


def test_commit_is_atomic_and_manifest_describes_files(tmp_path):
    m = _commit(tmp_path)
    assert not (tmp_path / ".tmp-filter").exists()
    assert read_table(tmp_path / "filtered" / "part-00000.arrow").num_rows == 2
    assert read_table(tmp_path / "rejected" / "filter" / "part-00000.arrow").num_rows == 1
    on_disk = json.loads((tmp_path / "filtered" / "manifest.json").read_text())
    assert on_disk["rows"] == 2 and on_disk["files"][0]["rows"] == 2 and len(on_disk["files"][0]["sha256"]) == 64
    assert on_disk["rejected"][0]["path"] == "rejected/filter/part-00000.arrow"
    assert on_disk["ledger"][0] == {"name": "filter", "in": 3, "out": 2, "dropped": {"r": 1}, "seconds": 0.0}
    assert read_manifest(tmp_path / "filtered").fingerprint == m.fingerprint == "fp1"


def test_is_current_needs_the_same_fingerprint_and_whole_files(tmp_path):
    _commit(tmp_path)
    assert is_current(tmp_path / "filtered", "fp1")
    assert not is_current(tmp_path / "filtered", "fp2")
    with open(tmp_path / "filtered" / "part-00000.arrow", "ab") as f:
        f.write(b"x")
    assert not is_current(tmp_path / "filtered", "fp1")


def test_a_killed_stage_leaves_no_manifest(tmp_path):
    out = StageOutput(tmp_path, "filter", "filtered")
    write_table(out.out / "part-00000.arrow", documents_to_table([_doc(1)]))
    # killed here: nothing committed
    assert read_manifest(tmp_path / "filtered") is None
    _commit(tmp_path)  # the rerun clears the leftover temporary directory
    assert read_manifest(tmp_path / "filtered").rows == 2


def test_verify_catches_flipped_bytes_that_arrow_accepts(tmp_path):
    _commit(tmp_path)
    assert verify(tmp_path / "filtered") == []
    path = tmp_path / "filtered" / "part-00000.arrow"
    data = bytearray(path.read_bytes())
    data[-200] ^= 0xFF
    path.write_bytes(bytes(data))
    problems = verify(tmp_path / "filtered")
    assert len(problems) == 1 and "sha256 mismatch" in problems[0]
