"""Bytes of a web page to clean text: charset resolution that survives lying headers, and binary sniffing.

Order of evidence (close to the WHATWG encoding sniffing algorithm, with one deliberate difference):
1. a byte-order mark;
2. strict UTF-8 when the bytes are valid UTF-8 — this wins over any declaration, because a page that decodes
   cleanly as UTF-8 and contains non-ASCII bytes is UTF-8 with overwhelming probability, while mis-declared
   charsets are common (`h03` in the malformed set declares latin-1 over UTF-8 Cyrillic);
3. the HTTP `Content-Type` charset, then `<meta charset>` / `<meta http-equiv>` / `<?xml encoding?>` in the
   first 4 KB, each only if it decodes the whole page strictly;
4. UTF-8 with replacement characters when invalid bytes are rare next to valid multibyte sequences (a UTF-8
   page with one broken character is still a UTF-8 page);
5. detection (charset_normalizer), with single-byte Latin guesses replaced by windows-1252, the usual truth
   behind them on the web.

The output never contains NUL, other C0/C1 controls (except tab, newline, carriage return) or lone surrogates:
downstream, HF tokenizers raise on lone surrogates and controls only add noise.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from functools import lru_cache

import numpy as np

# Byte-order marks, longest first (the UTF-8 one is three bytes).
_BOMS: list[tuple[bytes, str]] = [
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
]

_BOM_FIRST_BYTES = frozenset(bom[:1] for bom, _ in _BOMS)

# Labels that mean something else on the web (WHATWG encoding standard): browsers decode "iso-8859-1" as
# windows-1252, "gb2312" with the GBK/GB18030 decoder and so on, so pages written for browsers rely on it.
_WEB_ALIASES = {
    "iso8859-1": "cp1252",
    "ascii": "cp1252",
    "iso8859-9": "cp1254",
    "iso8859-11": "cp874",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "big5": "big5hkscs",
    "shift_jis": "cp932",
    "euc_kr": "cp949",
}

# Python codec names that a web page may legitimately use. Anything else (utf-7, hz, idna, punycode, "undefined",
# and bytes-to-bytes codecs such as base64 or zlib that `codecs.lookup` also knows) is ignored: utf-7 in
# particular is a known script-injection trick (`+ADw-script+AD4-`).
_WEB_ENCODINGS = frozenset(
    ["utf-8", "utf-16-le", "utf-16-be", "cp866", "cp874", "koi8-r", "koi8-u", "mac-roman", "mac-cyrillic"]
    + [f"cp{n}" for n in range(1250, 1259)]
    + [f"iso8859-{n}" for n in (2, 3, 4, 5, 6, 7, 8, 10, 13, 14, 15, 16)]
    + ["gb18030", "big5hkscs", "euc_jp", "iso2022_jp", "cp932", "cp949"]
)

# Encodings whose ASCII range is not ASCII: a `<meta>` that we could read as ASCII cannot truthfully declare
# them, so browsers treat such a declaration as UTF-8.
_NOT_ASCII_COMPATIBLE = frozenset(["utf-16-le", "utf-16-be"])

# Single-byte encodings that share ASCII and differ only in a few accented letters. charset_normalizer
# picks among them almost at random on short Western texts (cp1257 or cp775 for German or French); windows-1252
# is the usual truth for undeclared Western pages.
_LATIN_SINGLE_BYTE = frozenset(
    ["cp1250", "cp1252", "cp1254", "cp1257", "cp775", "cp437", "cp850", "cp858", "mac_roman", "mac_latin2", "latin_1"]
    + [f"iso8859_{n}" for n in (1, 2, 3, 4, 9, 10, 13, 14, 15, 16)]
)

META_SCAN_BYTES = 4096
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE)
_XML_ENCODING = re.compile(rb"""^\s*<\?xml[^>]*?encoding\s*=\s*["']([A-Za-z0-9_.:\-]+)""", re.IGNORECASE)

