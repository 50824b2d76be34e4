"""A polite, safe crawler that writes what it fetches to WARC, so a crawl can be re-extracted and resumed.

    crawl(seeds, output_dir, CrawlConfig(...)) -> summary dict

Politeness: robots.txt per RFC 9309 (a small parser below: longest match wins, `*` and `$` patterns, 4xx means
allow all, 5xx or unreachable means disallow all, Crawl-delay honoured), one request at a time per host at
`rate` requests per second at most, retries with exponential backoff on 429/502/503/504 and network errors
(Retry-After respected), a User-Agent that names the project.

Safety: only http and https; before every request, redirect hops included, the host is resolved and refused when
any of its addresses is private, loopback, link-local, CGNAT, multicast, unspecified, reserved, or a cloud
metadata address (unless `allow_private`). The connection then goes to the address that was checked (the URL's
host is replaced by it, with the name kept in the Host header and in TLS SNI and certificate verification), so a
DNS answer that changes between check and connect (DNS rebinding) cannot redirect the request. Response bodies
are streamed and capped after decompression; each request has a total time cap. TLS is verified.

Output: `crawl-<UTC time>.warc.gz` in the output folder, one gzip member per record, a request and a response
record per fetch. At start every WARC file already in the folder is read: URLs with a stored response (other
than 429/5xx) are not fetched again, their stored pages are followed as if just fetched, and a truncated last
record is ignored. The crawl is sequential (one request at a time over all hosts): simple and polite; a crawl
of many hosts would want a worker per host.
"""

from __future__ import annotations

import base64
import email.utils
import gzip
import hashlib
import heapq
import ipaddress
import itertools
import re
import socket
import time
import uuid
import zlib
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from corpus.config import CrawlConfig
from corpus.urls import QUERY_SAFE, normalize_escapes, normalize_url

PROJECT_URL = "https://github.com/corpusforge/corpusforge"
ROBOTS_AGENT = "corpusforge"  # the product token robots.txt groups are matched against
ROBOTS_MAX_BYTES = 500 * 1024  # RFC 9309: parse at least the first 500 KiB
RETRY_STATUSES = frozenset([429, 502, 503, 504])
HTML_TYPES = frozenset(["text/html", "application/xhtml+xml"])
FETCH_TYPES = HTML_TYPES | {"text/plain", ""}  # bodies of other types are not downloaded
# Links to these are not followed: they are not pages, and downloading them only to drop them wastes the server's
# bandwidth and ours.
SKIPPED_EXTENSIONS = frozenset(
    ".css .js .json .xml .rss .atom .png .jpg .jpeg .gif .webp .svg .ico .bmp .tif .tiff .avif .pdf .ps .zip .gz .tgz "
    ".bz2 .xz .7z .rar .tar .mp3 .mp4 .m4a .wav .ogg .webm .avi .mov .mkv .flac .woff .woff2 .ttf .otf .eot .exe .dmg "
    ".iso .apk .msi .deb .rpm .doc .docx .xls .xlsx .ppt .pptx .odt .csv".split()
)
MAX_OPEN_CLIENTS = 32


def user_agent(cfg: CrawlConfig) -> str:
    if cfg.user_agent:
        return cfg.user_agent
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("corpusforge")
    except PackageNotFoundError:
        ours = "0"
    return f"corpusforge/{ours} (+{PROJECT_URL})"


# --- URLs ------------------------------------------------------------------------------------------------------------
# Frontier, seen set and archive keys are `corpus.urls.normalize_url` forms (the one dedup builds on as well).


def host_of(url: str) -> str:
    return urlsplit(url).hostname or ""


def _path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def _site_domains(seeds: list[str]) -> set[str]:
    """Hosts the seeds stand for: each seed host without a leading "www." (so www.x.org and x.org are one site)."""
    return {host_of(s).removeprefix("www.") for s in seeds}


def in_domains(url: str, domains: set[str]) -> bool:
    host = host_of(url)
    return any(host == d or host.endswith("." + d) for d in domains)


# --- addresses -------------------------------------------------------------------------------------------------------

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "169.254.170.2", "100.100.100.200", "169.254.169.253")
)


def address_problem(ip: str) -> str:
    """Why an address must not be crawled ("loopback address", ...), or "" for a public address."""
    addr = ipaddress.ip_address(ip.split("%")[0])
    if addr.version == 6:
        # Addresses that carry an IPv4 address inside are judged by it.
        embedded = addr.ipv4_mapped or addr.sixtofour or (addr.teredo[1] if addr.teredo else None)
        if embedded is None and addr in _NAT64:
            embedded = ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
        if embedded is not None:
            problem = address_problem(str(embedded))
            if problem:
                return problem
    checks = [
        (addr in METADATA_ADDRESSES, "cloud metadata address"),
        (addr.is_loopback, "loopback address"),
        (addr.is_link_local, "link-local address"),
        (addr.version == 6 and addr.is_site_local, "site-local address"),  # fec0::/10, deprecated (RFC 3879)
        (addr.version == 4 and addr in _CGNAT, "carrier-grade NAT (100.64.0.0/10) address"),
        (addr.is_multicast, "multicast address"),
        (addr.is_unspecified, "unspecified address"),
        (addr.is_private, "private address"),
        (addr.is_reserved, "reserved address"),
        (not addr.is_global, "non-public address"),
    ]
    return next((name for bad, name in checks if bad), "")


