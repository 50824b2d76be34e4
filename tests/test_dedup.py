from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from corpus.config import DedupConfig
from corpus.dedup import (
    apply_unit,
    build_clusters,
    dropped_documents,
    format_s_curve,
    keys_unit,
    lsh_params,
    normalize_text,
    s_curve,
    threshold_for,
    update_index,
)
from corpus.dedup.exact import canonical_batch, url_key
from corpus.dedup.minhash import MinHasher, derive_bands_rows, estimated_jaccard, unsegmented_docs
from corpus.dedup.unionfind import components_of_edges, connected_components
from corpus.document import CLUSTERS_SCHEMA, REJECTED_SCHEMA, Document, documents_to_table
from corpus.shards import read_table, write_table
from dedup_eval import THRESHOLD, evaluate, jaccard, make_labelled_set, shingle_set

P1 = (
    "The committee met on Tuesday to discuss the new budget for the city library, which has been closed for repairs "
    "since the storm in March. Members agreed that the roof must be fixed before winter."
)
P2 = (
    "Volunteers will run a book sale in the park every Saturday, and the money raised will buy new shelves, "
    "chairs and lamps for the children's corner once the building opens again."
)
P3 = (
    "A local bakery offered to donate bread and coffee for the reopening party, and the mayor promised to cut "
    "the ribbon herself if the work is finished on time."
)
ARTICLE = "\n\n".join([P1, P2, P3])
EDITED = "\n\n".join([P1, P2.replace("every Saturday", "on the first Sunday of each month"), P3])
# EDITED with a second edit: near EDITED, too far from ARTICLE.
FURTHER = EDITED.replace("closed for repairs", "shut")  # true Jaccard 0.88 to EDITED, 0.73 to ARTICLE
UNRELATED = (
    "Preheat the oven to two hundred degrees, slice the potatoes thinly and layer them in a buttered dish with "
    "cream, garlic and a little nutmeg, then bake for an hour until the top is golden and crisp."
)


def _shard(path: Path, docs: list[tuple[str, str]]) -> Path:
    rows = [
        Document(id=doc_id, source="test", offset=n, url=f"https://example.org/{doc_id}", text=text)
        for n, (doc_id, text) in enumerate(docs)
    ]
    write_table(path, documents_to_table(rows))
    return path


def _clusters(tmp_path: Path, docs, cfg=None, name="u", index_dir=None) -> pa.Table:
    cfg = cfg or DedupConfig()
    keys = tmp_path / f"{name}.keys.arrow"
    keys_unit(cfg, _shard(tmp_path / f"{name}.arrow", docs), keys)
    return build_clusters(cfg, [keys], index_dir)


def _rows(table: pa.Table) -> list[tuple]:
    return [(r["doc_id"], r["kept_id"], r["match"]) for r in table.to_pylist()]


# --- normalization and signatures ----------------------------------------------------------------------------------


def test_normalize_text_folds_case_unicode_and_whitespace():
    folded = normalize_text("  Hello\tWORLD\u00a0and\u2028the ﬁne STRASSE Straße  \n")
    assert folded == "hello world and the fine strasse strasse"
    assert normalize_text(" \n\t ") == ""


def test_every_unicode_space_separates_words_like_a_regex_would():
    """Same result as re.sub(r"\\s+", " ", NFKC(text).casefold()).strip(), for all 29 Unicode spaces."""
    spaces = [chr(c) for c in range(0x3001) if chr(c).isspace()]
    assert len(spaces) == 29
    texts = [f"Ab{s}ẞ{s}{s}ǅ{s}" for s in spaces]
    batch = canonical_batch(texts)
    assert {batch.text(i) for i in range(len(texts))} == {normalize_text(t) for t in texts} == {"ab ss dž"}