# C0 controls except \t \n \r, DEL, C1 controls, and surrogates (only lone ones can occur in a str).
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_XOR_CONTROLS_LOW = np.uint8(22)  # see has_c0_bytes
_C0_BYTES = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])  # the C0 controls we remove, and DEL
_C1_UTF8 = re.compile(rb"\xc2[\x80-\x9f]")
# Codecs where no high byte and no multibyte sequence decodes to a control character (tests/test_warc.py checks
# every one- and two-byte sequence): in their text a control can only come from a C0 or DEL byte of the page.
# Not here: the ISO 8859 family and cp932 map bytes 0x80-0x9F to C1 controls, gb18030 reaches them in four bytes.
CONTROL_FREE_CODECS = frozenset(
    [f"cp{n}" for n in range(1250, 1259)]
    + ["cp866", "cp874", "koi8-r", "koi8-u", "mac-cyrillic", "mac-roman", "big5hkscs", "cp949"]
)
_LONG_TEXT = 2048  # characters; below this the regex costs less than encoding the text and scanning the bytes

# Binary formats that servers (or hostile pages) label as text/html. Checked after content-encoding is undone.
_BINARY_MAGIC: list[tuple[bytes, str]] = [
    (b"\x89PNG\r\n\x1a\n", "png"),
    (b"%PDF-", "pdf"),
    (b"PK\x03\x04", "zip"),
    (b"\x1f\x8b", "gzip"),
    (b"\xff\xd8\xff", "jpeg"),
    (b"GIF87a", "gif"),
    (b"GIF89a", "gif"),
    (b"BM", "bmp"),
    (b"\x00\x00\x01\x00", "ico"),
    (b"RIFF", "riff"),
    (b"OggS", "ogg"),
    (b"ID3", "mp3"),
    (b"fLaC", "flac"),
    (b"wOFF", "woff"),
    (b"wOF2", "woff2"),
    (b"\x00\x01\x00\x00\x00", "ttf"),
    (b"\x7fELF", "elf"),
    (b"MZ", "exe"),
    (b"\x00asm", "wasm"),
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!\x1a\x07", "rar"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "ole2"),
    (b"%!PS", "postscript"),
]
# ftyp boxes (mp4, mov, heic, avif) carry their magic at offset 4.
_FTYP = b"ftyp"
# The magic numbers by first byte, in the order above: a text page ("<", whitespace) costs one dict lookup.
_MAGIC_BY_FIRST_BYTE: dict[bytes, list[tuple[bytes, str]]] = {}
for _magic, _name in _BINARY_MAGIC:
    _MAGIC_BY_FIRST_BYTE.setdefault(_magic[:1], []).append((_magic, _name))


def sniff_binary(raw: bytes) -> str:
    """Name of the binary format `raw` starts with ("png", "pdf", ...), or "" when it may be text."""
    for magic, name in _MAGIC_BY_FIRST_BYTE.get(raw[:1], ()):
        if raw.startswith(magic):
            # "BM" and "MZ" are also how ordinary words can start; require the binary shape that follows.
            if name == "bmp" and not (len(raw) > 14 and raw[6:10] == b"\x00\x00\x00\x00"):
                continue
            if name == "exe" and b"\x00" not in raw[2:64]:
                continue
            return name
    if raw[4:8] == _FTYP:
        return "iso-media"
    return ""


@lru_cache(maxsize=1024)  # a few labels recur on every page of a crawl
def web_codec(label: str, *, from_meta: bool = False) -> str:
    """Python codec for a charset label as a browser would use it, or "" for unknown or refused labels."""
    label = label.strip().strip("\"'").lower()
    if not label:
        return ""
    if label in ("x-sjis", "windows-31j", "x-ms-cp932"):
        label = "cp932"
    elif label in ("x-gbk", "x-euc-cn"):
        label = "gbk"
    elif label in ("x-mac-roman", "macintosh"):
        label = "mac-roman"
    elif label in ("x-mac-cyrillic",):
        label = "mac-cyrillic"
    elif label in ("unicode-1-1-utf-8", "x-unicode20utf8"):
        label = "utf-8"
    elif label in ("utf-16", "unicode", "ucs-2", "csunicode", "iso-10646-ucs-2"):
        label = "utf-16-le"  # WHATWG: a bare "utf-16" label means little-endian
    try:
        name = codecs.lookup(label).name
    except LookupError:
        return ""
    name = _WEB_ALIASES.get(name, name)
    if name not in _WEB_ENCODINGS:
        return ""
    if from_meta and name in _NOT_ASCII_COMPATIBLE:
        return "utf-8"
    return name


