"""WARC (and WET) files, gzip/LZ4/zstd or plain, and legacy ARC files: records to Documents with provenance.

fastwarc parses WARC; on damage it either raises or, for a truncated gzip member, stops silently. So the reader
around it (`iter_records`) checks where the parse stopped against the file size, reports the damage and resumes at
the next record start it can find: the next gzip/LZ4 member magic or the next "WARC/" header line, each
confirmed by parsing a record there. Record keys (the offsets units are cut at) are always positions a reader can
seek to: a record start in a plain file, a member start in a compressed one.
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Iterator
from datetime import datetime, timezone
from functools import lru_cache, partial

from fastwarc.warc import ArchiveIterator, WarcHeader, WarcRecordType

from corpus.config import IngestConfig
from corpus.document import Document, stable_id
from corpus.safe import safe_text
from corpus.sources import InputFormat, Rejection, WorkUnit, register_format
from corpus.sources.decode import sniff_binary

GZIP_MAGIC = b"\x1f\x8b\x08"
LZ4_MAGIC = b"\x04\x22\x4d\x18"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
WARC_MAGIC = b"WARC/"  # WARC/1.0, WARC/1.1, and WARC/0.18 from ClueWeb09

# Records that carry a page: HTTP responses, stored resources, and WET text conversions.
CONTENT_TYPES = WarcRecordType.response | WarcRecordType.resource | WarcRecordType.conversion
# URI schemes of web content; wget writes its log and manifest as `resource` records under metadata:// URIs,
# and hostile archives carry file:, javascript: or gopher: targets.
WEB_SCHEMES = frozenset(["http", "https", "ftp"])
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")

RESYNC_CHUNK = 1 << 20
_HEADER_PROBE = 32 << 10  # fastwarc's own limit on a header block (max_header_len)


def _report(errors: list[dict], path: str, offset: int, message: str) -> None:
    """Append a damage report; one report per place, however many layers noticed it."""
    if errors and errors[-1]["path"] == path and errors[-1]["offset"] == offset:
        return
    errors.append({"path": path, "offset": int(offset), "error": message})


# --- where records start ---------------------------------------------------------------------------------------------


def _boundary_magic(head: bytes) -> bytes:
    """Bytes every record (member, frame) of this file starts with, from the file's first bytes."""
    for magic in (GZIP_MAGIC, LZ4_MAGIC, ZSTD_MAGIC):
        if head.startswith(magic):
            return magic
    return WARC_MAGIC


def _is_boundary(fd: int, pos: int, magic: bytes) -> bool:
    return os.pread(fd, len(magic), pos) == magic


def _parses_at(f, pos: int) -> bool:
    """Does a WARC record start exactly at `pos`? (fastwarc reads one record there.)"""
    f.seek(pos)
    try:
        for record in ArchiveIterator(f, parse_http=False, quirks_mode=True):
            return record.stream_pos == pos
    except OSError:
        return False
    return False


def _find_resume(f, fd: int, start: int, size: int, magic: bytes) -> int | None:
    """First position >= start where a member magic (or header line) begins and a record parses."""
    pos = start
    overlap = len(magic) - 1
    while pos < size:
        chunk = os.pread(fd, RESYNC_CHUNK, pos)
        if not chunk:
            return None
        i = chunk.find(magic)
        while i != -1:
            candidate = pos + i
            # An uncompressed header line starts a line; inside a payload "WARC/" rarely does, and parsing checks.
            line_start = magic != WARC_MAGIC or candidate == 0 or os.pread(fd, 1, candidate - 1) == b"\n"
            if line_start and _parses_at(f, candidate):
                return candidate
            i = chunk.find(magic, i + 1)
        if len(chunk) < RESYNC_CHUNK:
            return None
        pos += len(chunk) - overlap
    return None


def _gzip_member_end(fd: int, start: int) -> int | None:
    """End offset of the gzip member starting at `start`, or None when it is truncated or corrupt."""
    inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
    pos = start
    try:
        while not inflater.eof:
            chunk = os.pread(fd, 1 << 16, pos)
            if not chunk:
                return None
            pos += len(chunk)
            # Output is discarded; max_length keeps a bomb from filling memory, unconsumed_tail carries the rest.
            data = chunk
            while data and not inflater.eof:
                inflater.decompress(data, 1 << 20)
                data = inflater.unconsumed_tail
    except zlib.error:
        return None
    return pos - len(inflater.unused_data)


