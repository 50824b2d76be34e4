"""SSRF: ways a URL, a DNS answer, a redirect or a link can point the crawler at a private or internal address, each
refused without `allow_private` (with its reason), and let past the address check with it (so these tests can fail).

Everything goes through the crawler's public road: `crawl()` (seed -> `normalize_url` -> DNS -> `checked_addresses`
-> request to the checked address), with `checked_addresses` asserted on the same host. No real DNS and, except for
the rebinding and TLS tests (a local server), no real connection: `socket.getaddrinfo` answers from a table (numeric
hosts go to the real resolver with AI_NUMERICHOST, so "0177.0.0.1" is parsed by the C library as it would be in a
crawl) and httpx's transport is replaced by one that records each request (address connected to, Host header, path)
and answers it. See issue 13, "Crawler security".
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx
import pytest

import corpus.sources.crawl as crawler
from corpus.config import CrawlConfig
from corpus.sources.crawl import (
    Fetcher,
    FetchFailed,
    Refused,
    address_problem,
    checked_addresses,
    crawl,
)
from corpus.urls import normalize_url

PUBLIC = "93.184.216.34"  # a public address (example.com's former one)
PUBLIC2 = "93.184.216.35"
FLAG = "(use --allow-private to crawl private networks)"
REAL_GETADDRINFO = socket.getaddrinfo

# Names and what the fake DNS answers for them (first answer first). Names not here: numeric hosts are parsed by the
# real resolver (no lookup on the network), anything else is "Name or service not known".
DNS = {
    "public.test": [PUBLIC],
    "public2.test": [PUBLIC2],
    "localhost": ["127.0.0.1", "::1"],
    "metadata.google.internal": ["169.254.169.254"],
    "metadata": ["169.254.169.254"],  # GCE's short name
    "instance-data.ec2.internal": ["169.254.169.254", "fd00:ec2::254"],
    "127.0.0.1.nip.io": ["127.0.0.1"],  # wildcard DNS services that answer the address written in the name
    "10.0.0.1.sslip.io": ["10.0.0.1"],
    "intranet.test": ["10.20.30.40"],
    "nas.test": ["192.168.1.10"],
    "k8s.test": ["172.20.0.10"],
    "cgnat.test": ["100.64.12.34"],
    "v6-only-inward.test": ["fd12:3456:789a::1"],
    "public-then-private.test": [PUBLIC, "192.168.0.10"],  # one public and one private answer
    "private-then-public.test": ["10.0.0.7", PUBLIC],
    "public-v4-loopback-v6.test": [PUBLIC, "::1"],
    "mapped.test": ["::ffff:169.254.169.254"],
    "nat64.test": ["64:ff9b::a00:1"],
}


# --- fakes -----------------------------------------------------------------------------------------------------------


def _addrinfo(ip: str, port: int) -> tuple:
    if ":" in ip:
        return (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, port, 0, 0))
    return (socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))


class FakeDNS:
    """`socket.getaddrinfo` from a table; an entry may be a list of answers or a function giving one per lookup."""

    def __init__(self, answers: dict):
        self.answers = dict(answers)
        self.lookups: list[str] = []

    def __call__(self, host, port, family=0, type=0, proto=0, flags=0):
        name = host.decode() if isinstance(host, bytes) else host
        self.lookups.append(name)
        if name in self.answers:
            ips = self.answers[name]
            return [_addrinfo(ip, int(port or 0)) for ip in (ips() if callable(ips) else ips)]
        return REAL_GETADDRINFO(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)


class FakeWeb:
    """Replaces httpx's transport: records (address connected to, Host header's name, path) per request; answers
    from `routes` ((name, path) -> (status, headers, body)), else robots.txt 404 and a small page."""

    def __init__(self):
        self.routes: dict[tuple[str, str], tuple[int, dict, bytes]] = {}
        self.requests: list[tuple[str, str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        name = httpx.URL("http://" + request.headers["host"]).host
        self.requests.append((request.url.host, name, request.url.path))
        default = (404, {}, b"no robots") if request.url.path == "/robots.txt" else (200, {}, b"<p>ok</p>")
        status, headers, body = self.routes.get((name, request.url.path), default)
        headers = {"content-type": "text/html; charset=utf-8", "content-length": str(len(body)), **headers}
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(body), request=request)

    def addresses(self) -> set[str]:
        return {ip for ip, _, _ in self.requests}


@pytest.fixture
def net(monkeypatch):
    dns, web = FakeDNS(DNS), FakeWeb()
    monkeypatch.setattr(socket, "getaddrinfo", dns)
    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", lambda _self, request: web.handle_request(request))
    web.dns = dns
    return web


def config(allow_private: bool, **overrides) -> CrawlConfig:
    settings = {
        "allow_private": allow_private,
        "rate": 100,
        "timeout_s": 1.0,
        "connect_timeout_s": 0.5,
        "max_bytes": 1 << 20,
        "backoff_s": 0.01,
        "retries": 0,
        "max_pages": 0,
        "max_depth": 0,
        "same_domain": False,  # so that a redirect or a link to another host is followed, and checked
    }
    settings.update(overrides)
    return CrawlConfig(**settings)


def run(seeds, tmp_path, allow_private: bool, **overrides) -> tuple[dict, list[str]]:
    lines: list[str] = []
    summary = crawl(list(seeds), tmp_path / "out", config(allow_private, **overrides), log=lines.append)
    return summary, lines


def seed_url(seed: str) -> str:
    """The URL `crawl` makes of a seed (https:// added when there is no scheme), normalized."""
    return normalize_url(seed if "://" in seed else f"https://{seed}")


def assert_refused(summary: dict, reason: str | tuple[str, ...]) -> str:
    """Exactly one host refused, for one of `reason`, with the flag named; returns the message."""
    assert summary["skipped"].get("unsafe_address", 0) >= 1, summary
    assert len(summary["refused"]) == 1, summary["refused"]
    (message,) = summary["refused"].values()
    reasons = (reason,) if isinstance(reason, str) else reason
    assert message.startswith("refusing ") and any(message.endswith(f": {r} {FLAG}") for r in reasons), message
    return message


# --- the table: seeds that reach an internal address -----------------------------------------------------------------

# Reasons that differ between Python versions (3.12.4+/3.13 moved some IPv6 ranges into is_private).
RESERVED_OR_PRIVATE = ("reserved address", "private address", "non-public address")


def case(url, reason, reached, id, gap=None, crash=None):
    """A seed that reaches `reached` (the address a crawl with allow_private connects to), refused for `reason`.
    `gap`: known not refused (xfail in the refusal test only); `crash`: the crawl fails on it (xfail in both)."""
    return url, reason, reached, id, gap, crash


LOOP = "loopback address"
META = "cloud metadata address"
PRIV = "private address"
LINK = "link-local address"
CGNAT = "carrier-grade NAT (100.64.0.0/10) address"
UNSPEC = "unspecified address"

CASES = [
    # IPv4 literals in the legacy forms inet_aton accepts (decimal, hex, octal, short)
    case("http://127.0.0.1/", LOOP, "127.0.0.1", "dotted-loopback"),
    case("http://127.255.255.254/", LOOP, "127.255.255.254", "loopback-end-of-127/8"),
    case("http://2130706433/", LOOP, "127.0.0.1", "decimal-2130706433"),
    case("http://0x7f000001/", LOOP, "127.0.0.1", "hex-0x7f000001"),
    case("http://0X7F000001/", LOOP, "127.0.0.1", "hex-uppercase-0X7F000001"),
    case("http://0x7f.0.0.1/", LOOP, "127.0.0.1", "hex-octet-0x7f.0.0.1"),
    case("http://0x7f.0x0.0x0.0x1/", LOOP, "127.0.0.1", "hex-every-octet"),
    case("http://0177.0.0.1/", LOOP, "127.0.0.1", "octal-octet-0177.0.0.1"),
    case("http://017700000001/", LOOP, "127.0.0.1", "octal-whole-017700000001"),
    case("http://00000177.0.0.1/", LOOP, "127.0.0.1", "octal-zero-padded"),
    case("http://127.000.000.001/", LOOP, "127.0.0.1", "zero-padded-octets"),
    case("http://127.1/", LOOP, "127.0.0.1", "short-127.1"),
    case("http://127.0.1/", LOOP, "127.0.0.1", "short-127.0.1"),
    case("http://0x7f.1/", LOOP, "127.0.0.1", "short-hex-0x7f.1"),
    case("http://0.0.0.0/", UNSPEC, "0.0.0.0", "unspecified-0.0.0.0"),
    case("http://0/", UNSPEC, "0.0.0.0", "unspecified-0"),
    case("http://0x0/", UNSPEC, "0.0.0.0", "unspecified-hex-0x0"),
    case("http://0.1.2.3/", PRIV, "0.1.2.3", "this-network-0/8"),
    # private ranges
    case("http://10.0.0.1/", PRIV, "10.0.0.1", "rfc1918-10/8"),
    case("http://10.255.255.254/", PRIV, "10.255.255.254", "rfc1918-10/8-end"),
    case("http://167772161/", PRIV, "10.0.0.1", "rfc1918-10/8-decimal"),
    case("http://172.16.0.1/", PRIV, "172.16.0.1", "rfc1918-172.16/12"),
    case("http://172.31.255.254/", PRIV, "172.31.255.254", "rfc1918-172.16/12-end"),
    case("http://192.168.0.1/", PRIV, "192.168.0.1", "rfc1918-192.168/16"),
    case("http://0xc0a80001/", PRIV, "192.168.0.1", "rfc1918-192.168/16-hex"),
    case("http://100.64.0.1/", CGNAT, "100.64.0.1", "cgnat-100.64/10"),
    case("http://100.127.255.254/", CGNAT, "100.127.255.254", "cgnat-100.64/10-end"),
    case("http://198.18.0.1/", PRIV, "198.18.0.1", "benchmarking-198.18/15"),
    case("http://169.254.1.1/", LINK, "169.254.1.1", "link-local-169.254/16"),
    case("http://224.0.0.1/", "multicast address", "224.0.0.1", "multicast-224/4"),
    case("http://255.255.255.255/", PRIV, "255.255.255.255", "broadcast"),
    # cloud metadata
    case("http://169.254.169.254/latest/meta-data/", META, "169.254.169.254", "metadata-169.254.169.254"),
    case("http://2852039166/", META, "169.254.169.254", "metadata-decimal"),
    case("http://0xa9fea9fe/", META, "169.254.169.254", "metadata-hex"),
    case("http://0251.0376.0251.0376/", META, "169.254.169.254", "metadata-octal"),
    case("http://169.254.43518/", META, "169.254.169.254", "metadata-short-169.254.43518"),
    case("http://169.254.170.2/v2/credentials", META, "169.254.170.2", "metadata-ecs-task"),
    case("http://100.100.100.200/latest/meta-data/", META, "100.100.100.200", "metadata-alibaba"),
    case("http://[fd00:ec2::254]/latest/meta-data/", META, "fd00:ec2::254", "metadata-aws-ipv6"),
    # IPv6 literals
    case("http://[::1]/", LOOP, "::1", "ipv6-loopback"),
    case("http://[0:0:0:0:0:0:0:1]/", LOOP, "::1", "ipv6-loopback-long-form"),
    case("http://[0000::0001]/", LOOP, "::1", "ipv6-loopback-zero-padded"),
    case("http://[::]/", UNSPEC, "::", "ipv6-unspecified"),
    case("http://[::ffff:127.0.0.1]/", LOOP, "::ffff:127.0.0.1", "ipv4-mapped-dotted"),
    case("http://[::ffff:7f00:1]/", LOOP, "::ffff:127.0.0.1", "ipv4-mapped-hex"),
    case("http://[0:0:0:0:0:ffff:7f00:1]/", LOOP, "::ffff:127.0.0.1", "ipv4-mapped-long-form"),
    case("http://[::ffff:169.254.169.254]/", META, "::ffff:169.254.169.254", "ipv4-mapped-metadata"),
    case("http://[::ffff:10.0.0.1]/", PRIV, "::ffff:10.0.0.1", "ipv4-mapped-private"),
    case("http://[::ffff:100.64.0.1]/", CGNAT, "::ffff:100.64.0.1", "ipv4-mapped-cgnat"),
    case("http://[::127.0.0.1]/", RESERVED_OR_PRIVATE, "::127.0.0.1", "ipv4-compatible-deprecated"),
    case("http://[::ffff:0:7f00:1]/", RESERVED_OR_PRIVATE, "::ffff:0:7f00:1", "ipv4-translated-siit"),
    case("http://[fe80::1%25eth0]/", LINK, "fe80::1", "link-local-with-zone"),
    case("http://[fe80::1]/", LINK, "fe80::1", "link-local"),
    case("http://[fc00::1]/", PRIV, "fc00::1", "ula-fc00::/7"),
    case("http://[fd12:3456:789a::1]/", PRIV, "fd12:3456:789a::1", "ula-fd00::/8"),
    case("http://[ff02::1]/", "multicast address", "ff02::1", "ipv6-multicast"),
    case("http://[64:ff9b::7f00:1]/", LOOP, "64:ff9b::7f00:1", "nat64-loopback"),
    case("http://[64:ff9b::a9fe:a9fe]/", META, "64:ff9b::a9fe:a9fe", "nat64-metadata"),
    case("http://[64:ff9b:1::a00:1]/", RESERVED_OR_PRIVATE, "64:ff9b:1::a00:1", "nat64-local-use-64:ff9b:1::/48"),
    case("http://[2002:7f00:1::]/", LOOP, "2002:7f00:1::", "6to4-loopback"),
    case("http://[2002:a9fe:a9fe::1]/", META, "2002:a9fe:a9fe::1", "6to4-metadata"),
    case("http://[2002:a00:1::1]/", PRIV, "2002:a00:1::1", "6to4-private"),
    case(
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",
        LOOP,
        "2001:0:4136:e378:8000:63bf:80ff:fffe",
        "teredo-client-127.0.0.1",
    ),
    case("http://[fec0::1]/", ("site-local address", PRIV), "fec0::1", "ipv6-site-local-fec0"),
    # names that resolve inward (fake DNS)
    case("http://localhost/", LOOP, "127.0.0.1", "name-localhost"),
    case("http://LOCALHOST/", LOOP, "127.0.0.1", "name-localhost-uppercase"),
    case("http://localhost./", LOOP, "127.0.0.1", "name-localhost-trailing-dot"),
    case("http://localhost:8080/admin", LOOP, "127.0.0.1", "name-localhost-other-port"),
    case("http://metadata.google.internal/computeMetadata/v1/", META, "169.254.169.254", "name-gce-metadata"),
    case("http://metadata/computeMetadata/v1/", META, "169.254.169.254", "name-gce-metadata-short"),
    case("http://instance-data.ec2.internal/latest/", META, "169.254.169.254", "name-aws-instance-data"),
    case("http://127.0.0.1.nip.io/", LOOP, "127.0.0.1", "name-wildcard-dns-loopback"),
    case("http://10.0.0.1.sslip.io/", PRIV, "10.0.0.1", "name-wildcard-dns-private"),
    case("http://intranet.test/", PRIV, "10.20.30.40", "name-answer-10/8"),
    case("http://nas.test/", PRIV, "192.168.1.10", "name-answer-192.168/16"),
    case("http://k8s.test/", PRIV, "172.20.0.10", "name-answer-172.16/12"),
    case("http://cgnat.test/", CGNAT, "100.64.12.34", "name-answer-cgnat"),
    case("http://v6-only-inward.test/", PRIV, "fd12:3456:789a::1", "name-answer-ipv6-ula"),
    case("http://public-then-private.test/", PRIV, PUBLIC, "name-public-and-private-answers"),
    case("http://private-then-public.test/", PRIV, "10.0.0.7", "name-private-and-public-answers"),
    case("http://public-v4-loopback-v6.test/", LOOP, PUBLIC, "name-public-v4-loopback-v6"),
    case("http://mapped.test/", META, "::ffff:169.254.169.254", "name-answer-ipv4-mapped-metadata"),
    case("http://nat64.test/", PRIV, "64:ff9b::a00:1", "name-answer-nat64-private"),
    # URL tricks
    case("http://example.com@127.0.0.1/", LOOP, "127.0.0.1", "userinfo-host-before-at"),
    case("http://example.com:80@127.0.0.1/", LOOP, "127.0.0.1", "userinfo-with-port"),
    case("http://user:pass@169.254.169.254/", META, "169.254.169.254", "userinfo-metadata"),
    case("http://127.0.0.1:80#@example.com/", LOOP, "127.0.0.1", "fragment-hides-at"),
    case("http://127.0.0.1./", LOOP, "127.0.0.1", "trailing-dot"),
    case("HTTP://127.0.0.1/", LOOP, "127.0.0.1", "uppercase-scheme"),
    case("https://127.0.0.1/", LOOP, "127.0.0.1", "https-scheme"),
    case("http://127.0.0.1:8080/", LOOP, "127.0.0.1", "explicit-port"),
    case("http://[::ffff:127.0.0.1]:8080/", LOOP, "::ffff:127.0.0.1", "ipv6-with-port"),
    case("http://%31%32%37.0.0.1/", LOOP, "127.0.0.1", "percent-encoded-digits"),
    case("http://%6c%6f%63%61%6c%68%6f%73%74/", LOOP, "127.0.0.1", "percent-encoded-localhost"),
    case("http://%30x7f.1/", LOOP, "127.0.0.1", "percent-encoded-hex"),
    case("http://127.0.0.\n1/", LOOP, "127.0.0.1", "line-break-inside-host"),
    case("http://\uff11\uff12\uff17.\uff10.\uff10.\uff11/", LOOP, "127.0.0.1", "idna-fullwidth-digits"),
    case("http://127\u30020\u30020\u30021/", LOOP, "127.0.0.1", "idna-ideographic-full-stops"),
    case("http://127\uff0e0\uff0e0\uff0e1/", LOOP, "127.0.0.1", "idna-fullwidth-full-stops"),
    case("http://\u2460\u2461\u2466.\u24ea.\u24ea.\u2460/", LOOP, "127.0.0.1", "idna-circled-digits"),
    case("http://\U0001d7cf\U0001d7d0\U0001d7d5.\U0001d7ce.\U0001d7ce.\U0001d7cf/", LOOP, "127.0.0.1", "idna-math"),
    case("http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/", LOOP, "127.0.0.1", "idna-localhost"),
    case("127.0.0.1", LOOP, "127.0.0.1", "bare-seed-no-scheme"),
    case("localhost:8000", LOOP, "127.0.0.1", "bare-seed-name-and-port"),
]


def _params(for_refusal: bool) -> list:
    params = []
    for url, reason, reached, ident, gap, crash in CASES:
        why = crash or (gap if for_refusal else None)
        marks = [pytest.mark.xfail(strict=True, reason=why)] if why else []
        params.append(pytest.param(url, reason, reached, id=ident, marks=marks))
    return params


@pytest.mark.parametrize("url, reason, reached", _params(for_refusal=True))
def test_refused_without_allow_private(net, tmp_path, url, reason, reached):
    summary, lines = run([url], tmp_path, allow_private=False)
    message = assert_refused(summary, reason)
    assert message in lines
    assert net.requests == [] and summary["fetched"] == 0 and summary["warc"] is None  # not even robots.txt
    # checked_addresses says the same about the host the crawler derived from the seed
    parts = urlsplit(seed_url(url))
    with pytest.raises(Refused) as err:
        checked_addresses(parts.hostname, parts.port or 80, allow_private=False)
    assert str(err.value) == message


@pytest.mark.parametrize("url, reason, reached", _params(for_refusal=False))
def test_allowed_past_the_check_with_allow_private(net, tmp_path, url, reason, reached):
    """With allow_private the same seed is fetched, from the address it stands for: the refusal above is the address
    check's doing, and the table's reading of each form is right."""
    summary, _ = run([url], tmp_path, allow_private=True)
    assert summary["refused"] == {} and summary["fetched"] == 1, summary  # the page (robots.txt is not stored)
    assert net.addresses() == {reached}
    assert [path for _, _, path in net.requests] == ["/robots.txt", urlsplit(seed_url(url)).path]


# --- DNS answers, checked one by one ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "answers, reason, first_bad",
    [
        pytest.param([PUBLIC, "10.0.0.1"], PRIV, "10.0.0.1", id="public-first-then-private"),
        pytest.param(["10.0.0.1", PUBLIC], PRIV, "10.0.0.1", id="private-first-then-public"),
        pytest.param([PUBLIC, PUBLIC2, "127.0.0.1"], LOOP, "127.0.0.1", id="private-third-answer"),
        pytest.param([PUBLIC, "::1"], LOOP, "::1", id="public-v4-loopback-v6"),
        pytest.param(["2606:4700::1111", "fe80::1%lo"], LINK, "fe80::1%lo", id="public-v6-scoped-link-local"),
        pytest.param([PUBLIC, "169.254.169.254"], META, "169.254.169.254", id="public-and-metadata"),
        pytest.param([PUBLIC, "::ffff:127.0.0.1"], LOOP, "::ffff:127.0.0.1", id="public-and-ipv4-mapped-loopback"),
        pytest.param([PUBLIC, "0.0.0.0"], UNSPEC, "0.0.0.0", id="public-and-unspecified"),
        pytest.param([PUBLIC, "fec0::1"], "site-local address", "fec0::1", id="public-and-site-local"),
    ],
)
def test_any_inward_answer_refuses_the_name(monkeypatch, answers, reason, first_bad):
    monkeypatch.setattr(socket, "getaddrinfo", FakeDNS({"mixed.test": answers}))
    with pytest.raises(Refused) as err:
        checked_addresses("mixed.test", 443, allow_private=False)
    assert str(err.value) == f"refusing mixed.test ({first_bad}): {reason} {FLAG}"
    assert checked_addresses("mixed.test", 443, allow_private=True) == answers


