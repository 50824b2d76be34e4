"""Source readers: input paths to work units, and a work unit to a stream of documents or rejections.

A work unit is a range of one input file whose bounds are record starts, so units can be read in any order, by
any process, and every record belongs to exactly one unit: byte offsets for WARC and plain JSONL, row numbers for
Parquet (row-group starts) and Arrow (record-batch starts), and a group of whole files for HTML/text trees.
Readers never raise on damaged input: they report the damage (path, byte offset, message) into an `errors`
list, keep every record before it and resume after it where the format allows.

The reader is chosen by file name, then by the file's first bytes (`input_format`), unless `IngestConfig.format`
names one for every input.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

from corpus.config import IngestConfig
from corpus.document import Document


@dataclass(frozen=True)
class WorkUnit:
    """Records whose start (byte offset or row number, by format) is in [start, end) of `path`; end == -1 means to
    the end of the file. File groups (formats "html" and "text") list their files in `files` instead."""

    path: str
    start: int
    end: int
    format: str
    files: tuple[str, ...] = ()


@dataclass
class Rejection:
    """An input record dropped with a named reason; `doc` carries its provenance (id, url, source, offset)."""

    doc: Document
    stage: str
    reason: str
    detail: str = ""


FORMATS = ("warc", "arc", "jsonl", "parquet", "arrow", "html", "text", "urls")

# Longest suffixes first: ".warc.gz" must win over ".gz". A ".txt" file is read as text unless every line is
# an http(s) URL: then it is a URL list (format "urls"), to crawl (`corpus.sources.crawl.crawl_url_lists`).
FORMAT_SUFFIXES: list[tuple[str, str]] = [
    (".warc.wet.gz", "warc"),
    (".warc.gz", "warc"),
    (".warc.lz4", "warc"),
    (".warc.zst", "warc"),
    (".wet.gz", "warc"),
    (".wet.lz4", "warc"),
    (".warc", "warc"),
    (".wet", "warc"),
    (".arc.gz", "arc"),
    (".arc", "arc"),
    (".jsonl.gz", "jsonl"),
    (".jsonl.zst", "jsonl"),
    (".json.gz", "jsonl"),  # JSON Lines under a .json.gz name, as C4 and many dumps ship it
    (".json.zst", "jsonl"),
    (".ndjson.gz", "jsonl"),
    (".ndjson", "jsonl"),
    (".jsonl", "jsonl"),
    (".parquet", "parquet"),
    (".arrow", "arrow"),  # IPC file or stream: the reader tells them apart by their first bytes
    (".arrows", "arrow"),
    (".feather", "arrow"),
    (".html.gz", "html"),  # saved pages often come gzipped, as in web-extraction test sets
    (".htm.gz", "html"),
    (".html.zst", "html"),
    (".txt.gz", "text"),
    (".txt.zst", "text"),
    (".html", "html"),
    (".htm", "html"),
    (".xhtml", "html"),
    (".txt", "text"),
]

# Formats the first bytes prove; they win over a file name that says otherwise.
_BINARY_MAGIC_FORMATS = frozenset(["parquet", "arrow", "warc", "arc"])
_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"
_LZ4 = b"\x04\x22\x4d\x18"
_SNIFF_BYTES = 4096
# pyarrow's zstd stream returns nothing from a read that meets a truncation: small reads keep more of what came before.
_ZSTD_READ = 1 << 16

URL_LIST_SCAN_BYTES = 1 << 20
_URL_LINE = re.compile(r"https?://\S+", re.IGNORECASE)


# --- which reader ----------------------------------------------------------------------------------------------------


def format_by_name(path: str) -> str:
    """Reader format from the file name alone ("warc", "jsonl", ..., "text"), or "" when the name says nothing."""
    name = path.lower()
    for suffix, fmt in FORMAT_SUFFIXES:
        if name.endswith(suffix):
            return fmt
    return ""


def compression_of(path: str) -> str:
    """ "gzip", "zstd" or "" from the file's magic bytes (names lie: a .jsonl may be gzip, a .gz may be plain)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head.startswith(_GZIP):
        return "gzip"
    if head.startswith(_ZSTD):
        return "zstd"
    return ""


def open_decompressed(path: str, compression: str):
    """A binary file object of the file's decompressed bytes (`compression` as `compression_of` gives it)."""
    if compression == "gzip":
        return gzip.open(path, "rb")
    if compression == "zstd":
        import pyarrow as pa  # pyarrow ships a zstd codec: no extra dependency

        if not pa.Codec.is_available("zstd"):
            raise OSError("this pyarrow build has no zstd codec: install pyarrow from PyPI to read .zst files")
        return io.BufferedReader(pa.CompressedInputStream(pa.OSFile(path, "rb"), "zstd"), _ZSTD_READ)
    return open(path, "rb")


def _decompressed_head(head: bytes) -> bytes:
    """First bytes inside a gzip or zstd stream ("" when they cannot be had)."""
    try:
        if head.startswith(_GZIP):
            return zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(head, _SNIFF_BYTES)
        if head.startswith(_ZSTD):
            import pyarrow as pa

            stream = pa.CompressedInputStream(pa.BufferReader(head), "zstd")
            return stream.read(_SNIFF_BYTES)
    except (zlib.error, OSError, ValueError, ImportError):
        return b""
    return b""