_HEADER_END = re.compile(rb"\n\r*\n")  # the empty line after a header block; some writers emit \r\r\n


def _plain_record_end(fd: int, start: int, content_length: int) -> tuple[int, int]:
    """(payload start, payload end) of an uncompressed record; the record's trailing line ends follow."""
    match = _HEADER_END.search(os.pread(fd, 4096, start)) or _HEADER_END.search(os.pread(fd, _HEADER_PROBE, start))
    payload_start = start + (match.end() if match else 0)
    return payload_start, payload_start + content_length


def _skip_line_ends(fd: int, pos: int) -> int:
    """Position after the line ends at `pos`: a record ends with CRLF CRLF, but writers differ."""
    trailing = os.pread(fd, 64, pos)
    return pos + len(trailing) - len(trailing.lstrip(b"\r\n"))


def _tail_after(fd: int, record_start: int, block_length: int, magic: bytes, size: int) -> tuple[int, bool]:
    """(where the data after the last parsed record starts, whether that record's bytes are all there)."""
    if magic == GZIP_MAGIC:
        end = _gzip_member_end(fd, record_start)
        return (record_start + 1, False) if end is None else (end, True)
    if magic == WARC_MAGIC:
        payload_start, end = _plain_record_end(fd, record_start, block_length)
        if end > size:  # truncated, or a Content-Length too big: look for records inside the claimed span
            return payload_start, False
        return _skip_line_ends(fd, end), True
    return record_start + 1, True  # LZ4/zstd frames: no cheap end; resync scanning starts inside the frame


def iter_records(path: str, start: int, errors: list[dict]) -> Iterator[tuple[int, object]]:
    """(key, fastwarc record) for every record from `start` on, resuming after damage; never raises on bad data.

    `key` is the record's start offset when a reader can seek there, else the key of the record before it
    (records inside one multi-record gzip member all get the member's offset). fastwarc fills one record object
    again for each record (`inplace`, no allocation per record): use a record before taking the next.
    """
    size = os.path.getsize(path)
    if size == 0:
        _report(errors, path, 0, "empty file")
        return
    with open(path, "rb") as f:
        fd = f.fileno()
        magic = _boundary_magic(os.pread(fd, 16, 0))
        pos: int | None = start
        while pos is not None and pos < size:
            key, last = pos, None  # last: (record start, block length) of the last record parsed this round
            failure = ""
            f.seek(pos)
            try:
                expected = None  # plain files: where the next record should start
                for record in ArchiveIterator(f, parse_http=False, quirks_mode=True, inplace=True):
                    stream_pos = record.stream_pos
                    if stream_pos >= pos and _is_boundary(fd, stream_pos, magic):
                        key = stream_pos
                        last = (stream_pos, record.content_length)
                        if magic == WARC_MAGIC:
                            # quirks mode skips junk between records silently; the gap is damage to report
                            if expected is not None and key > expected:
                                gap = f"{key - expected} unreadable bytes before the record at {key}"
                                _report(errors, path, expected, gap)
                            expected = _skip_line_ends(fd, _plain_record_end(fd, key, record.content_length)[1])
                    yield key, record
            except OSError as exc:
                failure = str(exc) or type(exc).__name__
            if last is None:
                tail, complete = pos + 1, False
                failure = failure or "no WARC record could be parsed here"
            else:
                tail, complete = _tail_after(fd, last[0], last[1], magic, size)
            if tail >= size and not failure and complete:
                return
            pos = _find_resume(f, fd, tail, size, magic)
            if failure:
                damage_at = tail if complete else (last[0] if last else tail - 1)
                _report(errors, path, damage_at, failure)
            elif not complete:
                _report(errors, path, last[0], "record is truncated (file ends inside it)")
            elif pos is None:
                if magic in (GZIP_MAGIC, WARC_MAGIC):  # LZ4/zstd: the end of the last frame is not known exactly
                    _report(errors, path, tail, f"the last {size - tail} bytes are not a readable WARC record")
            elif pos > tail:
                _report(errors, path, tail, f"{pos - tail} unreadable bytes before the next record at {pos}")
            if pos is not None and last is not None and pos <= last[0]:
                pos = None  # no progress possible; never loop