def test_batch_normalization_matches_the_one_string_version():
    texts = ["  a\t\tB  c ", "", "x", " \u3000中文 ﬁ\x1c\x1dEND ", "ß\n\nÉTÉ", "   "]
    batch = canonical_batch(texts)
    assert [batch.text(i) for i in range(len(texts))] == [normalize_text(t) for t in texts]
    words = [batch.data[s:e].tobytes().decode() for s, e in zip(batch.word_starts, batch.word_ends)]
    assert words == ["a", "b", "c", "x", "中文", "fi", "end", "ss", "été"]
    assert batch.word_doc.tolist() == [0, 0, 0, 2, 3, 3, 3, 4, 4]


def test_signatures_are_pinned_and_independent_of_the_batch():
    """Changing any hash changes every index on disk: bump SIGNATURE_VERSION if this has to change."""
    hasher = MinHasher()
    alone, counts = hasher.signatures(canonical_batch([ARTICLE]))
    assert counts.tolist() == [91]
    assert alone[0, :4].tolist() == [2687477529, 1272962629, 504701525, 3141699341]
    among, _ = hasher.signatures(canonical_batch([UNRELATED, ARTICLE.upper(), ""]))
    assert np.array_equal(among[1], alone[0])
    assert (among[2] == 0xFFFFFFFF).all()


def test_paragraph_edit_estimate_is_close_to_the_true_jaccard():
    sigs, _ = MinHasher().signatures(canonical_batch([ARTICLE, EDITED, UNRELATED]))
    true = jaccard(shingle_set(ARTICLE), shingle_set(EDITED))
    assert true == pytest.approx(0.8333, abs=1e-4)
    assert estimated_jaccard(sigs[0], sigs[1]) == pytest.approx(0.8516, abs=1e-4)  # 109/128 positions agree
    assert estimated_jaccard(sigs[0], sigs[2]) < 0.05


def test_unsegmented_scripts_get_character_shingles():
    zh = "今天天气很好，我们一起去公园散步，然后在湖边喝茶聊天。公园里有很多人在跑步和打太极拳。"
    zh_edit = zh.replace("喝茶", "喝咖啡")
    batch = canonical_batch([zh, zh_edit, ARTICLE])
    assert unsegmented_docs(batch).tolist() == [True, True, False]
    sigs, counts = MinHasher().signatures(batch)
    assert counts.tolist() == [len(zh) - 4, len(zh_edit) - 4, 91]  # 5-character shingles
    grams = [{s[i : i + 5] for i in range(len(s) - 4)} for s in (zh, zh_edit)]
    true = jaccard(*grams)
    assert abs(estimated_jaccard(sigs[0], sigs[1]) - true) < 0.08


def test_lsh_math_is_pinned():
    assert derive_bands_rows(0.8, 128, 0.95) == (16, 8)
    assert lsh_params(DedupConfig()) == (16, 8)
    assert lsh_params(DedupConfig(verify=False)) == (9, 13)
    assert lsh_params(DedupConfig(bands=20, rows=5)) == (20, 5)
    assert threshold_for(16, 8) == pytest.approx(0.7071, abs=1e-4)
    curve = dict(s_curve(16, 8, points=11))
    assert curve[0.8] == pytest.approx(0.9470, abs=1e-4) and curve[0.5] == pytest.approx(0.0607, abs=1e-4)
    assert "bands=16 rows=8" in format_s_curve(16, 8)


def test_config_refuses_bands_that_do_not_fit():
    with pytest.raises(ValueError, match="exceeds dedup.num_perm"):
        DedupConfig(bands=20, rows=8)
    with pytest.raises(ValueError, match="set both dedup.bands and dedup.rows"):
        DedupConfig(bands=4)


def test_union_find_labels_components_by_their_first_node():
    assert connected_components(9, [5, 3, 7, 2], [3, 1, 8, 2]).tolist() == [0, 1, 2, 1, 4, 1, 6, 7, 7]
    nodes, labels = components_of_edges(np.array([40, 10, 30]), np.array([10, 20, 50]))
    assert nodes.tolist() == [10, 20, 30, 40, 50] and labels.tolist() == [10, 10, 30, 10, 30]