def _format_of_bytes(head: bytes) -> str:
    """Format shown by a file's (decompressed) first bytes; text guesses are "jsonl" and "html"."""
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.startswith(b"ARROW1") or head.startswith(b"\xff\xff\xff\xff"):  # IPC file magic; IPC stream continuation
        return "arrow"
    if head.startswith(b"WARC/"):
        return "warc"
    if head.startswith(b"filedesc://"):
        return "arc"
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"{"):
        return "jsonl"
    if text[:1] == b"<" and re.match(rb"<(!doctype|html|head|body|meta|!--|\?xml)", text[:16], re.IGNORECASE):
        return "html"
    return ""


def sniff_format(path: str) -> str:
    """Format shown by the first bytes of `path` (looking inside gzip and zstd), or "" when they show none."""
    try:
        with open(path, "rb") as f:
            head = f.read(_SNIFF_BYTES)
    except OSError:
        return ""
    if head.startswith(_LZ4):
        return "warc"  # of the formats read here only WARC comes LZ4-framed
    if head.startswith(_GZIP) or head.startswith(_ZSTD):
        return _format_of_bytes(_decompressed_head(head))
    return _format_of_bytes(head)


def is_url_list(path: str) -> bool:
    """True for a text file whose non-blank lines (in the first MB; `#` comments allowed) are all http(s) URLs."""
    try:
        with open(path, "rb") as f:
            head = f.read(URL_LIST_SCAN_BYTES)
    except OSError:
        return False
    lines = head.decode("utf-8", "replace").splitlines()
    if len(head) == URL_LIST_SCAN_BYTES and lines:
        lines = lines[:-1]  # the last line may be cut by the scan limit
    urls = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return bool(urls) and all(_URL_LINE.fullmatch(url) for url in urls)


def input_format(path: str, fmt: str = "auto", *, sniff_text: bool = True) -> str:
    """Reader format of one file, or "" when no reader handles it.

    `fmt` other than "auto" is the answer. Else the first bytes win when they prove a binary format (a Parquet
    file named .jsonl), the name decides otherwise, and for a name that says nothing the first bytes may still
    show JSON Lines or HTML (`sniff_text`; off while walking directories, where any stray file would qualify).
    """
    if fmt != "auto":
        return fmt
    by_name = format_by_name(path)
    by_bytes = sniff_format(path)
    if by_bytes in _BINARY_MAGIC_FORMATS and by_bytes != by_name:
        return by_bytes
    if by_name == "text":
        return "urls" if is_url_list(path) else "text"
    if by_name:
        return by_name
    return by_bytes if sniff_text or by_bytes in _BINARY_MAGIC_FORMATS else ""


# --- inputs to files -------------------------------------------------------------------------------------------------


def hf_dataset_files(directory: str) -> list[str] | None:
    """Arrow files of a `datasets` `save_to_disk` folder, in order, or None when `directory` is not one.

    A Dataset folder has state.json listing its data files (other .arrow files there, such as caches, are not
    data); a DatasetDict folder has dataset_dict.json naming one such folder per split.
    """
    state = os.path.join(directory, "state.json")
    splits = os.path.join(directory, "dataset_dict.json")
    try:
        if os.path.isfile(state):
            with open(state, encoding="utf-8") as f:
                names = [item["filename"] for item in json.load(f)["_data_files"]]
            return [os.path.join(directory, name) for name in names]
        if os.path.isfile(splits):
            with open(splits, encoding="utf-8") as f:
                split_names = json.load(f)["splits"]
            return [p for split in split_names for p in hf_dataset_files(os.path.join(directory, split)) or []]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{directory!r} looks like a saved datasets folder but its metadata is unreadable: {exc}"
        ) from exc
    return None


def _walk(directory: str, fmt: str, unread: list[str] | None = None) -> list[tuple[str, str]]:
    """(file, format) of every readable file under `directory`, sorted; hidden files and folders are skipped, and
    files no reader handles are added to `unread`."""
    found: list[tuple[str, str]] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        hf_files = hf_dataset_files(root)
        if hf_files is not None:
            found.extend((p, "arrow") for p in hf_files)
            dirs[:] = []  # a DatasetDict's split folders are listed already
            continue
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = os.path.join(root, name)
            file_fmt = input_format(path, fmt, sniff_text=False)
            if file_fmt:
                found.append((path, file_fmt))
            elif unread is not None:
                unread.append(path)
    return found