def plan_cuts(path: str, fmt: str, unit_bytes: int) -> list[int]:
    """Offsets (record starts) at which to cut `path` into units of about `unit_bytes`."""
    size = os.path.getsize(path)
    if size <= unit_bytes:
        return []
    if fmt == "arc":
        offsets = (offset for offset, _ in iter_arc_records(path, 0, [], max_bytes=None))
    else:
        offsets = (key for key, _ in iter_records(path, 0, []))
    cuts: list[int] = []
    next_cut = unit_bytes
    for offset in offsets:
        if offset >= next_cut and (not cuts or offset > cuts[-1]):
            cuts.append(offset)
            next_cut = offset + unit_bytes
    return cuts


def plan_units(paths: list[str], cfg: IngestConfig, fmt: str) -> list[WorkUnit]:
    """Units of about `cfg.unit_bytes` per file, cut at record starts (`plan_cuts`)."""
    units: list[WorkUnit] = []
    for path in paths:
        bounds = [0, *plan_cuts(path, fmt, cfg.unit_bytes), -1]
        units.extend(WorkUnit(path, start, end, fmt) for start, end in zip(bounds, bounds[1:]))
    return units


# --- records to documents --------------------------------------------------------------------------------------------


def read_records(unit: WorkUnit, cfg: IngestConfig, errors: list[dict]) -> Iterator[Document | Rejection]:
    """One Document or Rejection per response/resource/conversion record of the unit; others are skipped."""
    path, end, max_records = unit.path, unit.end, cfg.max_records
    n = 0
    for key, record in iter_records(path, unit.start, errors):
        if 0 <= end <= key:
            return
        if not record.record_type & CONTENT_TYPES:
            continue
        if max_records and n >= max_records:
            return
        n += 1
        yield _warc_item(path, key, record, cfg, errors)


def _is_web_url(url: str) -> bool:
    """True for http(s)/ftp URLs, and for records without a target URI (nothing to judge)."""
    if url.startswith(("https://", "http://")):
        return True  # nearly every record: no regex
    match = _SCHEME.match(url)
    return not url or (match is not None and match.group(1).lower() in WEB_SCHEMES)


def _strip_brackets(value: str | None) -> str:
    """wget writes `<https://...>` and record ids are `<urn:uuid:...>`: keep what is inside."""
    value = (value or "").strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    return value


# Headers the reader needs from every record. fastwarc's HeaderMap looks a WarcHeader key up several times faster
# than the same name given as a string (a microsecond, as much as the rest of a record's checks).
_URI, _DATE, _LENGTH, _TYPE = (
    WarcHeader.WARC_TARGET_URI, WarcHeader.WARC_DATE, WarcHeader.CONTENT_LENGTH, WarcHeader.CONTENT_TYPE
)


def _warc_date(record, text: str | None) -> datetime | None:
    """WARC-Date (`text`, the header value) as an aware UTC datetime, or None when it cannot be read."""
    # The form writers use, 2024-05-18T10:00:00Z (WARC 1.1, 5.4): fromisoformat reads it 30 times faster than
    # fastwarc's record_date, to the same value (fromisoformat accepts only ASCII digits between these marks).
    if text and len(text) == 20 and text[19] == "Z" and text[4] + text[7] + text[10] + text[13] + text[16] == "--T::":
        try:
            return datetime.fromisoformat(text)
        except ValueError:  # an impossible date such as 2024-02-30: the general path decides
            pass
    try:
        value = record.record_date
    except (ValueError, OSError):
        value = None
    if value is None:
        text = (text or "").strip()
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None  # ClueWeb09 writes dates like 2008-10-294T05:21:46-0700
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


@lru_cache(maxsize=1024)  # a crawl repeats a handful of values ("text/html; charset=UTF-8") on every record
def parse_content_type(value: str) -> tuple[str, str]:
    """("text/html", "utf-8") from 'text/html; charset="UTF-8"; profile=...'; lower-case mime, raw charset."""
    mime, has_params, params = (value or "").partition(";")
    charset = ""
    if has_params:
        for param in params.split(";"):
            name, _, val = param.partition("=")
            if name.strip().lower() == "charset":
                charset = val.strip().strip("\"'").strip()
    return mime.strip().lower(), charset