def test_public_answers_pass_the_check(monkeypatch):
    """The control: public v4 and v6 answers are not refused."""
    answers = [PUBLIC, "2606:4700::1111"]
    monkeypatch.setattr(socket, "getaddrinfo", FakeDNS({"fine.test": answers}))
    assert checked_addresses("fine.test", 443, allow_private=False) == answers
    assert [address_problem(ip) for ip in answers] == ["", ""]


# --- DNS rebinding ---------------------------------------------------------------------------------------------------


def test_rebinding_between_requests_is_checked_again(net, tmp_path):
    """rebind.test answers a public address first (robots.txt is fetched from it), then 127.0.0.1: the page request
    is checked again and refused; nothing ever went to 127.0.0.1."""
    answers = iter([[PUBLIC]])
    net.dns.answers["rebind.test"] = lambda: next(answers, ["127.0.0.1"])
    summary, _ = run(["http://rebind.test/"], tmp_path, allow_private=False)
    assert net.requests == [(PUBLIC, "rebind.test", "/robots.txt")]
    assert summary["refused"] == {"rebind.test": f"refusing rebind.test (127.0.0.1): {LOOP} {FLAG}"}
    assert net.dns.lookups.count("rebind.test") == 2


class _Server:
    """A local HTTP(S) server that counts requests by path and remembers Host headers."""

    def __init__(self, tls_context: ssl.SSLContext | None = None):
        self.hits: Counter = Counter()
        self.hosts: set[str] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                server.hits[self.path] += 1
                server.hosts.add(self.headers["Host"])
                status, body = (404, b"none") if self.path == "/robots.txt" else (200, b"<html><body>hi</body></html>")
                self.send_response(status)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        if tls_context is not None:
            self.httpd.socket = tls_context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def local_server():
    server = _Server()
    yield server
    server.close()


