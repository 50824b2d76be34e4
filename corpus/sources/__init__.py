"""Source readers: input paths to work units, and a work unit to a stream of documents or rejections.

A work unit is a range of one input file whose bounds are record starts, so units can be read in any order, by
any process, and every record belongs to exactly one unit: byte offsets for WARC and plain JSONL, row numbers for
Parquet (row-group starts) and Arrow (record-batch starts), and a group of whole files for HTML/text trees.
Readers never raise on damaged input: they report the damage (path, byte offset, message) into an `errors`
list, keep every record before it and resume after it where the format allows.

The reader is chosen by file name, then by the file's first bytes (`input_format`), unless `IngestConfig.format`
names one for every input.

Formats are registered, not listed here: each format's module (warc, jsonl, tabular, files, url_lists) describes
it in one `InputFormat` (name, suffixes, first-byte sniffing, planner, reader) passed to `register_format`, and
the functions below only consult that registry. The built-in modules are imported, and so registered, at the end
of this file, so every process that imports `corpus.sources` knows them: spawned pool workers and Ray workers
included, which never import the module that started the run.

A format of your own: write one module that builds an `InputFormat`, and name that object in the entry-point
group `corpusforge.formats` of your package, e.g. in its pyproject.toml

    [project.entry-points."corpusforge.formats"]
    pages = "mypackage.pages:PAGES_FORMAT"

Every process loads the group when it imports `corpus.sources`, so your files are detected, planned and read
in the workers too. Calling `register_format` yourself affects only the calling process (tests, notebooks).
"""

from __future__ import annotations

import glob
import gzip
import io
import itertools
import os
import zlib
from collections.abc import Callable, Iterator
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


PLUGIN_GROUP = "corpusforge.formats"

_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"
SNIFF_BYTES = 4096
# pyarrow's zstd stream returns nothing from a read that meets a truncation: small reads keep more of what came before.
_ZSTD_READ = 1 << 16


# --- the registry ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class InputFormat:
    """Everything the package knows about one input format; `register_format` makes it known."""

    name: str  # WorkUnit.format, the value of `ingest.format`, the name in messages
    # (consecutive input files of this format, in input order; cfg) -> their units, cut at record starts. Files of
    # a format of small files may share a unit (WorkUnit.files); others are planned one file at a time.
    plan: Callable[[list[str], IngestConfig], list[WorkUnit]]
    # (unit, cfg, errors) -> one Document or Rejection per record; damage goes into `errors`, never raised.
    # None: not read here (URL lists are crawled into WARC first; their `plan` says so).
    read: Callable[[WorkUnit, IngestConfig, list[dict]], Iterator[Document | Rejection]] | None
    # Lower-case file-name endings with their dot; the longest match over all formats wins (".warc.gz" over ".gz").
    suffixes: tuple[str, ...] = ()
    # (the file's first SNIFF_BYTES, decompressed when the file is gzip or zstd) -> whether they show this format.
    sniff: Callable[[bytes], bool] | None = None
    # True: `sniff` checks a binary magic, which wins over a file name that says otherwise (a Parquet file named
    # .jsonl) and counts while walking folders. False: it is a guess, used only for a file whose name says nothing.
    sniff_proves: bool = False
    # A file detected as format `specializes` is this format when `claims(path)`: a .txt file of URLs is a URL list.
    specializes: str = ""
    claims: Callable[[str], bool] | None = None
    # directory -> its data files in order when this format reads that folder whole (a saved `datasets` folder),
    # else None.
    folder_files: Callable[[str], list[str] | None] | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("an InputFormat needs a name")
        for suffix in self.suffixes:
            if not suffix.startswith(".") or suffix != suffix.lower():
                raise ValueError(f"format {self.name!r}: suffix {suffix!r} must be lower case and start with '.'")
        if bool(self.specializes) != (self.claims is not None):
            raise ValueError(f"format {self.name!r}: `specializes` and `claims` go together (give both or neither)")


_FORMATS: dict[str, InputFormat] = {}