def test_url_key_groups_spellings_of_one_url():
    # the normaliser itself (corpus/urls.py, shared with the crawler) is pinned in test_urls.py
    assert url_key("HTTPS://Example.COM:443/a?b=1#frag") == url_key("https://example.com/a?b=1")
    assert url_key("http://example.com") == url_key("http://example.com/") != url_key("https://example.com/")
    assert url_key("") == 0


# --- clusters -----------------------------------------------------------------------------------------------------


def test_exact_near_and_unrelated(tmp_path):
    docs = [("a", ARTICLE), ("b", "  " + ARTICLE.upper().replace(" ", " \n ")), ("c", EDITED), ("d", UNRELATED)]
    table = _clusters(tmp_path, docs)
    assert table.schema.names == CLUSTERS_SCHEMA.names + ["match"]
    assert _rows(table) == [("a", "a", "kept"), ("b", "a", "exact"), ("c", "a", "near")]
    assert table["cluster_id"].to_pylist() == ["a", "a", "a"]
    assert table["jaccard"].to_pylist() == pytest.approx([1.0, 1.0, 0.8516], abs=1e-4)


def test_disabled_dedup_clusters_nothing(tmp_path):
    assert _clusters(tmp_path, [("a", ARTICLE), ("b", ARTICLE)], DedupConfig(enabled=False)).num_rows == 0


def test_exact_only_and_near_only(tmp_path):
    docs = [("a", ARTICLE), ("b", ARTICLE.lower()), ("c", EDITED)]
    assert _rows(_clusters(tmp_path, docs, DedupConfig(near=False))) == [("a", "a", "kept"), ("b", "a", "exact")]
    # Without exact keys the copy is still caught by MinHash, and still named an exact match of the kept text.
    rows = _rows(_clusters(tmp_path, docs, DedupConfig(exact=False)))
    assert rows == [("a", "a", "kept"), ("b", "a", "exact"), ("c", "a", "near")]


def test_url_duplicates_only_when_asked(tmp_path):
    cfg = DedupConfig(url=True, near=False)
    keys = tmp_path / "k.arrow"
    docs = [("a", "https://Example.org/x#top", ARTICLE), ("b", "https://example.org/x", UNRELATED), ("c", "", P1)]
    rows = [Document(id=i, source="t", offset=n, url=u, text=t) for n, (i, u, t) in enumerate(docs)]
    write_table(tmp_path / "u.arrow", documents_to_table(rows))
    keys_unit(cfg, tmp_path / "u.arrow", keys)
    assert _rows(build_clusters(cfg, [keys])) == [("a", "a", "kept"), ("b", "a", "url")]
    assert build_clusters(DedupConfig(near=False), [keys]).num_rows == 0


@pytest.mark.parametrize(
    "policy, expected, cluster_id",
    [
        ("keep-first", [("a", "a", "kept"), ("b", "a", "near"), ("c", "a", "near")], "a"),
        ("keep-longest", [("a", "b", "near"), ("b", "b", "kept"), ("c", "b", "near")], "b"),
        ("drop-all", [("a", "", "near"), ("b", "", "near"), ("c", "", "near")], "a"),
    ],
)
def test_keep_policies(tmp_path, policy, expected, cluster_id):
    docs = [("a", ARTICLE), ("b", ARTICLE + " Thanks to all who helped."), ("c", EDITED)]
    table = _clusters(tmp_path, docs, DedupConfig(policy=policy))
    assert _rows(table) == expected
    assert set(table["cluster_id"].to_pylist()) == {cluster_id}