def test_the_connection_goes_to_the_checked_address_not_to_a_new_lookup(local_server, tmp_path, monkeypatch):
    """Real httpx stack, real socket: rebind.test answers 127.0.0.1 (counted as public here, as in test_crawl) to the
    address check and 10.0.0.1 to any other lookup. Both requests reach the server with the name in the Host header:
    the connection goes to the checked literal, the name is looked up only by the check."""
    in_check = []

    def checked(*args, **kwargs):
        in_check.append(True)
        try:
            return real_checked(*args, **kwargs)
        finally:
            in_check.pop()

    real_checked = crawler.checked_addresses
    dns = FakeDNS({"rebind.test": lambda: ["127.0.0.1"] if in_check else ["10.0.0.1"]})
    monkeypatch.setattr(socket, "getaddrinfo", dns)
    monkeypatch.setattr(crawler, "checked_addresses", checked)
    monkeypatch.setattr(crawler, "address_problem", lambda ip: "" if ip == "127.0.0.1" else address_problem(ip))
    summary, _ = run([f"http://rebind.test:{local_server.port}/"], tmp_path, allow_private=False)
    assert summary["refused"] == {} and summary["fetched"] == 1  # the page (robots.txt is not stored)
    assert local_server.hits == Counter({"/robots.txt": 1, "/": 1})
    assert local_server.hosts == {f"rebind.test:{local_server.port}"}
    assert dns.lookups.count("rebind.test") == 2  # one per request: the check's
    assert set(dns.lookups) <= {"rebind.test", "127.0.0.1"}  # httpx resolved only the checked literal


