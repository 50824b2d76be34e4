"""The crawler against a local HTTP server serving real pages (robots.txt, redirects, a slow page, a decompression
bomb, 503s), its WARC output read back by the sources reader, resume, and the safety and parsing helpers."""

import gzip
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastwarc.warc import ArchiveIterator

import corpus.sources.crawl as crawler
from corpus.config import CrawlConfig, IngestConfig
from corpus.document import Document
from corpus.sources import Rejection, plan_units, read_unit, url_list_inputs
from corpus.sources.crawl import (
    Entry,
    Frontier,
    Refused,
    RobotsRules,
    _retry_after,
    address_problem,
    checked_addresses,
    crawl,
    crawl_url_lists,
    extract_links,
)
from corpus.urls import normalize_url

ROBOTS = b"User-agent: *\nDisallow: /private/\nCrawl-delay: 0.05\n\nUser-agent: otherbot\nDisallow: /\n"
N_PAGES = 5


class Site:
    """What the test server serves and what it was asked for."""

    def __init__(self, pages: list[bytes]):
        self.pages = pages  # gzip-compressed real pages
        self.hits: Counter = Counter()
        self.times: list[float] = []
        self.lock = threading.Lock()
        self.flaky_calls = 0
        self.host_headers: set[str] = set()

    def index(self) -> bytes:
        links = [f'<a href="/pages/{i}.html">page {i}</a>' for i in range(N_PAGES)]
        links += [
            '<a href="/private/secret.html">secret</a>',  # robots.txt disallows it
            '<a href="/loop/a">loop</a>',
            '<a href="/hop/1">a long redirect chain</a>',
            '<a href="/slow.html">slow</a>',
            '<a href="/big.html">big</a>',
            '<a href="/flaky.html">flaky</a>',
            '<a href="/down.html">down</a>',
            '<a href="/logo.png">logo</a>',  # not a page: never requested
            '<a href="http://example.org/elsewhere">elsewhere</a>',  # another site
            '<a href="/pages/0.html#top">page 0 again</a>',  # the same URL once normalized
            '<a href="mailto:someone@example.org">mail</a>',
        ]
        return f"<!DOCTYPE html><html><head><title>Index</title></head><body>{''.join(links)}</body></html>".encode()


def make_handler(site: Site):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # keep pytest output clean
            pass

        def send(self, status: int, body: bytes = b"", content_type: str = "text/html; charset=utf-8", **headers):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name.replace("_", "-"), value)
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def do_GET(self):  # noqa: N802 - the http.server API
            with site.lock:
                site.hits[self.path] += 1
                site.times.append(time.monotonic())
                site.host_headers.add(self.headers["Host"])
            path = self.path
            if path == "/robots.txt":
                self.send(200, ROBOTS, "text/plain")
            elif path == "/":
                self.send(200, site.index())
            elif path.startswith("/pages/"):
                i = int(path.split("/")[-1].split(".")[0])
                if i % 2:  # odd pages go out gzip-encoded, as most servers send them
                    self.send(200, site.pages[i], Content_Encoding="gzip")
                else:
                    self.send(200, gzip.decompress(site.pages[i]))
            elif path == "/private/secret.html":
                self.send(200, b"<html><body>secret</body></html>")
            elif path == "/loop/a":
                self.send(302, b"", Location="/loop/b")
            elif path == "/loop/b":
                self.send(302, b"", Location="http://" + self.headers["Host"] + "/loop/a")
            elif path.startswith("/hop/"):
                self.send(302, b"", Location=f"/hop/{int(path.split('/')[-1]) + 1}")
            elif path == "/slow.html":
                time.sleep(2.5)
                self.send(200, b"<html><body>too late</body></html>")
            elif path == "/big.html":  # 2 KB on the wire, 3 MB once decompressed
                self.send(200, gzip.compress(b"<p>" + b"a" * (3 << 20)), Content_Encoding="gzip")
            elif path == "/flaky.html":
                site.flaky_calls += 1
                if site.flaky_calls == 1:
                    self.send(503, b"busy", Retry_After="0")
                else:
                    self.send(200, b"<html><body><p>Back again.</p></body></html>")
            elif path == "/to-metadata":
                self.send(302, b"", Location=f"http://evil.test:{self.server.server_address[1]}/x")
            elif path == "/down.html":
                self.send(503, b"down for maintenance")
            else:
                self.send(404, b"not found")

    return Handler


@pytest.fixture(scope="module")
def real_pages(shared_data) -> list[bytes]:
    folder = shared_data / "extraction" / "cleanportaleval" / "input"
    return [p.read_bytes() for p in sorted(folder.glob("*.html.gz"))[:N_PAGES]]