def dechunk(body: bytes) -> bytes:
    """Undo HTTP chunked transfer coding; a body that is not chunked is returned as is.

    Several WARC writers store the body already de-chunked but keep the `Transfer-Encoding: chunked` header
    (pywb's sample crawl does), so chunking is checked, not assumed. A body cut inside a chunk keeps what arrived.
    """
    parts, pos = [], 0
    while True:
        eol = body.find(b"\n", pos, pos + 1024)
        size_field = body[pos:eol].split(b";")[0].strip() if eol != -1 else b""
        try:
            size = int(size_field, 16)
        except ValueError:
            return body if pos == 0 else b"".join(parts)
        if size == 0:
            return b"".join(parts)
        parts.append(body[eol + 1 : eol + 1 + size])
        pos = eol + 1 + size
        pos += 2 if body[pos : pos + 2] == b"\r\n" else 1


class PayloadTooLarge(Exception):
    pass


def _read_exact(reader, n: int) -> bytes:
    parts, got = [], 0
    while got < n:
        chunk = reader.read(n - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)


def undo_content_encoding(body: bytes, encoding: str, cap: int) -> bytes:
    """Undo HTTP Content-Encoding (gzip, deflate, br; several in order) producing at most `cap` bytes.

    Raises PayloadTooLarge past the cap (a decompression bomb), ValueError for an encoding we cannot undo.
    Bodies labelled gzip that are not gzip are returned as they are: some crawlers store the decoded body and
    keep the header.
    """
    for coding in reversed([c.strip().lower() for c in encoding.split(",") if c.strip()]):
        if coding in ("identity", "none"):
            continue
        if coding in ("gzip", "x-gzip"):
            if not body.startswith(b"\x1f\x8b"):
                continue
            body = _inflate(body, zlib.MAX_WBITS | 16, cap)
        elif coding == "deflate":
            try:
                body = _inflate(body, zlib.MAX_WBITS, cap)  # zlib-wrapped, as the RFC says
            except zlib.error:
                body = _inflate(body, -zlib.MAX_WBITS, cap)  # raw deflate, as many servers send
        elif coding == "br":
            body = _unbrotli(body, cap)
        else:
            raise ValueError(f"content-encoding {coding!r}")
    return body


def _inflate(data: bytes, wbits: int, cap: int) -> bytes:
    inflater = zlib.decompressobj(wbits)
    out = inflater.decompress(data, cap + 1)
    if len(out) > cap:
        raise PayloadTooLarge(f"decompressed payload exceeds {cap} bytes")
    return out


def _unbrotli(data: bytes, cap: int) -> bytes:
    import brotli  # installed with fastwarc

    decompressor = brotli.Decompressor()
    try:
        out = decompressor.process(data, output_buffer_limit=cap + 1)
    except brotli.error as exc:
        raise ValueError(f"brotli: {exc}") from exc
    if len(out) > cap:
        raise PayloadTooLarge(f"decompressed payload exceeds {cap} bytes")
    return out