# --- redirects and links to internal addresses ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status, location, reason",
    [
        pytest.param(302, "http://127.0.0.1/", LOOP, id="302-to-127.0.0.1"),
        pytest.param(301, "http://[::1]/", LOOP, id="301-to-ipv6-loopback"),
        pytest.param(307, "http://2130706433/", LOOP, id="307-to-decimal-loopback"),
        pytest.param(308, "http://169.254.169.254/latest/meta-data/", META, id="308-to-metadata"),
        pytest.param(303, "http://metadata.google.internal/", META, id="303-to-gce-name"),
        pytest.param(302, "//10.0.0.1/", PRIV, id="scheme-relative-to-private"),
        pytest.param(302, "http://[::ffff:a9fe:a9fe]/", META, id="to-ipv4-mapped-metadata"),
        pytest.param(302, "http://localhost:6379/", LOOP, id="to-localhost-redis-port"),
        pytest.param(302, "https://0x7f.1/", LOOP, id="to-https-hex-short"),
        pytest.param(302, "http://user@192.168.0.1/", PRIV, id="to-userinfo-private"),
        pytest.param(302, "http://public-then-private.test/", PRIV, id="to-mixed-name"),
    ],
)
def test_redirect_to_an_internal_address_is_refused(net, tmp_path, status, location, reason):
    net.routes[("public.test", "/")] = (status, {"location": location}, b"")
    summary, _ = run(["http://public.test/"], tmp_path, allow_private=False)
    assert_refused(summary, reason)
    assert list(summary["refused"]) == [urlsplit(normalize_url(location, "http://public.test/")).hostname]
    assert summary["status"] == {status: 1}  # the redirect, stored
    assert net.requests == [(PUBLIC, "public.test", "/robots.txt"), (PUBLIC, "public.test", "/")]