def _expand(paths: list[str], fmt: str, unread: list[str] | None = None) -> list[tuple[str, str]]:
    files: list[tuple[str, str]] = []
    for raw in paths:
        path = os.fspath(raw)
        if glob.has_magic(path) and not os.path.exists(path):
            matches = sorted(glob.glob(path, recursive=True))
            if not matches:
                raise ValueError(f"input glob {path!r} matches no file")
            for match in matches:  # like a walked folder: a stray file in a glob is listed as unread, not fatal
                match_fmt = input_format(match, fmt) if os.path.isfile(match) else ""
                if match_fmt:
                    files.append((match, match_fmt))
                elif os.path.isdir(match):
                    files.extend(_expand([match], fmt, unread))
                elif unread is not None:
                    unread.append(match)
        elif os.path.isdir(path):
            hf_files = hf_dataset_files(path)
            files.extend([(p, "arrow") for p in hf_files] if hf_files is not None else _walk(path, fmt, unread))
        elif os.path.isfile(path):
            file_fmt = input_format(path, fmt)
            if not file_fmt:
                known = ", ".join(suffix for suffix, _ in FORMAT_SUFFIXES)
                raise ValueError(
                    f"input {path!r} has an unknown format (expected one of: {known}; or set ingest.format)"
                )
            files.append((path, file_fmt))
        else:
            raise ValueError(f"input {path!r} does not exist")
    return list(dict.fromkeys(files))  # a file named twice is read once


def expand_inputs(paths: list[str], fmt: str = "auto") -> list[str]:
    """Files to read: directories are walked (readable formats only, sorted; a saved `datasets` folder gives its
    data files), globs are expanded.

    Raises ValueError naming the path when an input does not exist, a glob matches nothing, or an explicitly
    named file has a format no reader handles.
    """
    return [path for path, _ in _expand(paths, fmt)]


def unread_inputs(paths: list[str], fmt: str = "auto") -> list[str]:
    """Files inside the input directories (and globs) that no reader handles: the run reports them, since a
    skipped file is input the user expected in the corpus."""
    unread: list[str] = []
    _expand(paths, fmt, unread)
    return unread


def url_list_inputs(paths: list[str], fmt: str = "auto") -> list[str]:
    """The inputs that are URL lists (to crawl before reading); `plan_units` refuses them."""
    return [path for path, file_fmt in _expand(paths, fmt) if file_fmt == "urls"]


# --- files to units --------------------------------------------------------------------------------------------------


def _file_groups(files: list[tuple[str, str]], cfg: IngestConfig) -> list[WorkUnit]:
    """Consecutive HTML/text files of one format, at most `files_per_unit` files or about `unit_bytes` per unit."""
    units: list[WorkUnit] = []
    group: list[str] = []
    group_fmt, group_bytes = "", 0

    def close() -> None:
        if group:
            units.append(
                WorkUnit(os.path.commonpath(group) if len(group) > 1 else group[0], 0, -1, group_fmt, tuple(group))
            )

    for path, fmt in files:
        size = os.path.getsize(path)
        if group and (fmt != group_fmt or len(group) >= cfg.files_per_unit or group_bytes + size > cfg.unit_bytes):
            close()
            group, group_bytes = [], 0
        group.append(path)
        group_fmt, group_bytes = fmt, group_bytes + size
    close()
    return units


def plan_units(paths: list[str], cfg: IngestConfig) -> list[WorkUnit]:
    """Split the inputs into units of about `cfg.unit_bytes`, cut only at record starts.

    A damaged file whose record starts cannot be listed becomes one unit; reading it reports the damage.
    Raises ValueError for URL lists: crawl them first (`corpus.sources.crawl.crawl_url_lists`).
    """
    from corpus.sources import jsonl, tabular, warc

    units: list[WorkUnit] = []
    pending_files: list[tuple[str, str]] = []
    for path, fmt in _expand(paths, cfg.format):
        if fmt in ("html", "text"):
            pending_files.append((path, fmt))
            continue
        units.extend(_file_groups(pending_files, cfg))
        pending_files = []
        if fmt in ("warc", "arc"):
            bounds = [0, *warc.plan_cuts(path, fmt, cfg.unit_bytes), -1]
            units.extend(WorkUnit(path, start, end, fmt) for start, end in zip(bounds, bounds[1:]))
        elif fmt == "jsonl":
            units.extend(jsonl.plan_units(path, cfg))
        elif fmt in ("parquet", "arrow"):
            units.extend(tabular.plan_units(path, fmt, cfg))
        elif fmt == "urls":
            raise ValueError(
                f"input {path!r} is a list of URLs: crawl it first (corpusforge crawl, or run --input, which crawls it)"
            )
        else:
            raise ValueError(f"input {path!r}: unknown format {fmt!r} (expected one of: {', '.join(FORMATS)})")
    units.extend(_file_groups(pending_files, cfg))
    return units


def read_unit(unit: WorkUnit, cfg: IngestConfig, errors: list[dict]) -> Iterator[Document | Rejection]:
    """One Document or Rejection per input record of the unit; damage is reported into `errors`, never raised."""
    from corpus.sources import files, jsonl, tabular, warc

    if unit.format in ("warc", "arc"):
        return warc.read_records(unit, cfg, errors)
    if unit.format == "jsonl":
        return jsonl.read_records(unit, cfg, errors)
    if unit.format in ("parquet", "arrow"):
        return tabular.read_records(unit, cfg, errors)
    if unit.format in ("html", "text"):
        return files.read_records(unit, cfg, errors)
    raise ValueError(f"work unit of {unit.path!r} has unknown format {unit.format!r}")
