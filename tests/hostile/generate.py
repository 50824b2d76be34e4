"""The large hostile inputs of issue 13 (INDEX.md of the shared data), made on the fly and streamed to disk.

Making them must stay cheap: the bombs are built from one compressed block repeated (a deflate block that ends with
a full flush refers to nothing before it, so copies of it concatenate into one valid stream), and the CRC is
computed over the repeated plain chunk without ever holding the expanded data.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

GB = 1 << 30
MB = 1 << 20
BOMB_EXPANDED = 1_200_000_000  # bytes a bomb expands to (INDEX.md: "1.2 GB")
_CHUNK = 4 * MB

WORDS = (
    "river bridge language winter museum market festival paper health model garden report library school "
    "history token village science energy policy music season corpus city water"
).split()


def prose(n_chars: int, seed: int = 0) -> str:
    """Readable filler text (sentences of the words above), `n_chars` long."""
    out, i, size = [], seed, 0
    while size < n_chars:
        sentence = " ".join(WORDS[(i * 7 + k * 13) % len(WORDS)] for k in range(12)).capitalize() + ". "
        out.append(sentence)
        size += len(sentence)
        i += 1
    return "".join(out)[:n_chars]


def page(body: str, title: str = "A page") -> str:
    return f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head><body>{body}</body></html>"


# --- deflate streams of repeated data --------------------------------------------------------------------------------


def _full_flush_block(data: bytes, level: int = 9) -> bytes:
    """Raw deflate blocks for `data` that end byte-aligned and refer to nothing before them."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush(zlib.Z_FULL_FLUSH)


def write_gzip_member(f, parts: list[tuple[bytes, int]]) -> tuple[int, int]:
    """Append one gzip member whose content is each `data` repeated `times`, in order; returns (compressed bytes
    written, content bytes). The expanded content is never held in memory."""
    start = f.tell()
    f.write(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff")  # magic, deflate, no flags, mtime 0, max compression, unix
    crc, size = 0, 0
    for data, times in parts:
        block = _full_flush_block(data)
        for _ in range(times):
            f.write(block)
            crc = zlib.crc32(data, crc)
        size += len(data) * times
    f.write(zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS).flush(zlib.Z_FINISH))  # the final, empty block
    f.write(struct.pack("<II", crc & 0xFFFFFFFF, size & 0xFFFFFFFF))
    return f.tell() - start, size