def test_a_redirect_chain_is_checked_at_every_hop(net, tmp_path):
    net.routes[("public.test", "/")] = (302, {"location": "http://public2.test/next"}, b"")
    net.routes[("public2.test", "/next")] = (302, {"location": "http://[::ffff:127.0.0.1]/"}, b"")
    summary, _ = run(["http://public.test/"], tmp_path, allow_private=False)
    assert_refused(summary, LOOP)
    assert net.addresses() == {PUBLIC, PUBLIC2}


def test_with_allow_private_the_redirect_is_followed(net, tmp_path):
    """The control: the same redirect reaches 127.0.0.1 when private addresses are allowed."""
    net.routes[("public.test", "/")] = (302, {"location": "http://127.0.0.1/"}, b"")
    summary, _ = run(["http://public.test/"], tmp_path, allow_private=True)
    assert summary["refused"] == {} and net.addresses() == {PUBLIC, "127.0.0.1"}


def test_robots_txt_redirected_inward_is_not_fetched(net, tmp_path):
    net.routes[("public.test", "/robots.txt")] = (301, {"location": "http://169.254.169.254/robots.txt"}, b"")
    summary, lines = run(["http://public.test/"], tmp_path, allow_private=False)
    assert net.requests == [(PUBLIC, "public.test", "/robots.txt")]
    assert summary["skipped"] == {"robots_disallowed": 1}  # treated as unreachable: disallow all
    assert any("robots.txt redirected to a refused address" in line and META in line for line in lines)