class Refused(Exception):
    """A host the crawler must not contact; the message says why and how to allow it."""


class FetchFailed(Exception):
    def __init__(self, reason: str, detail: str, retryable: bool = False):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail, self.retryable = reason, detail, retryable


PRIVATE_HINT = "use --allow-private to crawl private networks"  # `corpusforge crawl`; `run` names its setting


def checked_addresses(host: str, port: int, allow_private: bool, hint: str = PRIVATE_HINT) -> list[str]:
    """The host's addresses, each checked; raises Refused naming the address, the rule and the switch that allows
    it (`hint`), FetchFailed on DNS errors."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        temporary = isinstance(exc, socket.gaierror) and exc.errno == socket.EAI_AGAIN
        raise FetchFailed("dns_error", f"{host}: {exc}", retryable=temporary) from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not allow_private:
        for ip in addresses:
            problem = address_problem(ip)
            if problem:
                name = host if host == ip else f"{host} ({ip})"
                raise Refused(f"refusing {name}: {problem} ({hint})")
    return addresses


# --- robots.txt (RFC 9309) -------------------------------------------------------------------------------------------


@dataclass
class RobotsRules:
    """The rules of the group that applies to us: (allow, pattern) pairs and the Crawl-delay, if any."""

    rules: list[tuple[bool, str]] = field(default_factory=list)
    crawl_delay: float = 0.0
    disallow_all: bool = False

    @classmethod
    def parse(cls, text: str, agent: str = ROBOTS_AGENT) -> RobotsRules:
        groups: list[dict] = []
        current: dict | None = None
        for raw_line in text.removeprefix("\ufeff").splitlines():
            line = raw_line.split("#", 1)[0].strip()
            key, sep, value = line.partition(":")
            if not sep:
                continue
            key, value = key.strip().lower().replace("-", "").replace("_", "").replace(" ", ""), value.strip()
            if key == "useragent":
                if current is None or current["closed"]:
                    current = {"agents": [], "rules": [], "delay": None, "closed": False}
                    groups.append(current)
                current["agents"].append(value.split("/")[0].strip().lower())
            elif current is not None and key in ("allow", "disallow", "crawldelay"):
                current["closed"] = True  # a later user-agent line starts a new group
                if key == "crawldelay":
                    try:
                        current["delay"] = max(0.0, float(value))
                    except ValueError:
                        pass
                elif value:  # an empty Disallow allows everything: no rule
                    current["rules"].append((key == "allow", normalize_escapes(value, QUERY_SAFE + "*$")))
        ours = [g for g in groups if agent.lower() in g["agents"]] or [g for g in groups if "*" in g["agents"]]
        delays = [g["delay"] for g in ours if g["delay"] is not None]
        return cls([rule for g in ours for rule in g["rules"]], max(delays, default=0.0))

    def allowed(self, url: str) -> bool:
        """Longest matching pattern wins; on a tie allow wins; /robots.txt itself is always allowed."""
        if self.disallow_all:
            return False
        target = _path_and_query(url)
        if target == "/robots.txt":
            return True
        best_length, verdict = -1, True
        for allow, pattern in self.rules:
            if len(pattern) >= best_length and _robots_pattern(pattern).match(target):
                if len(pattern) > best_length or allow:
                    best_length, verdict = len(pattern), allow
        return verdict


_PATTERN_CACHE: dict[str, re.Pattern] = {}


def _robots_pattern(pattern: str) -> re.Pattern:
    """`*` matches any run of characters, a final `$` anchors the end; everything else is literal, from the start."""
    compiled = _PATTERN_CACHE.get(pattern)
    if compiled is None:
        anchored = pattern.endswith("$")
        body = ".*".join(re.escape(part) for part in pattern.rstrip("$").split("*"))
        compiled = re.compile(body + (r"\Z" if anchored else ""), re.DOTALL)
        _PATTERN_CACHE[pattern] = compiled
    return compiled


ALLOW_ALL = RobotsRules()
DISALLOW_ALL = RobotsRules(disallow_all=True)


# --- one HTTP request ------------------------------------------------------------------------------------------------


@dataclass
class Response:
    url: str
    ip: str
    status: int
    status_line: str
    headers: list[tuple[str, str]]  # as received, except Transfer-Encoding (see `_stored_headers`)
    body: bytes  # as received: content-encoded, de-chunked
    request_head: bytes
    date: datetime

    def header(self, name: str) -> str:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), "")

    @property
    def mime(self) -> str:
        return self.header("content-type").split(";")[0].strip().lower()


class _DecodedSize:
    """Counts the decompressed size of a body as it streams in, to cap it before it is all there."""

    def __init__(self, content_encoding: str, cap: int):
        self.cap, self.size = cap, 0
        self.stages = [c.strip().lower() for c in content_encoding.split(",") if c.strip()][::-1]
        self.decoders: list | None = None

    def _decoder(self, coding: str, first: bytes):
        if coding in ("gzip", "x-gzip"):
            return zlib.decompressobj(zlib.MAX_WBITS | 16)
        if coding == "deflate":  # zlib-wrapped as the RFC says, or raw deflate as many servers send
            wrapped = len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0
            return zlib.decompressobj(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        if coding == "br":
            import brotli  # installed with fastwarc

            return brotli.Decompressor()
        return None  # identity, or a coding we cannot undo: counted as it came

    def add(self, chunk: bytes) -> bool:
        """Feed raw bytes; False once the decoded size is over the cap."""
        try:
            if self.decoders is None:
                self.decoders = [self._decoder(c, chunk) for c in self.stages if c not in ("identity", "none")]
            data = chunk
            for decoder in self.decoders:
                if decoder is None:
                    continue
                limit = self.cap - self.size + 1
                if hasattr(decoder, "process"):  # brotli
                    data = decoder.process(data, output_buffer_limit=limit)
                else:
                    data = decoder.decompress(data, limit)
        except Exception:  # noqa: BLE001 - a body that does not decode is counted raw; ingest rejects it later
            self.decoders, data = [], chunk
        self.size += len(data)
        return self.size <= self.cap


def _stored_headers(raw: list[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """Headers to store: all but Transfer-Encoding, since the body is stored de-chunked as httpx hands it over
    (a stale `chunked` would make a reader de-chunk it again)."""
    return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw if k.lower() != b"transfer-encoding"]


def _retry_after(value: str) -> float | None:
    """Seconds from a Retry-After header: delay-seconds or an HTTP date."""
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


class Fetcher:
    """GET one URL (no redirects followed), connecting to a checked address; one httpx client per host, so a
    kept-alive connection is only reused for the host whose certificate it verified."""

    def __init__(self, cfg: CrawlConfig, private_hint: str = PRIVATE_HINT):
        import httpx

        self.httpx, self.cfg, self.agent, self.private_hint = httpx, cfg, user_agent(cfg), private_hint
        self.clients: OrderedDict[str, object] = OrderedDict()

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self.clients.clear()

    def _client(self, host: str):
        client = self.clients.pop(host, None)
        if client is None:
            limits = self.httpx.Limits(max_connections=1, max_keepalive_connections=1)
            # trust_env=False: a proxy from the environment would resolve names itself, past the address check.
            client = self.httpx.Client(limits=limits, trust_env=False, follow_redirects=False)
        self.clients[host] = client
        while len(self.clients) > MAX_OPEN_CLIENTS:
            self.clients.popitem(last=False)[1].close()
        return client

    def fetch(self, url: str, *, any_type: bool = False) -> Response:
        """Raises Refused for a forbidden address, FetchFailed for network errors, timeouts and size caps.

        A 2xx body of a type other than HTML or text is not downloaded (FetchFailed "unsupported_content_type")
        unless `any_type`: robots.txt files are read whatever type they are served as.
        """
        httpx = self.httpx
        parsed = httpx.URL(url)
        host = parsed.raw_host.decode("ascii")
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        addresses = checked_addresses(host, port, self.cfg.allow_private, self.private_hint)
        error: FetchFailed | None = None
        for ip in addresses[:2]:  # a second address when the first does not answer
            try:
                return self._fetch_from(url, parsed, host, ip, any_type)
            except FetchFailed as exc:
                if exc.reason != "connect_error":
                    raise
                error = exc
        raise FetchFailed("network_error", error.detail if error else f"{host}: no address", retryable=True)

    def _fetch_from(self, url: str, parsed, host: str, ip: str, any_type: bool) -> Response:
        httpx, cfg = self.httpx, self.cfg
        start = time.monotonic()
        timeout = httpx.Timeout(cfg.timeout_s, connect=min(cfg.connect_timeout_s, cfg.timeout_s))
        headers = {
            "Host": parsed.netloc.decode("ascii"),
            "User-Agent": self.agent,
            "Accept": "text/html,application/xhtml+xml,text/plain;q=0.9,*/*;q=0.1",
            "Accept-Encoding": "gzip, deflate, br",
        }
        client = self._client(host)
        try:
            request = client.build_request(
                "GET", parsed.copy_with(host=ip), headers=headers, extensions={"sni_hostname": host}, timeout=timeout
            )
        except httpx.InvalidURL as exc:  # a scoped IPv6 address, say
            raise FetchFailed("invalid_url", f"{url} via {ip}: {exc}") from None
        request_head = (
            f"GET {parsed.raw_path.decode('ascii')} HTTP/1.1\r\n".encode()
            + b"".join(k + b": " + v + b"\r\n" for k, v in request.headers.raw)
            + b"\r\n"
        )
        try:
            response = client.send(request, stream=True)
        except httpx.TimeoutException as exc:
            connect = isinstance(exc, httpx.ConnectTimeout)
            raise FetchFailed("connect_error" if connect else "timeout", f"{type(exc).__name__}: {exc}") from None
        except httpx.ConnectError as exc:
            if "CERTIFICATE" in str(exc).upper():
                raise FetchFailed("tls_error", str(exc)) from None
            raise FetchFailed("connect_error", f"{type(exc).__name__}: {exc}") from None
        except httpx.TransportError as exc:
            raise FetchFailed("network_error", f"{type(exc).__name__}: {exc}", retryable=True) from None
        except httpx.InvalidURL as exc:  # httpx builds the next request from Location even when not following it
            raise FetchFailed("invalid_redirect", f"{url}: a Location httpx cannot parse: {exc}") from None
        try:
            body = self._read_body(response, start, any_type)
        finally:
            response.close()
        return Response(
            url=url,
            ip=ip,
            status=response.status_code,
            status_line=f"{response.http_version} {response.status_code} {response.reason_phrase}",
            headers=_stored_headers(response.headers.raw),
            body=body,
            request_head=request_head,
            date=datetime.now(timezone.utc),
        )

    def _read_body(self, response, start: float, any_type: bool) -> bytes:
        httpx, cfg = self.httpx, self.cfg
        mime = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if not any_type and 200 <= response.status_code < 300 and mime not in FETCH_TYPES:
            raise FetchFailed("unsupported_content_type", f"content-type {mime}")
        encoding = response.headers.get("content-encoding", "")
        declared = response.headers.get("content-length", "")
        if not encoding and declared.isdigit() and int(declared) > cfg.max_bytes:
            raise FetchFailed("too_large", f"Content-Length {declared} > max_bytes {cfg.max_bytes}")
        counter = _DecodedSize(encoding, cfg.max_bytes)
        parts, raw_size = [], 0
        try:
            for chunk in response.iter_raw():
                parts.append(chunk)
                raw_size += len(chunk)
                if not counter.add(chunk) or raw_size > cfg.max_bytes + (64 << 10):
                    raise FetchFailed("too_large", f"body over max_bytes {cfg.max_bytes} after decompression")
                if time.monotonic() - start > cfg.timeout_s:
                    raise FetchFailed("timeout", f"body not complete within {cfg.timeout_s}s")
        except httpx.TimeoutException as exc:
            raise FetchFailed("timeout", f"{type(exc).__name__} while reading the body") from None
        except httpx.TransportError as exc:
            raise FetchFailed("network_error", f"{type(exc).__name__}: {exc}", retryable=True) from None
        return b"".join(parts)


# --- WARC output -----------------------------------------------------------------------------------------------------


def _digest(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode("ascii")


def _warc_date(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _record_id() -> str:
    return f"<urn:uuid:{uuid.uuid4()}>"


def warc_record(headers: list[tuple[str, str]], block: bytes) -> bytes:
    """One WARC/1.1 record as its own gzip member (so each record can be read, and cut at, on its own)."""
    head = "WARC/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + f"Content-Length: {len(block)}\r\n\r\n"
    return gzip.compress(head.encode("utf-8") + block + b"\r\n\r\n", compresslevel=6)


class WarcWriter:
    """Appends request/response pairs to a new `crawl-<UTC time>.warc.gz`, flushed after every pair."""

    def __init__(self, directory: Path, software: str):
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        for n in itertools.count():
            self.path = directory / f"crawl-{stamp}{f'-{n}' if n else ''}.warc.gz"
            try:
                self.file = open(self.path, "xb")  # never overwrite an earlier crawl's file
                break
            except FileExistsError:
                continue
        self.warcinfo_id = _record_id()
        info = f"software: {software}\r\nformat: WARC File Format 1.1\r\nrobots: obey\r\n".encode()
        headers = [
            ("WARC-Type", "warcinfo"),
            ("WARC-Record-ID", self.warcinfo_id),
            ("WARC-Date", _warc_date(datetime.now(timezone.utc))),
            ("WARC-Filename", self.path.name),
            ("Content-Type", "application/warc-fields"),
        ]
        self._write(warc_record(headers, info))

    def _write(self, data: bytes) -> None:
        self.file.write(data)
        self.file.flush()

    def write_exchange(self, response: Response) -> None:
        date = _warc_date(response.date)
        response_id = _record_id()
        head = response.status_line + "\r\n" + "".join(f"{k}: {v}\r\n" for k, v in response.headers) + "\r\n"
        block = head.encode("latin-1", "replace") + response.body
        common = [("WARC-Date", date), ("WARC-Target-URI", response.url), ("WARC-IP-Address", response.ip)]
        request_headers = [
            ("WARC-Type", "request"),
            ("WARC-Record-ID", _record_id()),
            *common,
            ("WARC-Concurrent-To", response_id),
            ("WARC-Warcinfo-ID", self.warcinfo_id),
            ("Content-Type", "application/http; msgtype=request"),
            ("WARC-Block-Digest", _digest(response.request_head)),
        ]
        response_headers = [
            ("WARC-Type", "response"),
            ("WARC-Record-ID", response_id),
            *common,
            ("WARC-Warcinfo-ID", self.warcinfo_id),
            ("Content-Type", "application/http; msgtype=response"),
            ("WARC-Payload-Digest", _digest(response.body)),
            ("WARC-Block-Digest", _digest(block)),
        ]
        # Both records in one write: a crawl killed here loses the pair, never half of it.
        self._write(warc_record(request_headers, response.request_head) + warc_record(response_headers, block))

    def close(self) -> None:
        self.file.close()


# --- what a page leads to --------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What the crawl needs from a response, live or from an archive: status, redirect target, links."""

    status: int
    location: str = ""
    links: list[str] = field(default_factory=list)