def _warc_item(path: str, key: int, record, cfg: IngestConfig, errors: list[dict]) -> Document | Rejection:
    headers = record.headers
    doc = Document(
        id=_strip_brackets(record.record_id) or stable_id(path, key),
        source=path,
        offset=key,
        url=_strip_brackets(headers.get(_URI)),
        fetched_at=_warc_date(record, headers.get(_DATE)),
    )
    if not _is_web_url(doc.url):
        return Rejection(doc, "ingest", "unsupported_uri_scheme", f"uri={safe_text(doc.url, 200)}")
    length_header = (headers.get(_LENGTH) or "").strip()
    if not length_header.isdigit() or int(length_header) != record.content_length:
        # fastwarc (quirks mode) reads such a record as empty and finds the next header itself.
        _report(errors, path, key, f"invalid WARC Content-Length {length_header[:40]!r}")
        return Rejection(doc, "ingest", "malformed_record", f"WARC Content-Length {length_header[:40]!r}")
    bad_digest, missing = _verify_block(record, cfg)  # before parse_http: the block digest covers the HTTP headers
    status, http = None, None
    if record.is_http and record.record_type == WarcRecordType.response:
        try:
            record.parse_http(quirks_mode=True)
        except (OSError, ValueError) as exc:
            return Rejection(doc, "ingest", "malformed_http", safe_text(f"HTTP headers: {exc}"))
        http = record.http_headers
        status = http.status_code
        content_type = http.get(_TYPE) or ""
    else:
        content_type = headers.get(_TYPE) or ""
    doc.content_type, doc.charset = parse_content_type(content_type)
    rejection = _header_rejection(doc, status, cfg)
    if rejection is not None:
        return rejection  # decided from headers: the payload is skipped unread
    content_encoding, chunked = _http_codings(http) if http is not None else ("", False)
    declared = record.content_length + missing  # `missing`: bytes of a truncated block the digest check found absent
    if declared > cfg.max_record_bytes:
        detail = f"payload {declared} bytes > max_record_bytes {cfg.max_record_bytes}"
        return Rejection(doc, "ingest", "too_large", detail)
    try:
        reader = record.reader
        body = reader.read(declared)  # all of it, unless the file ends or a stream returns less per call
        if len(body) < declared:
            body += _read_exact(reader, declared - len(body))
    except OSError as exc:
        _report(errors, path, key, f"record payload unreadable: {exc}")
        return Rejection(doc, "ingest", "truncated_record", f"payload unreadable: {exc}")
    if len(body) < declared:
        _report(errors, path, key, f"record truncated: payload has {len(body)} of {declared} bytes")
        return Rejection(doc, "ingest", "truncated_record", f"payload has {len(body)} of {declared} declared bytes")
    if bad_digest:
        # Whole but not what was written: flipped bytes in a plain file, or a Content-Length too small (the record
        # then ends early and the rest of its bytes are reported as unreadable before the next record).
        _report(errors, path, key, f"record bytes do not match their WARC-Block-Digest {bad_digest}")
        return Rejection(doc, "ingest", "digest_mismatch", f"WARC-Block-Digest {bad_digest} does not match the record")
    if chunked:
        body = dechunk(body)
    return _payload_item(doc, body, content_encoding, cfg)


# Digest algorithms fastwarc verifies (base32 or hex values); a record labelled otherwise is not checked.
_DIGEST_ALGORITHMS = frozenset(["sha1", "md5", "sha256", "sha512"])
_BLOCK_DIGEST = WarcHeader.WARC_BLOCK_DIGEST
_DIGEST_SLACK = 64 << 10  # HTTP headers are part of the block, not of max_record_bytes


def _verify_block(record, cfg: IngestConfig) -> tuple[str, int]:
    """(the record's WARC-Block-Digest, made printable, when the block's bytes do not match it, else ""; how many
    bytes of the block the file lacks).

    Records without the header, with an algorithm fastwarc does not know, or too large to be read (they are
    rejected as too_large anyway) are not checked. The block is read into memory once (consume=False), and the
    HTTP headers and payload are then read from that copy, whose length fastwarc then reports as the record's:
    the bytes a truncated block lacks are returned so that truncation is still seen as such.
    """
    declared = (record.headers.get(_BLOCK_DIGEST) or "").strip()
    block_length = record.content_length
    if not declared or block_length > cfg.max_record_bytes + _DIGEST_SLACK:
        return "", 0
    if declared.partition(":")[0].lower() not in _DIGEST_ALGORITHMS:
        return "", 0
    try:
        matches = record.verify_block_digest(consume=False)
    except (OSError, ValueError):
        return "", 0  # unreadable: the payload read that follows reports it
    missing = max(block_length - record.content_length, 0)
    return ("" if matches or missing else safe_text(declared, 80)), missing


def _http_codings(http) -> tuple[str, bool]:
    """(Content-Encoding, whether Transfer-Encoding is chunked) of parsed HTTP headers."""
    names = b" ".join(http.keys_bytes()).lower()  # most responses name neither: skip two slow lookups
    if b"content-encoding" not in names and b"transfer-encoding" not in names:
        return "", False
    return http.get("Content-Encoding") or "", "chunked" in (http.get("Transfer-Encoding") or "").lower()


def _header_rejection(doc: Document, status: int | None, cfg: IngestConfig) -> Rejection | None:
    """Redirects, errors and non-text types are known from the headers alone."""
    if status is not None and not 200 <= status < 300:
        return Rejection(doc, "ingest", "http_status", f"status={status}")
    if doc.content_type and doc.content_type not in cfg.content_types:
        return Rejection(doc, "ingest", "unsupported_content_type", f"content_type={safe_text(doc.content_type, 200)}")
    return None