@pytest.fixture
def server(real_pages):
    site = Site(real_pages)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(site))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    site.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield site
    httpd.shutdown()
    httpd.server_close()


def fast_config(**overrides) -> CrawlConfig:
    settings = dict(
        allow_private=True, rate=50, timeout_s=1.0, max_bytes=1 << 20, backoff_s=0.01, retries=2, max_pages=0
    )
    settings.update(overrides)
    return CrawlConfig(**settings)


def read_back(warc_path: str) -> list:
    cfg = IngestConfig()
    return [item for unit in plan_units([warc_path], cfg) for item in read_unit(unit, cfg, [])]


# --- against the local server ----------------------------------------------------------------------------------------


def test_crawl_fetches_exactly_the_allowed_pages_and_writes_them_to_warc(server, tmp_path):
    lines = []
    summary = crawl([server.base + "/"], tmp_path, fast_config(), log=lines.append)
    base = server.base
    pages = {f"/pages/{i}.html" for i in range(N_PAGES)}
    # robots.txt once; each allowed page once; the 503 page tried 1 + 2 retries; the flaky one until it answered;
    # the redirect chain's first URL and its 5 redirects
    hops = {f"/hop/{i}" for i in range(1, 7)}
    assert server.hits == Counter(
        {
            "/robots.txt": 1,
            "/": 1,
            **dict.fromkeys(pages, 1),
            "/loop/a": 1,
            "/loop/b": 1,
            **dict.fromkeys(hops, 1),
            "/slow.html": 1,
            "/big.html": 1,
            "/flaky.html": 2,
            "/down.html": 3,
        }
    )
    assert summary["status"] == {200: 1 + N_PAGES + 1, 302: 2 + 6, 503: 1}
    assert summary["pages"] == 7 and summary["fetched"] == 16 and summary["from_archive"] == 0
    assert summary["skipped"] == {
        "robots_disallowed": 1,
        "redirect_loop": 1,
        "too_many_redirects": 1,
        "timeout": 1,
        "too_large": 1,
        "not_a_page": 1,
        "off_domain": 1,
        "max_depth": summary["skipped"]["max_depth"],
    }
    assert summary["skipped"]["max_depth"] > 0  # the real pages' own links, one level too deep
    assert summary["refused"] == {} and summary["errors"] == []
    assert any(line.startswith("redirect loop: ") for line in lines)

    # The WARC holds a request and a response per fetch, with digests that verify.
    def records(check: str) -> list[tuple[str, bool]]:  # fastwarc verifies one digest per pass
        with open(summary["warc"], "rb") as f:
            return [
                (r.headers["WARC-Type"], getattr(r, check)())
                for r in ArchiveIterator(f, parse_http=check == "verify_payload_digest")
            ]

    blocks, payloads = records("verify_block_digest"), records("verify_payload_digest")
    assert Counter(kind for kind, _ in blocks) == {"warcinfo": 1, "request": 16, "response": 16}
    assert all(ok for kind, ok in blocks + payloads if kind == "response")

    # Read back by the sources reader: the 2xx pages as documents (gzip-encoded ones decoded), the rest rejected.
    items = read_back(summary["warc"])
    docs = [i for i in items if isinstance(i, Document)]
    assert {d.url for d in docs} == {base + "/", base + "/flaky.html", *(base + p for p in pages)}
    by_url = {d.url: d.raw for d in docs}
    assert all(by_url[f"{base}/pages/{i}.html"] == gzip.decompress(server.pages[i]) for i in range(N_PAGES))
    rejected = sorted((i.doc.url.removeprefix(base), i.reason, i.detail) for i in items if isinstance(i, Rejection))
    assert rejected == [
        ("/down.html", "http_status", "status=503"),
        *[(hop, "http_status", "status=302") for hop in sorted(hops)],
        ("/loop/a", "http_status", "status=302"),
        ("/loop/b", "http_status", "status=302"),
    ]


def test_crawl_delay_from_robots_spaces_the_requests(server, tmp_path):
    crawl([server.base + "/"], tmp_path, fast_config(max_depth=0), log=lambda _: None)
    assert server.hits == Counter({"/robots.txt": 1, "/": 1})
    gap = server.times[1] - server.times[0]
    assert gap >= 0.045  # Crawl-delay 0.05 s wins over rate 50/s (0.02 s)


def test_without_allow_private_the_loopback_server_is_refused_with_a_clear_message(server, tmp_path):
    lines = []
    summary = crawl([server.base + "/"], tmp_path, fast_config(allow_private=False), log=lines.append)
    message = "refusing 127.0.0.1: loopback address (use --allow-private to crawl private networks)"
    assert summary["refused"] == {"127.0.0.1": message}
    assert message in lines
    assert summary["fetched"] == 0 and summary["warc"] is None
    assert summary["skipped"] == {"unsafe_address": 1}
    assert server.hits == Counter()  # not even robots.txt
    assert list(tmp_path.iterdir()) == []