# (suffix, format name) of every registered format, in registration order; kept in step with the registry for
# callers that list the known suffixes.
FORMAT_SUFFIXES: list[tuple[str, str]] = []


def register_format(fmt: InputFormat) -> InputFormat:
    """Make `fmt` known to detection, planning and reading in this process; returns it.

    Registering the same object again changes nothing (a plugin module may register itself and be named by its
    entry point too). Raises ValueError for a name or suffix another format has, or an unknown `specializes`.
    """
    if _FORMATS.get(fmt.name) is fmt:
        return fmt
    if fmt.name in _FORMATS:
        raise ValueError(f"input format {fmt.name!r} is registered already: choose another name")
    owners = dict(FORMAT_SUFFIXES)
    for suffix in fmt.suffixes:
        if suffix in owners:
            raise ValueError(f"format {fmt.name!r}: suffix {suffix!r} belongs to format {owners[suffix]!r} already")
    if fmt.specializes and fmt.specializes not in _FORMATS:
        raise ValueError(f"format {fmt.name!r} specializes {fmt.specializes!r}, which is not registered (yet)")
    _FORMATS[fmt.name] = fmt
    FORMAT_SUFFIXES.extend((suffix, fmt.name) for suffix in fmt.suffixes)
    return fmt


def unregister_format(name: str) -> InputFormat:
    """Forget a registered format (in this process) and return it; KeyError when none has that name."""
    fmt = _FORMATS.pop(name)
    FORMAT_SUFFIXES[:] = [(suffix, owner) for suffix, owner in FORMAT_SUFFIXES if owner != name]
    return fmt


# Imported in this order, which is the order of sniffing among equals and of names in messages; url_lists
# specializes the "text" format of files, so it comes after it.
BUILTIN_FORMAT_MODULES = ("warc", "jsonl", "tabular", "files", "url_lists")


def _register_formats() -> None:
    """Register the built-in formats (their modules register on import), then the `InputFormat` objects that
    installed packages name in the entry-point group PLUGIN_GROUP."""
    from importlib import import_module
    from importlib.metadata import entry_points

    for module in BUILTIN_FORMAT_MODULES:
        import_module(f"{__name__}.{module}")
    for entry in entry_points(group=PLUGIN_GROUP):
        fmt = entry.load()
        if not isinstance(fmt, InputFormat):
            raise TypeError(
                f"entry point {entry.name!r} of {PLUGIN_GROUP!r} names {entry.value}, a {type(fmt).__name__}: "
                "it must name an InputFormat object"
            )
        register_format(fmt)


# --- which reader ----------------------------------------------------------------------------------------------------


def format_by_name(path: str) -> str:
    """Format from the file name alone (the longest registered suffix it ends with), or "" when the name says
    nothing."""
    name = path.lower()
    matches = [(len(suffix), fmt) for suffix, fmt in FORMAT_SUFFIXES if name.endswith(suffix)]
    return max(matches)[1] if matches else ""


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
            return zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(head, SNIFF_BYTES)
        if head.startswith(_ZSTD):
            import pyarrow as pa

            stream = pa.CompressedInputStream(pa.BufferReader(head), "zstd")
            return stream.read(SNIFF_BYTES)
    except (zlib.error, OSError, ValueError, ImportError):
        return b""
    return b""