def _payload_item(doc: Document, body: bytes, content_encoding: str, cfg: IngestConfig) -> Document | Rejection:
    """Checks shared by WARC and ARC records once the HTTP body is in hand: encoding, size, binary magic."""
    if content_encoding:
        try:
            body = undo_content_encoding(body, content_encoding, cfg.max_record_bytes)
        except PayloadTooLarge as exc:
            return Rejection(doc, "ingest", "too_large", safe_text(f"content-encoding {content_encoding}: {exc}"))
        except (ValueError, zlib.error) as exc:
            return Rejection(doc, "ingest", "bad_content_encoding", safe_text(f"{content_encoding}: {exc}"))
    magic = sniff_binary(body[:64])
    if magic:
        detail = f"starts like {magic}; content_type={safe_text(doc.content_type or '-', 200)}"
        return Rejection(doc, "ingest", "binary_payload", detail)
    doc.raw = body
    return doc


# --- ARC (the Internet Archive's format before WARC) ------------------------------------------------------------------
#
# A version block `filedesc://name IP date text/plain length` then records `URL IP date mime length\n<length
# bytes>\n`; ARC v2 adds fields between mime and length, so the length is always the last field. In .arc.gz each
# record is its own gzip member. fastwarc 2 does not read ARC, so this small reader does.


def _arc_header(line: bytes) -> tuple[str, str, int] | None:
    """(url, date, length) from an ARC header line, or None when it is not one.

    v1 lines have five fields (URL IP date mime length), v2 lines ten; a v1 URL may contain spaces.
    """
    fields = line.strip().split(b" ")
    if len(fields) < 5 or not fields[-1].isdigit():
        return None
    url, date = (fields[0], fields[2]) if len(fields) >= 10 else (b" ".join(fields[:-4]), fields[-3])
    return url.decode("utf-8", "replace"), date.decode("ascii", "replace"), int(fields[-1])