def declared_meta_charset(raw: bytes) -> str:
    """Charset label declared in the first 4 KB: `<meta charset>`, `<meta http-equiv>` or the XML declaration."""
    head = raw[:META_SCAN_BYTES]
    match = _XML_ENCODING.search(head) or _META_CHARSET.search(head)
    return match.group(1).decode("ascii") if match else ""


def _bom_codec(raw: bytes) -> tuple[str, int]:
    for bom, name in _BOMS:
        if raw.startswith(bom):
            return name, len(bom)
    return "", 0


def _try_strict(raw: bytes, codec: str) -> str | None:
    try:
        return raw.decode(codec)
    except (UnicodeDecodeError, LookupError):
        return None


_UTF8_SEQUENCE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)
_NON_ASCII = re.compile(rb"[\x80-\xff]")
# A page is "UTF-8 with a few bad bytes" (a truncated character, one row from an old database) when at least
# this many bytes are in valid multibyte sequences per invalid byte. Legacy CJK and Cyrillic text forms valid
# UTF-8 pairs only by chance, far below this ratio.
MIN_VALID_PER_INVALID_UTF8 = 10


def mostly_utf8(raw: bytes) -> bool:
    """True when invalid UTF-8 bytes are rare next to valid multibyte sequences."""
    valid = sum(len(m) for m in _UTF8_SEQUENCE.findall(raw))
    invalid = len(_NON_ASCII.findall(raw)) - valid
    return valid > 0 and valid >= MIN_VALID_PER_INVALID_UTF8 * invalid


def _detected_codec(raw: bytes) -> str:
    """charset_normalizer's guess (lazy import: 20-50 ms on a page, and rarely needed), Latin guesses as cp1252."""
    from charset_normalizer import from_bytes

    best = from_bytes(raw).best()
    if best is None:
        return "cp1252"
    name = codecs.lookup(best.encoding).name.replace("-", "_")
    if name in _LATIN_SINGLE_BYTE:
        return "cp1252"
    return best.encoding


def strip_controls(text: str) -> str:
    """Remove NUL, C0/C1 controls other than tab/newline/CR, and lone surrogates."""
    if len(text) >= _LONG_TEXT:
        try:  # encoding and scanning the bytes is 3-6 times faster than the regex; a lone surrogate cannot encode
            if not utf8_has_controls(text.encode("utf-8")):
                return text
        except UnicodeEncodeError:
            pass
    elif _CONTROLS.search(text) is None:
        return text
    return _CONTROLS.sub("", text)


def has_c0_bytes(raw: bytes) -> bool:
    """True when `raw` holds a C0 control byte other than tab, LF and CR, or DEL.

    Three memchr scans and one numpy pass: a fraction of the cost of decoding the bytes, where the regex over the
    decoded text costs several decodes.
    """
    if 0x08 in raw or 0x0B in raw or 0x7F in raw:  # an int is found by memchr directly, a bytes needle less so
        return True
    if not raw:
        return False
    # XOR 22 sends the other 27 C0 controls to 0-26 and tab, LF, CR, BS, VT to 27-31; bytes >= 32 stay >= 32.
    return bool(np.minimum.reduce(np.bitwise_xor(np.frombuffer(raw, np.uint8), _XOR_CONTROLS_LOW)) < 27)


def utf8_has_controls(raw: bytes) -> bool:
    """True when `raw` decoded as UTF-8 (strictly or with replacement) holds a character `strip_controls` removes.

    Exact on the bytes: in UTF-8 a byte below 0x80 is always that ASCII character, U+0080-U+009F are always
    C2 80-9F, and the decoder never outputs a surrogate.
    """
    if has_c0_bytes(raw):
        return True
    find = raw.find  # C2 is rare (no-break space, pilcrow) and C1 controls rarer: a loop beats a numpy pass
    at = find(b"\xc2")
    while at != -1:
        if b"\x80" <= raw[at + 1 : at + 2] < b"\xa0":
            return True
        at = find(b"\xc2", at + 1)
    return False