def extract_links(body: bytes, base_url: str, charset: str = "") -> list[str]:
    """Normalized http(s) links of an HTML page, in order, without rel=nofollow links; none when a robots meta tag
    says nofollow."""
    import lxml.html

    from corpus.sources.decode import decode_html

    text = decode_html(body, charset)
    if not text.strip():
        return []
    try:
        root = lxml.html.document_fromstring(text.encode("utf-8"), parser=lxml.html.HTMLParser(encoding="utf-8"))
    except (ValueError, lxml.etree.ParserError):
        return []
    for meta in root.iter("meta"):
        if (meta.get("name") or "").strip().lower() in ("robots", ROBOTS_AGENT):
            content = (meta.get("content") or "").lower()
            if "nofollow" in content or "none" in content:
                return []
    base = root.find(".//base[@href]")
    base_url = urljoin(base_url, base.get("href").strip()) if base is not None else base_url
    links: list[str] = []
    for element in root.iter("a", "area"):
        href = element.get("href")
        if not href or "nofollow" in (element.get("rel") or "").lower():
            continue
        url = normalize_url(href, base_url)
        if url is not None:
            links.append(url)
    return list(dict.fromkeys(links))


def _outcome(status: int, headers_get: Callable[[str], str], body: bytes, url: str) -> Outcome:
    from corpus.sources.warc import parse_content_type, undo_content_encoding

    outcome = Outcome(status)
    location = headers_get("location").strip()
    if 300 <= status < 400:
        outcome.location = (normalize_url(location, url) or "") if location else ""
    elif 200 <= status < 300:
        mime, charset = parse_content_type(headers_get("content-type"))
        if mime in HTML_TYPES or (not mime and body.lstrip()[:1] == b"<"):
            try:
                body = undo_content_encoding(body, headers_get("content-encoding"), len(body) * 100 + (1 << 20))
            except Exception:  # noqa: BLE001 - a body that does not decode has no links to follow
                return outcome
            outcome.links = extract_links(body, url, charset)
    return outcome