def _arc_date(value: str) -> datetime | None:
    try:
        return datetime.strptime(value[:14], "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


def iter_arc_records(path: str, start: int, errors: list[dict], max_bytes: int | None):
    """(offset, (url, date, length, content)) per ARC record from `start` on, never raising on bad data.

    content is None when the record is longer than `max_bytes` (it is skipped, not read) or when max_bytes is
    None (planning only needs offsets).
    """
    with open(path, "rb") as f:
        compressed = f.read(2) == b"\x1f\x8b"
        f.seek(start)
        if compressed:
            yield from _iter_arc_gzip(path, f, errors, max_bytes)
        else:
            yield from _iter_arc_plain(path, f, errors, max_bytes)


def _iter_arc_plain(path: str, f, errors: list[dict], max_bytes: int | None):
    while True:
        offset = f.tell()
        line = f.readline(1 << 16)
        while line in (b"\n", b"\r\n"):
            offset, line = f.tell(), f.readline(1 << 16)
        if not line:
            return
        header = _arc_header(line)
        if header is None:
            _report(errors, path, offset, f"not an ARC record header: {line[:80]!r}")
            if not _skip_to_arc_header(f):
                return
            continue
        url, date, length = header
        if max_bytes is None or length > max_bytes:
            f.seek(length, os.SEEK_CUR)
            content = None
        else:
            content = f.read(length)
        yield offset, (url, date, length, content)


def _skip_to_arc_header(f) -> bool:
    """Move to the next line that parses as an ARC header; False at end of file."""
    while True:
        pos = f.tell()
        line = f.readline(1 << 16)
        if not line:
            return False
        if _arc_header(line) is not None and b"://" in line.split(b" ")[0]:
            f.seek(pos)
            return True


def _iter_arc_gzip(path: str, f, errors: list[dict], max_bytes: int | None):
    fd = f.fileno()
    size = os.path.getsize(path)
    pos = f.tell()
    while pos < size:
        end = _gzip_member_end(fd, pos)
        if end is None:
            _report(errors, path, pos, "truncated or corrupt gzip member")
            f.seek(pos + 1)
            nxt = _next_magic(fd, pos + 1, size, GZIP_MAGIC)
            if nxt is None:
                return
            pos = nxt
            continue
        f.seek(pos)
        member = gzip.GzipFile(fileobj=_Window(f, end))
        try:
            line = member.readline(1 << 16)
            header = _arc_header(line)
            if header is None:
                _report(errors, path, pos, f"not an ARC record header: {line[:80]!r}")
            else:
                url, date, length = header
                content = None if max_bytes is None or length > max_bytes else member.read(length)
                yield pos, (url, date, length, content)
        except (OSError, EOFError, zlib.error) as exc:
            _report(errors, path, pos, f"gzip member unreadable: {exc}")
        pos = end


class _Window:
    """A file object that ends at `end`, so gzip reads exactly one member."""

    def __init__(self, f, end: int):
        self.f, self.end = f, end

    def read(self, n: int = -1) -> bytes:
        left = self.end - self.f.tell()
        return self.f.read(left if n < 0 else min(n, left)) if left > 0 else b""


def _next_magic(fd: int, start: int, size: int, magic: bytes) -> int | None:
    pos = start
    while pos < size:
        chunk = os.pread(fd, RESYNC_CHUNK, pos)
        i = chunk.find(magic)
        if i != -1:
            return pos + i
        if len(chunk) < RESYNC_CHUNK:
            return None
        pos += len(chunk) - len(magic) + 1
    return None


def read_arc_records(unit: WorkUnit, cfg: IngestConfig, errors: list[dict]) -> Iterator[Document | Rejection]:
    """One Document or Rejection per capture of the ARC unit (the version block is skipped)."""
    n = 0
    max_bytes = cfg.max_record_bytes + (64 << 10)  # an ARC record holds the HTTP headers too
    for offset, (url, date, length, content) in iter_arc_records(unit.path, unit.start, errors, max_bytes):
        if unit.end >= 0 and offset >= unit.end:
            return
        if url.startswith("filedesc://"):
            continue  # the version block describes the file, it is not a capture
        if cfg.max_records and n >= cfg.max_records:
            return
        n += 1
        yield _arc_item(unit.path, offset, url, date, length, content, cfg, errors)


def _arc_item(path, offset, url, date, length, content, cfg, errors) -> Document | Rejection:
    doc = Document(id=stable_id(path, offset), source=path, offset=offset, url=url, fetched_at=_arc_date(date))
    if not _is_web_url(url):
        return Rejection(doc, "ingest", "unsupported_uri_scheme", f"uri={safe_text(url, 200)}")
    if content is None:
        return Rejection(doc, "ingest", "too_large", f"record {length} bytes > max_record_bytes {cfg.max_record_bytes}")
    if len(content) < length:
        _report(errors, path, offset, f"record truncated: {len(content)} of {length} bytes")
        return Rejection(doc, "ingest", "truncated_record", f"record has {len(content)} of {length} declared bytes")
    status, headers, body = _split_http(content)
    doc.content_type, doc.charset = parse_content_type(headers.get("content-type", ""))
    rejection = _header_rejection(doc, status, cfg)
    if rejection is not None:
        return rejection
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = dechunk(body)
    return _payload_item(doc, body, headers.get("content-encoding", ""), cfg)


_HTTP_HEADER_END = re.compile(rb"\r?\n\r?\n")  # some ARC writers converted CRLF to LF


def _split_http(content: bytes) -> tuple[int | None, dict[str, str], bytes]:
    """(status, lower-cased headers, body) of an HTTP response as ARC stores it (no HTTP part: (None, {}, content))."""
    if not content.startswith(b"HTTP/"):
        return None, {}, content
    blank = _HTTP_HEADER_END.search(content)
    head, body = (content[: blank.start()], content[blank.end() :]) if blank else (content, b"")
    lines = head.decode("latin-1").splitlines()
    parts = lines[0].split(" ", 2)
    status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


# --- registration ----------------------------------------------------------------------------------------------------


def _starts_like_warc(head: bytes) -> bool:
    # Of the formats read here only WARC comes LZ4-framed, and the sniffer cannot look inside LZ4.
    return head.startswith(WARC_MAGIC) or head.startswith(LZ4_MAGIC)


WARC = register_format(
    InputFormat(
        name="warc",
        suffixes=(".warc.wet.gz", ".warc.gz", ".warc.lz4", ".warc.zst", ".wet.gz", ".wet.lz4", ".warc", ".wet"),
        sniff=_starts_like_warc,
        sniff_proves=True,
        plan=partial(plan_units, fmt="warc"),
        read=read_records,
    )
)
ARC = register_format(
    InputFormat(
        name="arc",
        suffixes=(".arc.gz", ".arc"),
        sniff=lambda head: head.startswith(b"filedesc://"),
        sniff_proves=True,
        plan=partial(plan_units, fmt="arc"),
        read=read_arc_records,
    )
)
