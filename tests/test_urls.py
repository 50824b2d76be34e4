"""The one URL normaliser (corpus/urls.py) that the crawler's frontier and dedup's URL key share: exact outputs."""

import pytest

from corpus.dedup.exact import url_key
from corpus.urls import dedup_url, normalize_escapes, normalize_url, remove_dot_segments


@pytest.mark.parametrize(
    "url, expected",
    [
        # IDNA: non-ASCII hosts in punycode, whatever their case; an ASCII punycode host is left alone
        ("https://Bücher.de/ä", "https://xn--bcher-kva.de/%C3%A4"),
        ("http://BÜCHER.de/", "http://xn--bcher-kva.de/"),
        ("http://xn--bcher-kva.de/", "http://xn--bcher-kva.de/"),
        ("https://例え.テスト/", "https://xn--r8jz45g.xn--zckzah/"),
        ("http://%D9%85%D8%A7%D8%AA%D9%84%D8%A7%D8%A8", "http://xn--mgbadg4kd/"),  # escaped host: decoded first
        # default ports go, other ports stay; each scheme has its own default
        ("https://example.com:443/a", "https://example.com/a"),
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:80/a", "https://example.com:80/a"),
        ("http://example.com:443/a", "http://example.com:443/a"),
        ("http://example.com:8080/a", "http://example.com:8080/a"),
        ("http://example.com:/a", "http://example.com/a"),  # an empty port is the default
        # scheme and host in lower case; path and query keep their case
        ("HTTP://Example.COM/Path?Q=A", "http://example.com/Path?Q=A"),
        ("http://example.com./", "http://example.com/"),  # the root's trailing dot
        # fragment dropped, query kept in its order
        ("http://example.com/a?b=2&a=1#frag", "http://example.com/a?b=2&a=1"),
        ("http://example.com/#", "http://example.com/"),
        # empty path made "/", also before a query
        ("https://example.com", "https://example.com/"),
        ("https://example.com?x=1", "https://example.com/?x=1"),
        # IPv6 hosts: brackets kept, compressed, lower case, default port dropped, other ports kept, zone id dropped
        ("http://[2001:DB8:0:0::1]:8080/x", "http://[2001:db8::1]:8080/x"),
        ("http://[::1]:80/x", "http://[::1]/x"),
        ("https://[fe80::1%25eth0]/", "https://[fe80::1]/"),
        # percent-escapes in one spelling: upper case, unreserved unescaped, non-ASCII and spaces escaped
        ("https://example.com:8443/%7euser/%e2%82%ac x", "https://example.com:8443/~user/%E2%82%AC%20x"),
        ("http://a.com/%41%2f%2F?q=%3d%3D", "http://a.com/A%2F%2F?q=%3D%3D"),
        ("http://a.com/100%", "http://a.com/100%25"),
        # dot segments resolved, user info dropped, tabs and line breaks removed
        ("HTTP://Example.COM:80/a/./b/../c?q=1&a=2#frag", "http://example.com/a/c?q=1&a=2"),
        ("https://user:pw@a.com/../../x", "https://a.com/x"),
        ("http://a.com/a\n/b\t", "http://a.com/a/b"),
        # "www." stays: it can be another site
        ("http://www.Example.com/", "http://www.example.com/"),
        # not http(s), or not a URL
        ("mailto:a@b.org", None),
        ("javascript:alert(1)", None),
        ("file:///etc/passwd", None),
        ("ftp://example.com/", None),
        ("http://", None),
        ("http://example.com:99999/", None),  # port out of range
        ("http://example.com:abc/", None),
        ("http://[::1/", None),  # unclosed bracket
        ("http://ä..de/", None),  # an empty IDNA label
        ("http://%5Bhttps://www.youtube.com/watch?v=x%5D", None),  # a link in the sample: "[" in a host
        ("http://a b.com/", None),
        ("http://a.com\\b/", None),
        ("example.com/page", None),  # no scheme
    ],
)
def test_normalize_url(url, expected):
    assert normalize_url(url) == expected


def test_normalize_url_is_idempotent_on_its_own_output():
    for url in ["https://Bücher.de:443/ä/./b?x=%7e#f", "http://[2001:DB8::1]:8080", "http://a.com/100%"]:
        once = normalize_url(url)
        assert normalize_url(once) == once


def test_normalize_url_resolves_relative_links():
    assert normalize_url("../d?x#y", "https://a.com/b/c/e.html") == "https://a.com/b/d?x"
    assert normalize_url("//cdn.a.com/x", "https://a.com/") == "https://cdn.a.com/x"
    assert normalize_url("/x", "https://Bücher.de:443/a") == "https://xn--bcher-kva.de/x"


def test_escape_and_dot_segment_helpers():
    assert normalize_escapes("%7euser/%e2%82%ac x") == "~user/%E2%82%AC%20x"
    assert normalize_escapes("a?b", "/") == "a%3Fb"  # "?" is only safe where the caller says so
    assert remove_dot_segments("/a/b/../c/./d") == "/a/c/d"
    assert remove_dot_segments("/a/..") == "/"
    assert remove_dot_segments("/../../x") == "/x"


@pytest.mark.parametrize(
    "url, expected",
    [
        ("HTTPS://Example.COM:443/a?b=1#frag", "https://example.com/a?b=1"),  # web URLs: normalize_url
        ("  http://example.com ", "http://example.com/"),
        ("s3://Bucket/Key", "s3://Bucket/Key"),  # not http(s): as written (the crawler refuses these)
        ("doc-17", "doc-17"),
        ("http://example.com:abc/", "http://example.com:abc/"),  # invalid web URL: as written
        ("", ""),  # no URL
        ("   ", ""),
    ],
)
def test_dedup_url(url, expected):
    assert dedup_url(url) == expected


def test_url_key_is_one_key_per_page_and_zero_for_no_url():
    same = ["https://Bücher.de:443/%7ea#x", "https://xn--bcher-kva.de/~a", "HTTPS://BÜCHER.de/./~a"]
    assert len({url_key(u) for u in same}) == 1
    assert url_key("http://xn--bcher-kva.de/~a") != url_key(same[0])  # another scheme is another URL
    assert url_key("https://xn--bcher-kva.de:80/~a") != url_key(same[0])  # :80 is not https's default
    assert url_key("") == url_key("  ") == 0
    assert url_key("doc-17") == url_key(" doc-17 ") != 0