def archived_outcomes(directory: Path, errors: list[dict]) -> dict[str, Outcome]:
    """Normalized URL -> Outcome of every complete response record in the WARC files of `directory`.

    429 and 5xx responses are left out (a resumed crawl tries those again); so is a record cut short by a kill.
    """
    from fastwarc.warc import WarcRecordType

    from corpus.sources.warc import _read_exact, _split_http, _strip_brackets, iter_records

    outcomes: dict[str, Outcome] = {}
    paths = sorted(p for p in directory.iterdir() if p.is_file() and p.name.endswith((".warc.gz", ".warc")))
    for path in paths:
        for _, record in iter_records(str(path), 0, errors):
            if record.record_type != WarcRecordType.response:
                continue
            url = normalize_url(_strip_brackets(record.headers.get("WARC-Target-URI")))
            if url is None:
                continue
            try:
                block = _read_exact(record.reader, record.content_length)
            except OSError:
                continue
            if len(block) < record.content_length:
                continue  # truncated by a kill: fetch again
            status, headers, body = _split_http(block)
            if status is None or status in RETRY_STATUSES or status >= 500:
                continue
            outcomes[url] = _outcome(status, lambda name, h=headers: h.get(name, ""), body, url)
    return outcomes


# --- scheduling ------------------------------------------------------------------------------------------------------