def test_links_to_internal_addresses_are_refused(net, tmp_path):
    links = ["http://127.0.0.1/", "http://[::1]/", "http://0xa00000a/", "http://169.254.169.254/", "http://nas.test/"]
    page = "".join(f'<a href="{u}">x</a>' for u in links).encode()
    net.routes[("public.test", "/")] = (200, {}, b"<html><body>" + page + b"</body></html>")
    summary, _ = run(["http://public.test/"], tmp_path, allow_private=False, max_depth=1)
    reasons = sorted(message.split(": ")[1].removesuffix(f" {FLAG}") for message in summary["refused"].values())
    assert reasons == sorted([LOOP, LOOP, PRIV, META, PRIV])
    assert summary["skipped"] == {"unsafe_address": 5}
    assert net.addresses() == {PUBLIC}


def test_a_link_httpx_cannot_parse_is_refused_and_the_crawl_goes_on(net, tmp_path):
    """Any page can link to http://0177.0.0.1/ (127.0.0.1 to getaddrinfo): it must be refused like 127.0.0.1, and
    the page's other links still crawled."""
    page = b'<html><body><a href="http://0177.0.0.1/">x</a><a href="http://public2.test/">y</a></body></html>'
    net.routes[("public.test", "/")] = (200, {}, page)
    summary, _ = run(["http://public.test/"], tmp_path, allow_private=False, max_depth=1)
    assert_refused(summary, LOOP)
    assert net.addresses() == {PUBLIC, PUBLIC2}


