"""The Arrow IPC guard (corpus/sources/tabular.py): a record batch's decompressed size, read from its flatbuffer
metadata and the 8-byte prefix of each compressed buffer, before pyarrow decompresses anything; a compressed batch
over the limit passed over unread (its rows rejected as `too_large`), the batches around it read."""

import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest

from corpus.config import IngestConfig
from corpus.sources import Rejection, plan_units, read_unit
from corpus.sources import tabular
from corpus.sources.tabular import arrow_batch_limit, ipc_batch_layout, ipc_batches

REPO = Path(__file__).resolve().parents[1]
SCHEMA = pa.schema([("id", pa.string()), ("text", pa.string())])


def _batch(row_id, text) -> pa.RecordBatch:
    return pa.record_batch({"id": [row_id], "text": [text]}, schema=SCHEMA)


def _write(path, batches, *, compression=None, file=False, schema=SCHEMA) -> None:
    options = pa.ipc.IpcWriteOptions(compression=compression)
    new = pa.ipc.new_file if file else pa.ipc.new_stream
    with new(str(path), schema, options=options) as writer:
        for batch in batches:
            writer.write_batch(batch)


def _stream_start(path) -> int:
    return 8 if Path(path).read_bytes()[:6] == b"ARROW1" else 0


def _read(path, cfg=None):
    cfg = cfg or IngestConfig()
    errors = []
    items = [item for unit in plan_units([str(path)], cfg) for item in read_unit(unit, cfg, errors)]
    return items, errors


@pytest.mark.parametrize("file", [False, True], ids=["stream", "file"])
@pytest.mark.parametrize("compression", [None, "zstd", "lz4"])
def test_batch_sizes_are_known_before_decompression(tmp_path, compression, file):
    """id "r<i>" (validity omitted: no nulls; offsets 8 bytes; 2 bytes) and a text of 1000 * (i + 1) bytes (offsets 8
    bytes): 18 + 1000 * (i + 1) bytes per batch once decompressed, whatever the codec; what pyarrow allocates."""
    path = tmp_path / ("t.arrow" if file else "t.arrows")
    _write(path, [_batch(f"r{i}", "x" * (1000 * (i + 1))) for i in range(3)], compression=compression, file=file)
    buffer = pa.py_buffer(path.read_bytes())
    start = _stream_start(path)
    assert start == (8 if file else 0)
    found = list(ipc_batches(buffer, start))
    assert [(b.kind, b.num_rows, b.nbytes, b.compressed) for b in found] == [
        ("record batch", 1, 18 + 1000 * (i + 1), compression is not None) for i in range(3)
    ]
    read = list(pa.ipc.open_stream(buffer.slice(start)))
    assert [b.nbytes for b in found] == [batch.get_total_buffer_size() for batch in read]
    # each span is the whole message: the next starts where it ends
    assert all(a.end == b.start for a, b in zip(found, found[1:]))
    if compression:
        assert path.stat().st_size < 3000  # the sizes did not come from the bytes stored


def test_a_buffer_stored_uncompressed_in_a_compressed_batch_counts_as_stored(tmp_path):
    """A compressed body may hold a buffer as is, behind the prefix -1 (the writer's choice when compression does
    not pay): its size is its length less the prefix."""
    path = tmp_path / "t.arrows"
    _write(path, [_batch("r", "x" * 5000)], compression="zstd")
    messages = pa.ipc.MessageReader.open_stream(pa.BufferReader(pa.py_buffer(path.read_bytes())))
    message = next(m for m in messages if m.type == "record batch")
    metadata, body = message.metadata.to_pybytes(), bytearray(message.body.to_pybytes())
    assert ipc_batch_layout(metadata, pa.py_buffer(bytes(body))) == (3, 1, 5017, True)
    text_data = body.rindex(struct.pack("<q", 5000))  # the last buffer: the text's characters
    body[text_data : text_data + 8] = struct.pack("<q", -1)
    stored = len(body) - text_data - 8  # compressed length, padding included (the last buffer runs to the end)
    _, _, nbytes, _ = ipc_batch_layout(metadata, pa.py_buffer(bytes(body)))
    assert 18 <= nbytes - 18 <= stored and nbytes < 5017