@dataclass
class Entry:
    url: str
    depth: int
    redirects: tuple[str, ...] = ()  # the URLs that redirected here, in order
    attempt: int = 0


class Frontier:
    """Per-host FIFO queues; `pop` gives a URL of a host whose politeness delay has passed, or how long to wait."""

    def __init__(self):
        self.queues: dict[str, deque[Entry]] = {}
        self.ready_at: dict[str, float] = {}
        self.heap: list[tuple[float, int, str]] = []
        self.seq = itertools.count()
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def _schedule(self, host: str) -> None:
        heapq.heappush(self.heap, (self.ready_at.get(host, 0.0), next(self.seq), host))

    def push(self, entry: Entry, *, front: bool = False) -> None:
        host = host_of(entry.url)
        queue = self.queues.setdefault(host, deque())
        was_empty = not queue
        queue.appendleft(entry) if front else queue.append(entry)
        self.size += 1
        if was_empty:
            self._schedule(host)

    def hold(self, host: str, until: float) -> None:
        """No request to `host` before `until` (time.monotonic)."""
        self.ready_at[host] = max(self.ready_at.get(host, 0.0), until)
        if self.queues.get(host):
            self._schedule(host)

    def pop(self, now: float) -> tuple[Entry | None, float]:
        """(entry, 0) when one is due, (None, seconds to wait) when all wait, (None, 0) when empty."""
        while self.heap:
            ready, _, host = self.heap[0]
            queue = self.queues.get(host)
            if not queue or ready != self.ready_at.get(host, 0.0):
                heapq.heappop(self.heap)  # stale: the host was rescheduled or emptied
                continue
            if ready > now:
                return None, ready - now
            heapq.heappop(self.heap)
            entry = queue.popleft()
            self.size -= 1
            if queue:
                self._schedule(host)
            return entry, 0.0
        return None, 0.0

    def drain(self) -> list[Entry]:
        entries = [e for q in self.queues.values() for e in q]
        self.queues.clear()
        self.heap.clear()
        self.size = 0
        return entries