def test_key_files_order_is_first_seen(tmp_path):
    cfg = DedupConfig()
    first = tmp_path / "1.keys.arrow"
    second = tmp_path / "2.keys.arrow"
    keys_unit(cfg, _shard(tmp_path / "1.arrow", [("late", EDITED)]), first)
    keys_unit(cfg, _shard(tmp_path / "2.arrow", [("early", ARTICLE)]), second)
    assert _rows(build_clusters(cfg, [second, first])) == [("early", "early", "kept"), ("late", "early", "near")]
    assert _rows(build_clusters(cfg, [first, second])) == [("late", "late", "kept"), ("early", "late", "near")]


def test_apply_unit_balances_the_ledger_and_names_the_kept_document(tmp_path):
    docs = [("a", ARTICLE), ("b", ARTICLE.upper()), ("c", EDITED), ("d", UNRELATED)]
    src = _shard(tmp_path / "u.arrow", docs)
    keys_unit(DedupConfig(), src, tmp_path / "k.arrow")
    write_table(tmp_path / "clusters.arrow", build_clusters(DedupConfig(), [tmp_path / "k.arrow"]))
    (entry,) = apply_unit(tmp_path / "clusters.arrow", src, tmp_path / "rejected.arrow")
    assert (entry.name, entry.in_, entry.out) == ("dedup", 4, 2)
    assert entry.dropped == Counter({"exact_duplicate": 1, "near_duplicate": 1}) and entry.balanced()
    rejected = read_table(tmp_path / "rejected.arrow")
    assert rejected.schema == REJECTED_SCHEMA
    assert [(r["id"], r["stage"], r["reason"], r["kept_id"], r["cluster_id"]) for r in rejected.to_pylist()] == [
        ("b", "dedup", "exact_duplicate", "a", "a"),
        ("c", "dedup", "near_duplicate", "a", "a"),
    ]
    details = rejected["detail"].to_pylist()
    assert details == ["same normalized text as a", "near-duplicate of a (estimated Jaccard 0.85)"]


def test_apply_unit_reads_plain_exact_clusters(tmp_path):
    """A clusters table without `match` (exact dedup only) still works."""
    src = _shard(tmp_path / "u.arrow", [("a", ARTICLE), ("b", ARTICLE)])
    columns = {"doc_id": ["a", "b"], "cluster_id": ["k", "k"], "kept_id": ["a", "a"], "jaccard": [1.0, 1.0]}
    plain = pa.table(columns, schema=CLUSTERS_SCHEMA)
    write_table(tmp_path / "c.arrow", plain)
    (entry,) = apply_unit(tmp_path / "c.arrow", src, tmp_path / "r.arrow")
    assert (entry.in_, entry.out, dict(entry.dropped)) == (2, 1, {"exact_duplicate": 1})
    assert dropped_documents(plain) == {"b": ("k", "a", 1.0, "exact")}


def test_drop_all_detail(tmp_path):
    src = _shard(tmp_path / "u.arrow", [("a", ARTICLE), ("b", EDITED)])
    keys_unit(DedupConfig(), src, tmp_path / "k.arrow")
    write_table(tmp_path / "c.arrow", build_clusters(DedupConfig(policy="drop-all"), [tmp_path / "k.arrow"]))
    (entry,) = apply_unit(tmp_path / "c.arrow", src, tmp_path / "r.arrow")
    assert (entry.out, dict(entry.dropped)) == (0, {"near_duplicate": 2})
    details = read_table(tmp_path / "r.arrow")["detail"].to_pylist()
    assert details == [
        "near duplicate in cluster a; policy drop-all keeps none",
        "near duplicate in cluster a; policy drop-all keeps none, estimated Jaccard 0.85 to a",
    ]


# --- incremental index --------------------------------------------------------------------------------------------