def repeated(unit: bytes, total: int) -> list[tuple[bytes, int]]:
    """(chunk, times) parts that make `unit` repeated to exactly `total` bytes (total a multiple of len(unit))."""
    assert total % len(unit) == 0
    per_chunk = max(1, _CHUNK // len(unit))
    chunk = unit * per_chunk
    times, rest = divmod(total, len(chunk))
    parts = [(chunk, times)]
    if rest:
        parts.append((unit * (rest // len(unit)), 1))
    return parts


# --- the inputs ------------------------------------------------------------------------------------------------------


def gzip_bomb_html(path: Path, expanded: int = BOMB_EXPANDED) -> Path:
    """A .html.gz of about 1-2 MB that expands to `expanded` bytes of markup."""
    head = page("").split("</body>")[0].encode()
    unit = b"<p>bomb</p>"
    body = expanded - len(head)
    body -= body % len(unit)
    with open(path, "wb") as f:
        write_gzip_member(f, [(head, 1), *repeated(unit, body)])
    return path


def gzip_bomb_jsonl(path: Path, expanded: int = BOMB_EXPANDED) -> Path:
    """A .jsonl.gz: one ordinary record, one record whose text expands to `expanded` bytes, one ordinary record."""
    first = b'{"id": "before", "text": "' + prose(400).encode() + b'"}\n'
    last = b'{"id": "after", "text": "' + prose(400, seed=3).encode() + b'"}\n'
    unit = b"bomb "
    with open(path, "wb") as f:
        write_gzip_member(f, [(first, 1), (b'{"id": "bomb", "text": "', 1), *repeated(unit, expanded - expanded % 5)])
        write_gzip_member(f, [(b'"}\n' + last, 1)])  # a second member: gzip readers continue across members
    return path


def _warc_record(uri: str, record_id: str, http_head: bytes, body_length: int) -> bytes:
    """WARC headers and HTTP headers of a response whose HTTP body (`body_length` bytes) follows."""
    block_length = len(http_head) + body_length
    return (
        "WARC/1.0\r\n"
        "WARC-Type: response\r\n"
        f"WARC-Record-ID: <{record_id}>\r\n"
        "WARC-Date: 2024-01-01T00:00:00Z\r\n"
        f"WARC-Target-URI: {uri}\r\n"
        "Content-Type: application/http; msgtype=response\r\n"
        f"Content-Length: {block_length}\r\n\r\n"
    ).encode() + http_head


def _http_head(body_length: int, extra: str = "") -> bytes:
    return (
        f"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n{extra}Content-Length: {body_length}\r\n\r\n"
    ).encode()


def _small_record(f, n: int) -> str:
    body = page(f"<article><h1>Page {n}</h1><p>{prose(1500, seed=n)}</p></article>", f"Page {n}").encode()
    record_id = f"urn:uuid:00000000-0000-0000-0000-{n:012d}"
    data = _warc_record(f"http://example.com/{n}", record_id, _http_head(len(body)), len(body)) + body + b"\r\n\r\n"
    write_gzip_member(f, [(data, 1)])
    return record_id


def warc_bomb(path: Path, expanded: int = BOMB_EXPANDED) -> tuple[Path, list[str], list[str]]:
    """A .warc.gz: a page, then one gzip member holding a response whose body is `expanded` bytes, then a page, then
    a response of a small declared size whose gzip Content-Encoding expands to `expanded` bytes, then a page.
    Returns (path, ids of the pages, ids of the two bombs)."""
    unit = b"<p>bomb</p>"
    body_length = expanded - expanded % len(unit)
    with open(path, "wb") as f:
        pages = [_small_record(f, 1)]
        bomb = "urn:uuid:00000000-0000-0000-0000-00000000b0b1"
        head = _warc_record("http://example.com/bomb", bomb, _http_head(body_length), body_length)
        write_gzip_member(f, [(head, 1), *repeated(unit, body_length), (b"\r\n\r\n", 1)])
        pages.append(_small_record(f, 2))
        # HTTP Content-Encoding: gzip: the record itself is small, its body expands past any cap
        encoded_path = path.with_suffix(".body.gz")
        with open(encoded_path, "wb") as body_file:
            write_gzip_member(body_file, repeated(unit, body_length))
        encoded = encoded_path.read_bytes()
        encoded_path.unlink()
        coded = "urn:uuid:00000000-0000-0000-0000-00000000b0b2"
        http = _http_head(len(encoded), "Content-Encoding: gzip\r\n")
        data = _warc_record("http://example.com/coded", coded, http, len(encoded)) + encoded + b"\r\n\r\n"
        write_gzip_member(f, [(data, 1)])
        pages.append(_small_record(f, 3))
    return path, pages, [bomb, coded]


def big_page(path: Path, size: int = 50 * MB) -> Path:
    """A plain .html page of `size` bytes of ordinary markup."""
    head, tail = page("<article>").split("<article>")
    unit = f"<p>{prose(500)}</p>\n".encode()
    with open(path, "wb") as f:
        f.write(head.encode() + b"<article>")
        written = f.tell() + len(tail)
        while written + len(unit) <= size:
            f.write(unit)
            written += len(unit)
        f.write(b" " * (size - written) + tail.encode())
    return path


def million_elements(path: Path, n: int = 1_000_000) -> Path:
    """A page of `n` (small, flat) elements: about 4 MB, under the byte caps, over the element cap."""
    with open(path, "wb") as f:
        f.write(page("<p>A page of many elements.</p>").split("</body>")[0].encode())
        f.write(b"<i>a" * n)
        f.write(b"</body></html>")
    return path


def nested_divs(path: Path, depth: int = 100_000) -> Path:
    """`depth` nested <div>s around a paragraph of text."""
    with open(path, "wb") as f:
        f.write(b"<!DOCTYPE html><html><head><title>Deep</title></head><body>")
        f.write(b"<div>" * depth)
        f.write(f"<p>{prose(2000)}</p>".encode())
        f.write(b"</div>" * depth)
        f.write(b"</body></html>")
    return path


def single_line_jsonl(path: Path, size: int = 100 * MB) -> Path:
    """A .jsonl of one ordinary line, one line of `size` bytes, one ordinary line."""
    with open(path, "wb") as f:
        f.write(b'{"id": "before", "text": "' + prose(400).encode() + b'"}\n')
        f.write(b'{"id": "huge", "text": "')
        piece = prose(MB).encode()
        left = size
        while left > 0:
            f.write(piece[:left])
            left -= len(piece)
        f.write(b'"}\n{"id": "after", "text": "' + prose(400, seed=3).encode() + b'"}\n')
    return path


def single_line_text(path: Path, size: int = 100 * MB) -> Path:
    """A .txt file that is one line of `size` bytes."""
    piece = prose(MB).encode()
    with open(path, "wb") as f:
        left = size
        while left > 0:
            f.write(piece[:left])
            left -= len(piece)
    return path


def no_whitespace(size: int = 5_000_000) -> str:
    """`size` characters of letters and digits without a single whitespace character."""
    return prose(size + size // 5).replace(" ", "")[:size]


def warc_pages(path: Path, pages: list[tuple[str, bytes]]) -> list[str]:
    """A .warc.gz of one gzip member per response (url, html bytes); returns the record ids in order."""
    ids = []
    with open(path, "wb") as f:
        for n, (url, body) in enumerate(pages):
            record_id = f"urn:uuid:00000000-0000-0000-0001-{n:012d}"
            data = _warc_record(url, record_id, _http_head(len(body)), len(body)) + body + b"\r\n\r\n"
            write_gzip_member(f, [(data, 1)])
            ids.append(record_id)
    return ids


def ordinary_page(n: int) -> bytes:
    return page(f"<article><h1>Page {n}</h1><p>{prose(1500, seed=n)}</p></article>", f"Page {n}").encode()


def many_small_elements(n_pairs: int = 99_000) -> bytes:
    """About 3 MB of `<div><p>..</p></div>` pairs: under every byte cap and under the element cap (2 per pair),
    and far slower for trafilatura than the extraction timeout (over a minute here)."""
    return page("<div><p>river bridge</p></div>" * n_pairs).encode()


def deep_json_line(depth: int = 1_000_000) -> bytes:
    """One JSON Lines record whose text field is a list nested `depth` deep."""
    return b'{"id": "deep", "text": ' + b"[" * depth + b"]" * depth + b"}\n"


def parquet_dictionary_bomb(path: Path, value_chars: int = 5_000_000, copies: int = 240) -> Path:
    """About 2 MB of Parquet whose text column refers `copies` times to one dictionary value of `value_chars`
    characters: 1.2 GB once every row has its own copy. A row before and after with ordinary text."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    values = pa.array([prose(400), prose(value_chars, seed=5), prose(400, seed=3)])
    indices = pa.array([0] + [1] * copies + [2], pa.int32())
    ids = ["before"] + [f"copy-{n}" for n in range(copies)] + ["after"]
    table = pa.table({"id": ids, "text": pa.DictionaryArray.from_arrays(indices, values)})
    # without the stored Arrow schema the column reads back as plain strings (the dictionary is Parquet's own)
    pq.write_table(table, path, compression="zstd", store_schema=False)
    return path


def parquet_page_bomb(path: Path, value_bytes: int = 60 << 20) -> Path:
    """Three row groups: an ordinary row, one row whose text is `value_bytes` of one repeated letter (a few KB
    compressed), an ordinary row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("id", pa.string()), ("text", pa.string())])
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        for row_id, text in (("before", prose(400)), ("bomb", "a" * value_bytes), ("after", prose(400, seed=3))):
            writer.write_table(pa.table({"id": [row_id], "text": [text]}, schema=schema))
    return path