def test_dictionary_batches_are_sized_too(tmp_path):
    schema = pa.schema([("text", pa.dictionary(pa.int32(), pa.string()))])
    batch = pa.record_batch({"text": pa.array(["y" * 3000, "y" * 3000]).dictionary_encode()}, schema=schema)
    path = tmp_path / "d.arrows"
    _write(path, [batch], compression="lz4", schema=schema)
    found = list(ipc_batches(pa.py_buffer(path.read_bytes())))
    # the dictionary: one value (offsets 8 bytes, 3000 characters); the batch: two int32 indices
    assert [(b.kind, b.num_rows, b.nbytes) for b in found] == [("dictionary batch", 1, 3008), ("record batch", 2, 8)]


def test_unparseable_metadata_is_a_value_error():
    for metadata in (b"", b"\xff\xff\xff\x7f", b"\x08\x00\x00\x00\x00\x00\x00\x00\x10\x00\x00\x00"):
        with pytest.raises(ValueError):
            ipc_batch_layout(metadata, pa.py_buffer(b""))


def test_the_limit_is_a_batch_budget_never_below_one_record():
    assert arrow_batch_limit(IngestConfig()) == tabular.ARROW_BATCH_BYTES
    big = IngestConfig(max_record_bytes=1 << 30)
    assert arrow_batch_limit(big) == (1 << 30) + tabular.PAGE_SLACK


@pytest.fixture
def small_limit(monkeypatch):
    """A limit of 100 KB (instead of 256 MB), so that the batches here can be small."""
    monkeypatch.setattr(tabular, "ARROW_BATCH_BYTES", 100_000)
    cfg = IngestConfig(max_record_bytes=1000)
    monkeypatch.setattr(tabular, "PAGE_SLACK", 0)
    assert arrow_batch_limit(cfg) == 100_000
    return cfg


@pytest.mark.parametrize("file", [False, True], ids=["stream", "file"])
@pytest.mark.parametrize("compression", ["zstd", "lz4"])
def test_a_compressed_batch_over_the_limit_is_rejected_unread(tmp_path, small_limit, compression, file):
    path = tmp_path / ("t.arrow" if file else "t.arrows")
    oversized = pa.record_batch({"id": ["b1", "b2"], "text": ["a" * 200_000, "c"]})
    batches = [_batch("before", "one"), oversized, _batch("after", "two")]
    _write(path, batches, compression=compression, file=file)
    bomb = list(ipc_batches(pa.py_buffer(path.read_bytes()), _stream_start(path)))[1]
    for unit_bytes in (1, 1 << 30):  # a unit per batch, or one for the file: the same outcome
        cfg = small_limit.model_copy(update={"unit_bytes": unit_bytes})
        items, errors = _read(path, cfg)
        assert [(i.id, i.offset) for i in items if not isinstance(i, Rejection)] == [("before", 0), ("after", 3)]
        rejected = [i for i in items if isinstance(i, Rejection)]
        assert [(r.doc.offset, r.reason) for r in rejected] == [(1, "too_large"), (2, "too_large")]
        assert rejected[0].detail.startswith("record batch 1 not decoded: it decompresses to 200029 bytes > 100000")
        assert len(errors) == 1 and errors[0]["offset"] == bomb.start  # in the file
        assert errors[0]["error"].startswith("record batch 1 (rows 1-2) not read: it decompresses to 200029 bytes")


def test_an_oversized_first_batch_still_gives_the_schema(tmp_path, small_limit):
    path = tmp_path / "t.arrows"
    _write(path, [_batch("big", "a" * 200_000), _batch("after", "two")], compression="zstd")
    items, errors = _read(path, small_limit)
    assert [(getattr(i, "reason", "doc"), (i.doc if isinstance(i, Rejection) else i).offset) for i in items] == [
        ("too_large", 0), ("doc", 1)
    ]
    first = next(ipc_batches(pa.py_buffer(path.read_bytes())))
    assert items[1].id == "after" and len(errors) == 1 and errors[0]["offset"] == first.start > 0
    assert len(plan_units([str(path)], small_limit.model_copy(update={"unit_bytes": 1}))) == 2  # one per batch