def test_index_round_trip(tmp_path):
    cfg = DedupConfig()
    index = tmp_path / "index"
    run1 = [("old-1", ARTICLE), ("old-2", ARTICLE.upper()), ("old-3", UNRELATED), ("old-4", EDITED)]
    first = _clusters(tmp_path, run1, name="run1", index_dir=index)
    assert _rows(first) == [("old-1", "old-1", "kept"), ("old-2", "old-1", "exact"), ("old-4", "old-1", "near")]
    assert update_index(cfg, [tmp_path / "run1.keys.arrow"], index, first) == 4
    assert update_index(cfg, [tmp_path / "run1.keys.arrow"], index, first) == 0  # already indexed

    # Run 2: new copies of old documents point at the old kept id; new-only clusters behave as usual.
    run2 = [("new-1", EDITED), ("new-2", UNRELATED.lower()), ("new-3", P3 + " " + P2), ("new-4", P3 + "  " + P2)]
    second = _clusters(tmp_path, run2, name="run2", index_dir=index)
    assert _rows(second) == [
        ("new-1", "old-1", "near"),
        ("new-2", "old-3", "exact"),
        ("new-3", "new-3", "kept"),
        ("new-4", "new-3", "exact"),
    ]
    assert second["cluster_id"].to_pylist() == ["old-1", "old-3", "new-3", "new-3"]
    assert second["jaccard"].to_pylist() == pytest.approx([0.8516, 1.0, 1.0, 1.0], abs=1e-4)
    update_index(cfg, [tmp_path / "run2.keys.arrow"], index, second)

    # Run 3 matches only old-4, which run 1 dropped for old-1: it is dropped for old-1 too.
    third = _clusters(tmp_path, [("new-5", FURTHER)], name="run3", index_dir=index)
    assert _rows(third) == [("new-5", "old-1", "near")]
    assert third["cluster_id"].to_pylist() == ["old-1"]

    # Rerunning run 1 against the index that already holds it gives what run 1 gave.
    again = build_clusters(cfg, [tmp_path / "run1.keys.arrow"], index)
    assert _rows(again) == _rows(first)


@pytest.mark.parametrize(
    "policy, expected",
    [("keep-first", ("new", "old", "near")), ("keep-longest", ("new", "old", "near")), ("drop-all", ("new", "", "near"))],
)
def test_indexed_documents_are_never_dropped(tmp_path, policy, expected):
    """Even when a new copy is longer, the old document stays kept: old outputs are never touched."""
    cfg = DedupConfig(policy=policy)
    index = tmp_path / "index"
    _clusters(tmp_path, [("old", ARTICLE)], cfg, name="run1")
    update_index(cfg, [tmp_path / "run1.keys.arrow"], index)
    second = _clusters(tmp_path, [("new", ARTICLE + " Thanks to all who helped.")], cfg, name="run2", index_dir=index)
    assert _rows(second) == [expected]


def test_index_refuses_other_signature_settings(tmp_path):
    cfg = DedupConfig()
    _clusters(tmp_path, [("a", ARTICLE)], cfg)
    update_index(cfg, [tmp_path / "u.keys.arrow"], tmp_path / "index")
    other = DedupConfig(num_perm=64)
    with pytest.raises(ValueError, match="num_perm=128 \\(config: 64\\)"):
        build_clusters(other, [], tmp_path / "index")
    with pytest.raises(ValueError, match="other signature settings"):
        build_clusters(other, [tmp_path / "u.keys.arrow"])


# --- real data ----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def labelled(shared_data):
    return make_labelled_set(shared_data, n_families=120, n_unrelated=120, seed=3)


def test_labelled_set_precision_recall_and_estimate_error(labelled, tmp_path):
    docs = [(d.doc_id, d.text) for d in labelled.docs]
    table = _clusters(tmp_path, docs)
    result = evaluate(labelled, set(dropped_documents(table)), THRESHOLD)
    assert result["true_duplicates"] > 60
    assert result["precision"] >= 0.95 and result["recall"] >= 0.90, result

    pairs = labelled.variant_pairs()
    sigs, _ = MinHasher().signatures(canonical_batch([d.text for d in labelled.docs]))
    left, right, true = (np.array(col) for col in list(zip(*pairs))[:3])
    errors = np.abs(estimated_jaccard(sigs[left], sigs[right]) - true)
    assert errors.mean() <= 0.03
