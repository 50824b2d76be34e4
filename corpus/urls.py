"""One URL normaliser: the crawler's frontier and seen set, and dedup's "same URL" key, spell a URL the same way.

    normalize_url("HTTPS://Bücher.de:443/a/./b/../%7ec#top") -> "https://xn--bcher-kva.de/a/~c"
    dedup_url("doc-17")                                      -> "doc-17"  (not a web URL: compared as written)

`normalize_url` is what the crawler needs: only http(s), relative links resolved against a base, and one spelling
per page, so that a link met twice under two spellings is fetched once. Dedup builds on it with `dedup_url`, which
also gives a key to the URLs the crawler must refuse (see its docstring). Standard library only: `urllib.parse`
splits and joins, Python's `idna` codec (IDNA 2003, as `socket.getaddrinfo` uses for a non-ASCII name) writes
non-ASCII hosts in punycode.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")  # RFC 3986 2.3
PATH_SAFE = "/%:@!$&'()*+,;=-._~"  # left as written in a path (RFC 3986 pchar and "/")
QUERY_SAFE = PATH_SAFE + "?"
_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_STRAY_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_IGNORED = re.compile(r"[\t\r\n]")  # browsers drop these anywhere in a URL (WHATWG URL standard)
# WHATWG "forbidden domain code points": controls, space and # % / : < > ? @ [ \ ] ^ | DEL
_FORBIDDEN_HOST = re.compile(r"[\x00-\x20#%/:<>?@\[\\\]^|\x7f]")


def normalize_escapes(text: str, safe: str = PATH_SAFE) -> str:
    """One spelling per URL part: escapes in upper case, unreserved characters unescaped, the rest escaped (UTF-8).

    "%7euser/%e2%82%ac x" -> "~user/%E2%82%AC%20x"; a `%` that starts no escape becomes "%25".
    """
    text = _STRAY_PERCENT.sub("%25", text)

    def one(match: re.Match) -> str:
        char = chr(int(match.group(1), 16))
        return char if char in UNRESERVED else "%" + match.group(1).upper()

    return quote(_ESCAPE.sub(one, text), safe=safe)


def remove_dot_segments(path: str) -> str:
    """RFC 3986 section 5.2.4: "/a/b/../c/./d" -> "/a/c/d"."""
    segments = path.split("/")
    out: list[str] = []
    for segment in segments:
        if segment == "..":
            if len(out) > 1:
                out.pop()
        elif segment != ".":
            out.append(segment)
    if segments[-1] in (".", ".."):
        out.append("")
    return "/".join(out) if out and out[0] == "" else "/" + "/".join(out)


def normalize_host(host: str) -> str | None:
    """Lower case, no trailing dot, IDNA hosts in punycode, IPv6 compressed in brackets; None when invalid.

    `host` is `urlsplit(url).hostname` (brackets and port removed). As in browsers (WHATWG URL host parser), a
    percent-escaped host is decoded first ("%D9%85..." is an Arabic name, written in punycode after that), and a
    host with a character no host may contain ("[", "/", "\\", a space, ...) is invalid.
    """
    try:
        if ":" in host:  # IPv6; a zone id ("%eth0") names an interface of this machine, not a page
            return f"[{ipaddress.IPv6Address(host.split('%')[0]).compressed}]"
        if "%" in host:
            host = unquote(host, errors="strict")
        host = host.rstrip(".")
        if not host or _FORBIDDEN_HOST.search(host):
            return None
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
    except (UnicodeError, ValueError):
        return None
    return _ipv4_host(host.lower())


_NUMBER = re.compile(r"0[xX][0-9A-Fa-f]*|[0-9]+")


def _ipv4_host(host: str) -> str | None:
    """A host that ends in a number is an IPv4 address in any of its spellings (0177.0.0.1, 0x7f000001, 127.1), as
    browsers and getaddrinfo read it: written as dotted decimal, or None when it is no address. Both the address
    check and the connection then see the one spelling."""
    if not _NUMBER.fullmatch(host.rsplit(".", 1)[-1]):
        return host
    try:
        return socket.inet_ntoa(socket.inet_aton(host))
    except OSError:
        return None


def normalize_url(url: str, base: str | None = None) -> str | None:
    """The one form of an http(s) URL, or None for other schemes and invalid URLs.

    Tabs and line breaks removed, resolved against `base` when given; scheme and host in lower case (IDNA hosts in
    punycode, IPv6 compressed), the scheme's default port (:80 for http, :443 for https), user info and fragment
    dropped, an empty path made "/", dot segments resolved, percent-escapes in one spelling (`normalize_escapes`).
    The query keeps its order (it can matter) and "www." stays (it can be another site).
    """
    url = _IGNORED.sub("", url.strip())
    try:
        if base:
            url = urljoin(base, url)
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            return None
        host = normalize_host(parts.hostname or "")
        port = parts.port  # ValueError when not a number or out of range
    except ValueError:
        return None
    if host is None:
        return None
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    path = remove_dot_segments(normalize_escapes(parts.path or "/"))
    query = normalize_escapes(parts.query, QUERY_SAFE)
    return urlunsplit((scheme, netloc, path, query, ""))


def dedup_url(url: str) -> str:
    """The "same URL" form dedup compares: `normalize_url`, or the URL as written (stripped) when that gives None.

    Dedup sees the `url` field of any input, not only fetched pages: a JSONL or Parquet row may carry an s3:// or
    file:// URI, a URN or an opaque id. The crawler must refuse those (it only fetches http(s)); dedup must still
    call two equal ones the same, so it falls back to the text itself rather than to "no URL". "" stays "" (no
    URL: never a duplicate by URL).
    """
    url = url.strip()
    if not url:
        return ""
    return normalize_url(url) or url