def test_uncompressed_batches_are_read_whatever_their_size(tmp_path, small_limit):
    path = tmp_path / "t.arrows"
    _write(path, [_batch("before", "one"), _batch("big", "a" * 200_000), _batch("after", "two")])
    items, errors = _read(path, small_limit)
    assert errors == []
    assert [(i.doc.id if isinstance(i, Rejection) else i.id, getattr(i, "reason", "doc")) for i in items] == [
        ("before", "doc"), ("big", "too_large"), ("after", "doc")  # the record's own cap, as before
    ]
    assert items[1].detail.startswith("text 200000 bytes > max_record_bytes")


def test_a_dictionary_the_oversized_batch_needs_stops_the_stream(tmp_path, small_limit):
    """The stream reader takes the dictionaries and the record batch after them in one step: an oversized batch
    behind a dictionary message cannot be skipped alone. Reading stops there, reported; nothing is decompressed.
    A later oversized batch that uses the dictionaries already read is skipped as any other."""
    schema = pa.schema([("id", pa.string()), ("text", pa.string()), ("lang", pa.dictionary(pa.int32(), pa.string()))])
    langs = pa.array(["en", "fr"])

    def batch(ids, texts):
        codes = pa.array([i % 2 for i in range(len(ids))], pa.int32())
        lang = pa.DictionaryArray.from_arrays(codes, langs)
        return pa.record_batch({"id": ids, "text": texts, "lang": lang}, schema=schema)

    path = tmp_path / "t.arrows"
    big = batch(["big"], ["a" * 200_000])
    _write(path, [batch(["first"], ["one"]), big, batch(["last"], ["two"])], compression="zstd", schema=schema)
    kinds = [b.kind for b in ipc_batches(pa.py_buffer(path.read_bytes()))]
    assert kinds == ["dictionary batch", "record batch", "record batch", "record batch"]
    items, errors = _read(path, small_limit)
    assert [(i.doc.id if isinstance(i, Rejection) else i.id, getattr(i, "reason", "doc")) for i in items] == [
        ("first", "doc"), (items[1].doc.id, "too_large"), ("last", "doc")
    ]
    assert len(errors) == 1 and errors[0]["error"].startswith("record batch 1 (rows 1-1) not read")
    # the oversized batch first: the dictionary message comes before it
    _write(path, [big, batch(["last"], ["two"])], compression="zstd", schema=schema)
    items, errors = _read(path, small_limit)
    assert items == [] and len(errors) == 1
    assert errors[0]["offset"] > 0 and errors[0]["error"].startswith(
        "record batch 0 not read, nor any batch after it: it decompresses to 200023 bytes > 100000"
    )


_WRITE_BOMB = textwrap.dedent(
    """
    import sys
    import pyarrow as pa

    schema = pa.schema([("id", pa.string()), ("text", pa.string())])
    options = pa.ipc.IpcWriteOptions(compression=sys.argv[2])
    with pa.ipc.new_file(sys.argv[1], schema, options=options) as writer:
        for row_id, text in (("before", "x"), ("bomb", "a" * (400 << 20)), ("after", "y")):
            writer.write_batch(pa.record_batch({"id": [row_id], "text": [text]}, schema=schema))
    """
)
_READ = textwrap.dedent(
    """
    import sys
    from corpus.config import IngestConfig
    from corpus.sources import plan_units, read_unit

    cfg, errors = IngestConfig(), []
    items = [i for u in plan_units([sys.argv[1]], cfg) for i in read_unit(u, cfg, errors)]
    print([getattr(i, "reason", None) or i.id for i in items], len(errors))
    # this process's own high-water mark (getrusage's ru_maxrss would count the parent's, from before the exec)
    print(next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")))
    """
)


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads VmHWM from /proc (Linux)")
@pytest.mark.parametrize("compression", ["zstd", "lz4"])
def test_a_bomb_in_an_ipc_file_is_never_decompressed(tmp_path, compression):
    """Planning and reading an IPC file holding a 400 MB value, compressed: the process stays far below the 400 MB
    one decompression would take."""
    path = tmp_path / "bomb.arrow"

    def run(script, *args):
        done = subprocess.run(
            [sys.executable, "-c", script, *args], cwd=REPO, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout.splitlines()

    run(_WRITE_BOMB, str(path), compression)
    assert path.stat().st_size < 5 << 20
    kinds, peak_kib = run(_READ, str(path))
    assert kinds == "['before', 'too_large', 'after'] 1"
    assert int(peak_kib) < 250 << 10, f"peak RSS {int(peak_kib) >> 10} MiB"