def _declared(raw: bytes, http_codec: str) -> Iterator[tuple[str, str]]:
    """(source, codec) of the charsets the page declares: the HTTP header's, then (looked up only when asked for)
    the one in its first 4 KB."""
    yield "http", http_codec
    yield "meta", web_codec(declared_meta_charset(raw), from_meta=True)


def _strip_utf8_controls(raw: bytes) -> str:
    """Valid UTF-8 decoded without its control characters, removed as bytes (several times faster than the regex
    over the text): each is one byte (C0, DEL) or C2 80-9F (C1), and those bytes are never part of another
    character."""
    kept = raw.translate(None, _C0_BYTES) if has_c0_bytes(raw) else raw
    if b"\xc2" in kept:
        kept = _C1_UTF8.sub(b"", kept)
    return kept.decode("utf-8")


def _resolve(raw: bytes, http_charset: str) -> tuple[str, str, str | None]:
    """`resolve_charset`, plus the page already decoded when a strict decode confirmed the codec (else None)."""
    bom_codec, _ = _bom_codec(raw)
    if bom_codec:
        return bom_codec, "bom", None
    http_codec = web_codec(http_charset)
    # 7-bit stateful encodings look like ASCII: a declared ISO-2022-JP page with escape sequences needs its codec.
    if b"\x1b" in raw and b"\x1b$" in raw:  # memchr for the rare ESC first; a two-byte search is slower
        for source, codec in _declared(raw, http_codec):
            if codec == "iso2022_jp" and _try_strict(raw, codec) is not None:
                return codec, source, None
    text = _try_strict(raw, "utf-8")
    if text is not None:
        # A UTF-16 declaration from HTTP over bytes with NULs that also pass as UTF-8: trust the header.
        if http_codec in _NOT_ASCII_COMPATIBLE and b"\x00" in raw[:1024] and _try_strict(raw, http_codec) is not None:
            return http_codec, "http", None
        return "utf-8", "utf-8", text
    for source, codec in _declared(raw, http_codec):
        if codec and codec != "utf-8":
            text = _try_strict(raw, codec)
            if text is not None:
                return codec, source, text
    if mostly_utf8(raw):
        return "utf-8", "utf-8-lossy", None
    return _detected_codec(raw), "detected", None


def resolve_charset(raw: bytes, http_charset: str = "") -> tuple[str, str]:
    """(python codec, how it was chosen) for `raw`; `decode_html` applies it. Exposed for tests and `inspect`."""
    codec, how, _ = _resolve(raw, http_charset)
    return codec, how


def decode_html(raw: bytes, http_charset: str = "") -> str:
    """Decode a page's bytes to text (see the module docstring for the order of evidence)."""
    if not raw:
        return ""
    # Most pages are valid UTF-8 without a single control byte, and for those `_resolve` would choose UTF-8: no
    # ESC means no ISO-2022-JP escapes, no NUL no UTF-16 header to trust. One decode and one scan settle them.
    if raw[:1] not in _BOM_FIRST_BYTES:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
        else:
            if not utf8_has_controls(raw):
                return text
    codec, how, text = _resolve(raw, http_charset)
    if text is None:
        _, skip = _bom_codec(raw) if how == "bom" else ("", 0)
        try:
            text = raw[skip:].decode(codec, errors="replace")
        except LookupError:  # a detector name Python lacks
            text = raw[skip:].decode("cp1252", errors="replace")
    if how == "utf-8":  # valid UTF-8 that holds controls (or an ESC/NUL that turned out not to matter)
        return _strip_utf8_controls(raw)
    if codec in CONTROL_FREE_CODECS and not has_c0_bytes(raw):
        return text  # a control in the text could only come from a control byte of the page
    return strip_controls(text)