# --- the crawl -------------------------------------------------------------------------------------------------------


class Crawler:
    def __init__(self, cfg: CrawlConfig, output: Path, log: Callable[[str], None], private_hint: str = PRIVATE_HINT):
        self.cfg, self.output, self.log = cfg, output, log
        self.fetcher = Fetcher(cfg, private_hint)
        self.frontier = Frontier()
        self.replay: deque[Entry] = deque()  # URLs whose response the output's WARC files already hold
        self.seen: set[str] = set()
        self.too_deep: set[str] = set()
        self.skipped: Counter = Counter()
        self.seeds: set[str] = set()
        self.not_fetched: dict[str, tuple[str, str]] = {}  # seed -> (reason, detail) for seeds never fetched
        self.robots_problems: dict[str, str] = {}  # origin -> why its robots.txt disallows everything
        self.statuses: Counter = Counter()
        self.refused: dict[str, str] = {}
        self.robots: dict[str, RobotsRules] = {}
        self.errors: list[dict] = []
        self.archive = archived_outcomes(output, self.errors)
        for error in self.errors:
            self.log(f"damaged WARC {error['path']} at byte {error['offset']}: {error['error']} (the rest is used)")
        self.domains: set[str] = set()
        self.writer: WarcWriter | None = None
        self.pages = self.fetched = self.from_archive = 0

    def close(self) -> None:
        self.fetcher.close()
        if self.writer is not None:
            self.writer.close()

    # --- what gets queued

    def enqueue(self, url: str, depth: int, redirects: tuple[str, ...] = ()) -> None:
        if url in self.seen:
            return
        if self.cfg.same_domain and not in_domains(url, self.domains):
            self._skip_once(url, "off_domain")
            return
        if depth > self.cfg.max_depth:
            self.too_deep.add(url)  # counted at the end: the URL may still turn up nearer a seed
            return
        if not redirects and any(urlsplit(url).path.lower().endswith(ext) for ext in SKIPPED_EXTENSIONS):
            self._skip_once(url, "not_a_page")
            return
        self.seen.add(url)
        self.too_deep.discard(url)
        entry = Entry(url, depth, redirects)
        if url in self.archive:
            self.replay.append(entry)
        else:
            self.frontier.push(entry)

    def _skip_once(self, url: str, reason: str) -> None:
        self.seen.add(url)
        self._skip(url, reason)

    def _skip(self, url: str, reason: str, detail: str = "") -> None:
        """Count a URL given up; a seed's reason is kept, so a URL list can account for every line."""
        self.skipped[reason] += 1
        if url in self.seeds:
            self.not_fetched.setdefault(url, (reason, detail))

    def follow(self, entry: Entry, outcome: Outcome) -> None:
        """Queue what a response leads to: its redirect target (same depth) or its links (one deeper)."""
        if outcome.location:
            chain = (*entry.redirects, entry.url)
            if outcome.location in chain:
                self.skipped["redirect_loop"] += 1
                self.log(f"redirect loop: {' -> '.join(chain)} -> {outcome.location}")
            elif len(chain) > self.cfg.max_redirects:
                self.skipped["too_many_redirects"] += 1
            else:
                self.enqueue(outcome.location, entry.depth, chain)
        elif 200 <= outcome.status < 300:
            self.pages += 1
            if entry.depth < self.cfg.max_depth:
                for link in outcome.links:
                    self.enqueue(link, entry.depth + 1)
            else:
                in_scope = (
                    link for link in outcome.links if not self.cfg.same_domain or in_domains(link, self.domains)
                )
                self.too_deep.update(link for link in in_scope if link not in self.seen)

    # --- one URL

    def _delay(self, rules: RobotsRules) -> float:
        return max(1.0 / self.cfg.rate, rules.crawl_delay)

    def _robots_for(self, url: str) -> RobotsRules | None:
        """The host's rules, or None when they had to be fetched now (that request used the host's turn)."""
        parts = urlsplit(url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if origin in self.robots:
            return self.robots[origin]
        self.robots[origin] = self._fetch_robots(origin + "/robots.txt")
        return None

    def _fetch_robots(self, robots_url: str) -> RobotsRules:
        """RFC 9309 2.3.1: follow up to five redirects; 2xx rules, 4xx allow all, 5xx or unreachable disallow all."""
        url = robots_url
        for hop in range(5 + 1):
            try:
                response = self.fetcher.fetch(url, any_type=True)
            except Refused as exc:
                if hop == 0:
                    raise  # the host itself is refused
                return self._disallow_all(robots_url, f"robots.txt redirected to a refused address: {exc}")
            except FetchFailed as exc:
                return self._disallow_all(robots_url, f"robots.txt unreachable ({exc.reason}: {exc.detail[:200]})")
            location = response.header("location")
            if 300 <= response.status < 400 and location:
                url = normalize_url(location, url) or ""
                if not url:
                    return ALLOW_ALL
                continue
            if 200 <= response.status < 300:
                from corpus.sources.warc import undo_content_encoding

                try:
                    body = undo_content_encoding(
                        response.body, response.header("content-encoding"), 4 * ROBOTS_MAX_BYTES
                    )
                except Exception:  # noqa: BLE001 - undecodable or oversized: read what came as it came
                    body = response.body
                return RobotsRules.parse(body[:ROBOTS_MAX_BYTES].decode("utf-8", "replace"))
            if response.status == 429 or response.status >= 500:
                return self._disallow_all(robots_url, f"robots.txt answered {response.status}")
            return ALLOW_ALL  # 4xx: no rules
        return ALLOW_ALL  # more than five redirects: treated as unavailable (RFC 9309 2.3.1.2)

    def _disallow_all(self, robots_url: str, why: str) -> RobotsRules:
        """RFC 9309: robots.txt that cannot be read means nothing may be crawled; the reason is kept for the URLs."""
        self.log(f"{why}, disallowing {robots_url}")
        self.robots_problems[robots_url.removesuffix("/robots.txt")] = f"{why}, so everything is disallowed (RFC 9309)"
        return DISALLOW_ALL

    def visit(self, entry: Entry) -> None:
        url, host = entry.url, host_of(entry.url)
        if host in self.refused:
            self._skip(url, "unsafe_address", self.refused[host])
            return
        try:
            rules = self._robots_for(url)
        except Refused as exc:
            self._refuse(url, host, str(exc))
            return
        if rules is None:  # robots.txt was fetched just now: this URL waits for the host's next turn
            self.frontier.push(entry, front=True)
            self.frontier.hold(host, time.monotonic() + self._delay(self.robots_rules(url)))
            return
        if not rules.allowed(url):
            parts = urlsplit(url)
            problem = self.robots_problems.get(f"{parts.scheme}://{parts.netloc}")
            self._skip(url, "robots_disallowed", problem or f"robots.txt of {parts.netloc} disallows {_path_and_query(url)}")
            return
        if rules.crawl_delay > self.cfg.max_crawl_delay_s:
            self._skip(url, "crawl_delay_too_long", f"Crawl-delay {rules.crawl_delay}s > crawl.max_crawl_delay_s")
            return
        try:
            response = self.fetcher.fetch(url)
        except Refused as exc:
            self._refuse(url, host, str(exc))
            return
        except FetchFailed as exc:
            self.frontier.hold(host, time.monotonic() + self._delay(rules))
            if exc.retryable and self._retry(entry, self._backoff(entry)):
                return
            self._skip(url, exc.reason, exc.detail[:300])
            self.log(f"skipped {url}: {exc.reason} ({exc.detail[:200]})")
            return
        self.frontier.hold(host, time.monotonic() + self._delay(rules))
        if response.status in RETRY_STATUSES:
            wait = _retry_after(response.header("retry-after"))
            wait = self._backoff(entry) if wait is None else max(wait, self._backoff(entry))
            if wait <= self.cfg.max_retry_after_s and self._retry(entry, wait):
                return
        self._store(response)
        self.follow(entry, _outcome(response.status, response.header, response.body, url))

    def robots_rules(self, url: str) -> RobotsRules:
        parts = urlsplit(url)
        return self.robots.get(f"{parts.scheme}://{parts.netloc}", ALLOW_ALL)

    def _backoff(self, entry: Entry) -> float:
        return self.cfg.backoff_s * (2**entry.attempt)

    def _retry(self, entry: Entry, wait: float) -> bool:
        """Queue the URL again after `wait` seconds (the whole host waits: it asked us to slow down)."""
        if entry.attempt >= self.cfg.retries:
            return False
        entry.attempt += 1
        self.frontier.push(entry, front=True)
        self.frontier.hold(host_of(entry.url), time.monotonic() + wait)
        return True

    def _refuse(self, url: str, host: str, message: str) -> None:
        self._skip(url, "unsafe_address", message)
        if host not in self.refused:
            self.refused[host] = message
            self.log(message)

    def _store(self, response: Response) -> None:
        if self.writer is None:
            self.writer = WarcWriter(self.output, user_agent(self.cfg))
        self.writer.write_exchange(response)
        self.fetched += 1
        self.statuses[response.status] += 1
        self.log(f"{response.status} {response.url} ({len(response.body)} bytes)")

    # --- the loop

    def run(self, seeds: list[str]) -> dict:
        start = time.monotonic()
        urls = []
        for seed in seeds:
            seed = seed.strip()
            url = normalize_url(seed if "://" in seed else f"https://{seed}")
            if url is None:
                self.skipped["invalid_seed"] += 1
                self.not_fetched.setdefault(seed, ("invalid_seed", "not an http(s) URL"))
                self.log(f"not an http(s) URL, skipped: {seed!r}")
            else:
                urls.append(url)
        self.seeds = set(urls)
        self.domains = _site_domains(urls)
        for url in urls:
            self.enqueue(url, 0)
        while self.replay or len(self.frontier):
            if self.cfg.max_pages and self.pages >= self.cfg.max_pages:
                for left in [*self.replay, *self.frontier.drain()]:
                    self._skip(left.url, "max_pages", f"crawl.max_pages={self.cfg.max_pages} reached")
                self.replay.clear()
                break
            if self.replay:
                entry = self.replay.popleft()
                self.from_archive += 1
                self.follow(entry, self.archive[entry.url])
                continue
            entry, wait = self.frontier.pop(time.monotonic())
            if entry is None:
                time.sleep(wait)
                continue
            self.visit(entry)
        if self.too_deep:
            self.skipped["max_depth"] += len(self.too_deep - self.seen)
        return {
            "warc": str(self.writer.path) if self.writer else None,
            "fetched": self.fetched,
            "pages": self.pages,
            "from_archive": self.from_archive,
            "status": dict(sorted(self.statuses.items())),
            "skipped": dict(sorted(self.skipped.items())),
            "refused": dict(self.refused),
            "errors": self.errors,
            "not_fetched": {url: list(outcome) for url, outcome in self.not_fetched.items()},
            "seconds": round(time.monotonic() - start, 3),
        }


def crawl(
    seeds: list[str], output: Path, cfg: CrawlConfig, log: Callable[[str], None] = print, private_hint: str = PRIVATE_HINT
) -> dict:
    """Crawl from `seeds` into WARC files in `output` (created if needed); resume from the WARC files already there.

    Returns a summary: warc (the file written, or None), fetched (responses written in this run), pages (2xx
    pages, those replayed from earlier WARC files included), from_archive, status (count per HTTP status),
    skipped (count per reason), refused (host -> message), errors (damage found in earlier WARC files),
    not_fetched (seed URL, as normalized, -> [reason, detail] for each seed that got no response), seconds.
    `private_hint` is what a refusal says to do to allow private addresses.
    """
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    crawler = Crawler(cfg, output, log, private_hint)
    try:
        return crawler.run(list(seeds))
    finally:
        crawler.close()


def url_list_lines(path: str) -> list[tuple[int, str]]:
    """(byte offset of the line, URL) per URL of a URL list file: one per line, blank lines and `#` comments
    skipped."""
    lines, offset = [], 0
    with open(path, "rb") as f:
        for raw in f:
            line = raw.decode("utf-8", errors="replace").strip()
            if line and not line.startswith("#"):
                lines.append((offset, line))
            offset += len(raw)
    return lines


def read_url_list(path: str) -> list[str]:
    """The URLs of a URL list file: one per line, blank lines and `#` comments skipped."""
    return [url for _, url in url_list_lines(path)]


RUN_PRIVATE_HINT = "use --set crawl.allow_private=true to crawl private networks"  # what `run` accepts


def crawl_url_lists(
    paths: list[str],
    output: Path,
    cfg: CrawlConfig,
    log: Callable[[str], None] = print,
    not_fetched: list[dict] | None = None,
) -> list[str]:
    """`run --input urls.txt`: fetch the URLs of every URL-list input into WARC files in `output`, and return the
    inputs with the URL lists replaced by `output` (a folder of WARC files that `plan_units` reads).

    The listed URLs are the crawl: no links are followed and there is no page limit (other settings from `cfg`).
    A listed URL that got a response is a record of those WARC files; every other line is appended to
    `not_fetched` as {"source", "offset", "url", "reason", "detail"}: robots_disallowed, unsafe_address (a
    private or loopback address; the detail names `crawl.allow_private`), dns_error, timeout, invalid_seed,
    duplicate_url (listed before) and the crawler's other reasons, so the run's ledger accounts for every line.
    """
    from corpus.sources import url_list_inputs

    lists = url_list_inputs(paths)
    if not lists:
        return list(paths)
    lines = [(path, offset, url) for path in lists for offset, url in url_list_lines(path)]
    seeds = [url for _, _, url in lines]
    settings = cfg.model_copy(update={"max_depth": 0, "max_pages": 0, "same_domain": False})
    summary = crawl(seeds, output, settings, log, private_hint=RUN_PRIVATE_HINT)
    if not_fetched is not None:
        outcomes, listed = summary["not_fetched"], {}
        for path, offset, url in lines:
            key = normalize_url(url if "://" in url else f"https://{url}") or url
            if key in listed:
                reason, detail = "duplicate_url", f"listed before, at {listed[key][0]} byte {listed[key][1]}"
            elif key in outcomes:
                reason, detail = outcomes[key]
            else:
                listed[key] = (path, offset)
                continue
            listed.setdefault(key, (path, offset))
            not_fetched.append({"source": path, "offset": offset, "url": url, "reason": reason, "detail": detail})
    list_set = set(lists)
    from corpus.sources import expand_inputs

    others = [p for p in expand_inputs(paths) if p not in list_set]
    return [*others, str(output)]