def sniff_format(path: str) -> str:
    """Format shown by the first bytes of `path` (looking inside gzip and zstd), or "" when they show none.

    Formats whose first bytes are proof are asked before those that guess, each group in registration order.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError:
        return ""
    if head.startswith(_GZIP) or head.startswith(_ZSTD):
        head = _decompressed_head(head)
    for fmt in sorted(_FORMATS.values(), key=lambda fmt: not fmt.sniff_proves):
        if fmt.sniff is not None and fmt.sniff(head):
            return fmt.name
    return ""


def input_format(path: str, fmt: str = "auto", *, sniff_text: bool = True) -> str:
    """Reader format of one file, or "" when no reader handles it.

    `fmt` other than "auto" is the answer. Else first bytes that prove a format win (a Parquet file named .jsonl),
    the name decides otherwise, and for a name that says nothing a guess from the first bytes (JSON Lines, HTML)
    may still decide (`sniff_text`; off while walking directories, where any stray file would qualify). A format
    that specializes the one found claims the file last (a .txt file of URLs is a URL list).
    """
    if fmt != "auto":
        return fmt
    by_name = format_by_name(path)
    by_bytes = sniff_format(path)
    if by_bytes and _FORMATS[by_bytes].sniff_proves:
        found = by_bytes
    elif by_name:
        found = by_name
    else:
        found = by_bytes if sniff_text else ""
    for special in _FORMATS.values():
        if found and special.specializes == found and special.claims(path):
            return special.name
    return found


# --- inputs to files -------------------------------------------------------------------------------------------------


def _folder_inputs(directory: str) -> list[tuple[str, str]] | None:
    """(file, format) of a folder that a format reads whole (a saved `datasets` folder), or None for a plain one."""
    for fmt in _FORMATS.values():
        files = fmt.folder_files(directory) if fmt.folder_files is not None else None
        if files is not None:
            return [(path, fmt.name) for path in files]
    return None


def _walk(directory: str, fmt: str, unread: list[str] | None = None) -> list[tuple[str, str]]:
    """(file, format) of every readable file under `directory`, sorted; hidden files and folders are skipped, and
    files no reader handles are added to `unread`."""
    found: list[tuple[str, str]] = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        folder_inputs = _folder_inputs(root)
        if folder_inputs is not None:
            found.extend(folder_inputs)
            dirs[:] = []  # a folder read whole lists its subfolders' files itself (a DatasetDict's splits)
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


def inputs_with_formats(paths: list[str], fmt: str = "auto", unread: list[str] | None = None) -> list[tuple[str, str]]:
    """(file, format) of every input file, as `expand_inputs` finds them; files inside directories and globs that
    no reader handles go into `unread`."""
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
                    files.extend(inputs_with_formats([match], fmt, unread))
                elif unread is not None:
                    unread.append(match)
        elif os.path.isdir(path):
            folder_inputs = _folder_inputs(path)
            files.extend(folder_inputs if folder_inputs is not None else _walk(path, fmt, unread))
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
    return [path for path, _ in inputs_with_formats(paths, fmt)]


def unread_inputs(paths: list[str], fmt: str = "auto") -> list[str]:
    """Files inside the input directories (and globs) that no reader handles: the run reports them, since a
    skipped file is input the user expected in the corpus."""
    unread: list[str] = []
    inputs_with_formats(paths, fmt, unread)
    return unread


# --- files to units --------------------------------------------------------------------------------------------------


def plan_units(paths: list[str], cfg: IngestConfig) -> list[WorkUnit]:
    """Split the inputs into units of about `cfg.unit_bytes`, cut only at record starts; each run of consecutive
    files of one format is planned by that format.

    A damaged file whose record starts cannot be listed becomes one unit; reading it reports the damage.
    Raises ValueError for URL lists: crawl them first (`corpus.sources.crawl.crawl_url_lists`).
    """
    units: list[WorkUnit] = []
    for name, run in itertools.groupby(inputs_with_formats(paths, cfg.format), key=lambda item: item[1]):
        files = [path for path, _ in run]
        fmt = _FORMATS.get(name)
        if fmt is None:
            raise ValueError(f"input {files[0]!r}: unknown format {name!r} (expected one of: {', '.join(_FORMATS)})")
        units.extend(fmt.plan(files, cfg))
    return units


def read_unit(unit: WorkUnit, cfg: IngestConfig, errors: list[dict]) -> Iterator[Document | Rejection]:
    """One Document or Rejection per input record of the unit; damage is reported into `errors`, never raised."""
    fmt = _FORMATS.get(unit.format)
    if fmt is None or fmt.read is None:
        raise ValueError(f"work unit of {unit.path!r} has unknown format {unit.format!r}")
    return fmt.read(unit, cfg, errors)


# Last, because the format modules and plugins import the names above.
_register_formats()
from corpus.sources.url_lists import is_url_list, url_list_inputs  # noqa: E402, F401 (public names kept here)