def test_every_hop_is_checked_and_the_connection_goes_to_the_checked_address(server, tmp_path, monkeypatch):
    """good.test resolves to the server (counted as public here); it redirects to evil.test, which resolves to the
    cloud metadata address: refused before any connection. The request to good.test went to the address that was
    checked, with the name in the Host header."""
    port = int(server.base.rsplit(":", 1)[1])
    real_getaddrinfo = socket.getaddrinfo
    answers = {"good.test": "127.0.0.1", "evil.test": "169.254.169.254"}

    def fake_getaddrinfo(host, *args, **kwargs):
        if host in answers:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    monkeypatch.setattr(crawler, "address_problem", lambda ip: "" if ip == "127.0.0.1" else address_problem(ip))
    lines = []
    cfg = fast_config(allow_private=False, same_domain=False)
    summary = crawl([f"http://good.test:{port}/to-metadata"], tmp_path, cfg, log=lines.append)
    message = (
        "refusing evil.test (169.254.169.254): cloud metadata address (use --allow-private to crawl private networks)"
    )
    assert summary["refused"] == {"evil.test": message} and message in lines
    assert summary["status"] == {302: 1}
    assert server.hits == Counter({"/robots.txt": 1, "/to-metadata": 1})
    assert server.host_headers == {f"good.test:{port}"}


def test_a_stopped_crawl_resumes_without_refetching(server, tmp_path):
    first = crawl([server.base + "/"], tmp_path, fast_config(max_pages=2), log=lambda _: None)
    assert first["pages"] == 2
    assert first["skipped"]["max_pages"] > 0
    hits_before = Counter(server.hits)
    second = crawl([server.base + "/"], tmp_path, fast_config(), log=lambda _: None)
    assert second["from_archive"] == first["fetched"] == 2
    assert second["pages"] == 7  # the two stored pages count again, five more fetched
    repeated = {path for path in hits_before if path != "/robots.txt" and server.hits[path] > hits_before[path]}
    assert repeated == set()
    assert first["warc"] != second["warc"]
    # both files together hold each page once
    urls = [d.url for w in (first["warc"], second["warc"]) for d in read_back(w) if isinstance(d, Document)]
    assert len(urls) == len(set(urls)) == 7


def test_a_warc_cut_by_a_kill_is_resumed_from_its_last_whole_record(server, tmp_path):
    first = crawl([server.base + "/"], tmp_path, fast_config(max_depth=0), log=lambda _: None)
    data = Path(first["warc"]).read_bytes()
    Path(first["warc"]).write_bytes(data[: len(data) - 200])  # the response record of "/" is cut
    lines = []
    second = crawl([server.base + "/"], tmp_path, fast_config(max_depth=0), log=lines.append)
    assert second["from_archive"] == 0 and second["fetched"] == 1  # fetched again, into a new file
    assert len(second["errors"]) == 1 and any(line.startswith("damaged WARC") for line in lines)