# --- other schemes ---------------------------------------------------------------------------------------------------

OTHER_SCHEMES = [
    pytest.param("file:///etc/passwd", id="file"),
    pytest.param("file://localhost/etc/passwd", id="file-localhost"),
    pytest.param("ftp://127.0.0.1/", id="ftp"),
    pytest.param("gopher://127.0.0.1:6379/_INFO", id="gopher"),
    pytest.param("dict://127.0.0.1:11211/stats", id="dict"),
    pytest.param("ldap://127.0.0.1/", id="ldap"),
    pytest.param("ws://127.0.0.1/", id="websocket"),
    pytest.param("jar:http://127.0.0.1/x.jar!/", id="jar"),
    pytest.param("data:text/html,<h1>x</h1>", id="data"),
    pytest.param("javascript:alert(1)", id="javascript"),
    pytest.param("mailto:root@localhost", id="mailto"),
]


@pytest.mark.parametrize("url", [p for p in OTHER_SCHEMES if p.id != "mailto"])
def test_other_schemes_are_refused_as_seeds(net, tmp_path, url):
    summary, lines = run([url], tmp_path, allow_private=True)  # refused even when private addresses are allowed
    assert summary["skipped"] == {"invalid_seed": 1} and summary["fetched"] == 0
    assert any(line.startswith("not an http(s) URL, skipped") for line in lines)
    assert net.requests == [] and net.dns.lookups == []


def test_a_seed_like_mailto_is_read_as_user_info_and_still_checked(net, tmp_path):
    """A seed without "://" gets https:// put in front, so "mailto:root@localhost" is https://localhost with user
    info "mailto:root": not an other-scheme fetch, and still refused as loopback."""
    summary, _ = run(["mailto:root@localhost"], tmp_path, allow_private=False)
    assert summary["refused"] == {"localhost": f"refusing localhost (127.0.0.1): {LOOP} {FLAG}"}
    assert net.requests == []