def test_url_lists_are_crawled_into_warc_for_the_pipeline(server, tmp_path):
    urls = tmp_path / "urls.txt"
    urls.write_text(f"# two pages\n{server.base}/pages/0.html\n\n{server.base}/pages/1.html\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("Just some text, not URLs.\n")
    assert url_list_inputs([str(urls), str(notes)]) == [str(urls)]
    with pytest.raises(ValueError, match="list of URLs"):
        plan_units([str(urls)], IngestConfig())
    out = tmp_path / "crawl"
    inputs = crawl_url_lists([str(urls), str(notes)], out, fast_config(max_depth=3, max_pages=1), log=lambda _: None)
    assert inputs == [str(notes), str(out)]
    assert server.hits == Counter({"/robots.txt": 1, "/pages/0.html": 1, "/pages/1.html": 1})  # no links followed
    units = plan_units(inputs, IngestConfig())
    assert sorted(u.format for u in units) == ["text", "warc"]


# --- helpers on literals ---------------------------------------------------------------------------------------------
# normalize_url (corpus/urls.py, shared with dedup) has its table in test_urls.py.


@pytest.mark.parametrize(
    "ip, problem",
    [
        ("127.0.0.1", "loopback address"),
        ("::1", "loopback address"),
        ("::ffff:127.0.0.1", "loopback address"),  # IPv4-mapped
        ("10.1.2.3", "private address"),
        ("172.16.0.1", "private address"),
        ("192.168.1.1", "private address"),
        ("100.64.0.1", "carrier-grade NAT (100.64.0.0/10) address"),
        ("169.254.169.254", "cloud metadata address"),
        ("fd00:ec2::254", "cloud metadata address"),
        ("169.254.1.1", "link-local address"),
        ("fe80::1", "link-local address"),
        ("224.0.0.1", "multicast address"),
        ("0.0.0.0", "unspecified address"),
        ("64:ff9b::a00:1", "private address"),  # NAT64 of 10.0.0.1
        ("2002:7f00:1::", "loopback address"),  # 6to4 of 127.0.0.1
        ("8.8.8.8", ""),
        ("2606:4700::1111", ""),
    ],
)
def test_address_rules(ip, problem):
    assert address_problem(ip) == problem


def test_refusal_names_the_address_the_rule_and_the_flag():
    with pytest.raises(Refused) as err:
        checked_addresses("127.0.0.1", 80, allow_private=False)
    assert str(err.value) == "refusing 127.0.0.1: loopback address (use --allow-private to crawl private networks)"
    assert checked_addresses("127.0.0.1", 80, allow_private=True) == ["127.0.0.1"]


ROBOTS_EXAMPLE = """\ufeff# comments and odd spacing are fine
User-Agent: *
Disallow: /private/
Allow: /private/public*
Disallow: /*.pdf$
Crawl-delay: 2

user-agent: CorpusForge/1.0
user-agent: somebot
disallow: /
allow: /$
allow: /open/
crawl-delay: 5

User-agent: *
Disallow: /also-for-all
"""


def test_robots_rules_longest_match_wildcards_and_groups():
    everyone = RobotsRules.parse(ROBOTS_EXAMPLE, agent="otherbot")  # both * groups, merged
    assert everyone.crawl_delay == 2
    verdicts = {
        p: everyone.allowed("http://a.org" + p)
        for p in ["/", "/private/x", "/private/public/x", "/a.pdf", "/a.pdf?x", "/also-for-all/y", "/robots.txt"]
    }
    assert verdicts == {
        "/": True,
        "/private/x": False,
        "/private/public/x": True,
        "/a.pdf": False,
        "/a.pdf?x": True,
        "/also-for-all/y": False,
        "/robots.txt": True,
    }
    ours = RobotsRules.parse(ROBOTS_EXAMPLE)  # our product token, matched case-insensitively, version ignored
    assert ours.crawl_delay == 5
    assert [ours.allowed("http://a.org" + p) for p in ["/", "/x", "/open/x", "/private/public/x"]] == [
        True,
        False,
        True,
        False,
    ]


def test_robots_edge_cases():
    assert RobotsRules.parse("").allowed("http://a.org/x")
    assert RobotsRules.parse("Disallow: /\n").allowed("http://a.org/x")  # rules before any user-agent are ignored
    assert RobotsRules.parse("User-agent: *\nDisallow:\n").allowed("http://a.org/x")  # empty disallow allows
    tie = RobotsRules.parse("User-agent: *\nDisallow: /page\nAllow: /page\n")
    assert tie.allowed("http://a.org/page")  # equal length: allow wins
    escaped = RobotsRules.parse("User-agent: *\nDisallow: /%7ejoe/\nDisallow: /caf%c3%a9\n")
    assert not escaped.allowed(normalize_url("http://a.org/~joe/x"))
    assert not escaped.allowed(normalize_url("http://a.org/café"))


def test_links_follow_base_and_skip_nofollow():
    html = b"""<html><head><base href="https://a.org/docs/"></head><body>
    <a href="intro.html">1</a><a href="../about#team">2</a><a href="intro.html">dup</a>
    <a rel="nofollow sponsored" href="ad.html">ad</a><a href="mailto:x@a.org">m</a><area href="/map"></body></html>"""
    assert extract_links(html, "https://a.org/index.html") == [
        "https://a.org/docs/intro.html",
        "https://a.org/about",
        "https://a.org/map",
    ]
    blocked = (
        b'<html><head><meta name="robots" content="noindex, nofollow"></head><body><a href="/x">x</a></body></html>'
    )
    assert extract_links(blocked, "https://a.org/") == []


def test_retry_after_and_frontier_politeness():
    assert _retry_after("120") == 120
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # in the past
    assert _retry_after("soon") is None
    frontier = Frontier()
    for url in ["https://a.org/1", "https://a.org/2", "https://b.org/1"]:
        frontier.push(Entry(url, 0))
    first, _ = frontier.pop(now=100.0)
    frontier.hold("a.org", 101.0)  # a.org just answered: its next URL waits a second
    second, _ = frontier.pop(now=100.0)
    waiting, wait = frontier.pop(now=100.5)
    assert (first.url, second.url, waiting, wait) == ("https://a.org/1", "https://b.org/1", None, 0.5)
    third, _ = frontier.pop(now=101.0)
    assert third.url == "https://a.org/2" and len(frontier) == 0