@pytest.mark.parametrize("url", OTHER_SCHEMES)
def test_other_schemes_are_not_followed_from_redirects(net, tmp_path, url):
    net.routes[("public.test", "/")] = (302, {"location": url}, b"")
    summary, _ = run(["http://public.test/"], tmp_path, allow_private=True)  # the crawl ends normally
    assert summary["refused"] == {}
    assert [path for _, _, path in net.requests] == ["/robots.txt", "/"]
    assert set(net.dns.lookups) == {"public.test"}


@pytest.mark.parametrize("url", OTHER_SCHEMES)
def test_other_schemes_are_not_followed_from_links(net, tmp_path, url):
    net.routes[("public.test", "/")] = (200, {}, f'<html><body><a href="{url}">x</a></body></html>'.encode())
    summary, _ = run(["http://public.test/"], tmp_path, allow_private=True, max_depth=1)
    assert summary["pages"] == 1 and summary["skipped"] == {}
    assert [path for _, _, path in net.requests] == ["/robots.txt", "/"]
    assert set(net.dns.lookups) == {"public.test"}


# --- TLS -------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """A throwaway CA and a certificate it signed for good.test (cryptography, if installed)."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = tmp_path_factory.mktemp("tls")
    now = datetime.now(UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "corpusforge test CA")])
    usage = {
        "content_commitment": False,
        "key_encipherment": False,
        "data_encipherment": False,
        "key_agreement": False,
        "encipher_only": False,
        "decipher_only": False,
    }

    def builder(subject, public_key):
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(ca_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(days=1))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        )

    ca = (
        builder(ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, **usage), True)
        .sign(ca_key, hashes.SHA256())
    )
    leaf = (
        builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "good.test")]), key.public_key())
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("good.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **usage), True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "cert.pem").write_bytes(leaf.public_bytes(pem))
    private = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (folder / "key.pem").write_bytes(private)
    return folder


@pytest.fixture
def tls_server(certificates, monkeypatch):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates / "cert.pem", certificates / "key.pem")
    server = _Server(context)
    monkeypatch.setattr(socket, "getaddrinfo", FakeDNS({"good.test": ["127.0.0.1"], "evil.test": ["127.0.0.1"]}))
    yield server
    server.close()


def _trust_test_ca(monkeypatch, certificates):
    import certifi

    monkeypatch.setattr(certifi, "where", lambda: str(certificates / "ca.pem"))


def test_tls_certificate_of_an_unknown_ca_is_refused(tls_server, tmp_path):
    url = f"https://good.test:{tls_server.port}/"
    fetcher = Fetcher(config(allow_private=True))
    try:
        with pytest.raises(FetchFailed) as err:
            fetcher.fetch(url)
    finally:
        fetcher.close()
    assert err.value.reason == "tls_error" and "CERTIFICATE_VERIFY_FAILED" in err.value.detail
    summary, lines = run([url], tmp_path, allow_private=True)
    assert summary["fetched"] == 0 and tls_server.hits == Counter()
    assert any("robots.txt unreachable" in line and "CERTIFICATE_VERIFY_FAILED" in line for line in lines)


def test_tls_is_verified_against_the_name_while_connecting_to_the_checked_address(
    tls_server, tmp_path, monkeypatch, certificates
):
    """Trusting the test CA: good.test (the certificate's name) is fetched over TLS from 127.0.0.1, the checked
    address; evil.test, resolving to the same server, fails the hostname check."""
    _trust_test_ca(monkeypatch, certificates)
    fetcher = Fetcher(config(allow_private=True))
    try:
        response = fetcher.fetch(f"https://good.test:{tls_server.port}/")
        assert (response.status, response.ip) == (200, "127.0.0.1")
        with pytest.raises(FetchFailed) as err:
            fetcher.fetch(f"https://evil.test:{tls_server.port}/")
    finally:
        fetcher.close()
    assert err.value.reason == "tls_error" and "mismatch" in err.value.detail.lower()
    assert tls_server.hits == Counter({"/": 1}) and tls_server.hosts == {f"good.test:{tls_server.port}"}


def test_the_client_verifies_tls_and_ignores_proxy_settings(monkeypatch):
    """Configuration, checked without a server: certificates and host names verified, no proxy from the
    environment (a proxy would resolve names itself, past the address check), no redirects followed by httpx."""
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    fetcher = Fetcher(config(allow_private=False))
    try:
        client = fetcher._client("example.com")
        assert client.follow_redirects is False and client.trust_env is False
        assert all(mount is None for mount in client._mounts.values())  # no proxy mounted
        context = client._transport._pool._ssl_context
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    finally:
        fetcher.close()
