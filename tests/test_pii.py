"""PII replacement: literal positives and tricky negatives, overlaps and placeholders, hostile sizes, real pages."""

from __future__ import annotations

import time

import pytest

from corpus.annotate.pii import PiiMatch, find_pii, redact

POSITIVES = [
    ("Write to john.doe@example.co.uk today.", "Write to <EMAIL> today.", "email"),
    ("mailto:first+tag@mail.example.org", "mailto:<EMAIL>", "email"),
    ("Reply to jane@example.com.", "Reply to <EMAIL>.", "email"),
    ("The host is 192.168.1.20.", "The host is <IP>.", "ip"),
    ("[client 127.0.0.1:54321] denied", "[client <IP>:54321] denied", "ip"),
    ("ping 2001:db8::1 now", "ping <IP> now", "ip"),
    ("link-local fe80::1ff:fe23:4567:890a", "link-local <IP>", "ip"),
    ("full 2001:0db8:85a3:0000:0000:8a2e:0370:7334 form", "full <IP> form", "ip"),
    ("mapped ::ffff:192.0.2.128 form", "mapped <IP> form", "ip"),
    ("Call +1 (555) 123-4567.", "Call <PHONE>.", "phone"),
    ("Berlin office: +49 30 1234567", "Berlin office: <PHONE>", "phone"),
    ("London 020 7946 0958", "London <PHONE>", "phone"),
    ("Tel.: +44 (0)20 7946 0958", "Tel.: <PHONE>", "phone"),
    ("tel:+33 1 23 45 67 89", "tel:<PHONE>", "phone"),
    ("Paris 01 23 45 67 89", "Paris <PHONE>", "phone"),
    ("(030) 1234567 or 089/1234567", "<PHONE> or <PHONE>", "phone"),
    ("(555) 123-4567 and 555.123.4567", "<PHONE> and <PHONE>", "phone"),
    ("toll-free 1-800-555-0199", "toll-free <PHONE>", "phone"),
]

NEGATIVES = [
    "Released on 2024-01-15, see 15.01.2024 and 01.02.2024.",
    "Upgrade to v1.2.3.4, version 1.2.3.4 or release 10.20.30.40.",
    "Section 2.1.1.3 and § 12.1.4.2 apply.",
    "ISBN 978-3-16-148410-0, ISBN 0-306-40615-2, ISSN 0317-8471.",
    "semver 10.0.0 and 1.2.3; python 3.11.4",
    "novas (3.1.1.3) numpy==1.9.2.3 novas-3.1.1.3",
    "4.8.3.1. Positional-or-Keyword Arguments",
    "Population 1234567890, 12 345 678 people, 1,234,567 dollars.",
    "Fibonacci: 8 13 21 34 55 89 144 233 377 610 987 1597",
    "At 12:30:45 on a 16:9 screen; std::vector and a::b paths; scope ::",
    "card 4111 1111 1111 1111, IBAN DE89 3704 0044 0532 0130 00",
    "256.1.1.1 and 192.168.001.020 are not addresses",
    "@handle, user@localhost and username@domain have no top-level domain",
    "Score 0.25 0.50 0.75 and range 1990-2000",
]


@pytest.mark.parametrize(("text", "expected", "kind"), POSITIVES, ids=[p[0] for p in POSITIVES])
def test_personal_data_is_replaced_by_its_placeholder(text, expected, kind):
    redaction = redact(text)
    assert redaction.text == expected
    assert redaction.counts[kind] == expected.count(f"<{kind.upper()}>") and sum(redaction.counts.values()) == (
        redaction.counts[kind]
    )


@pytest.mark.parametrize("text", NEGATIVES)
def test_dates_versions_isbns_and_plain_numbers_are_kept(text):
    assert find_pii(text) == []
    assert redact(text).text == text


def test_matches_come_in_text_order_with_their_kind():
    text = "a@example.com, 10.0.0.1, +49 30 1234567"
    assert find_pii(text) == [PiiMatch(0, 13, "email"), PiiMatch(15, 23, "ip"), PiiMatch(25, 39, "phone")]
    assert find_pii(text, kinds=("ip",)) == [PiiMatch(15, 23, "ip")]


def test_an_earlier_kind_wins_an_overlap():
    # the digits of the local part never become a phone number of their own
    assert redact("call 0201234567.89@example.com").text == "call <EMAIL>"


def test_spans_point_at_the_placeholders_in_the_new_text():
    redaction = redact("Mail jane@example.com or +1 (555) 123-4567!", {"email": "[e]", "ip": "[i]", "phone": "[tel]"})
    assert redaction.text == "Mail [e] or [tel]!"
    assert [redaction.text[start:end] for start, end in redaction.spans] == ["[e]", "[tel]"]
    assert redaction.counts == {"email": 1, "ip": 0, "phone": 1}


def test_text_without_digits_or_at_signs_is_returned_as_is():
    text = "Nothing personal here: only words, colons: and dots."
    redaction = redact(text)
    assert redaction.text is text and redaction.spans == []


HOSTILE = {
    "500,000 at signs": "a@" * 500_000,
    "a 1 MB domain": "a@" + "b." * 500_000,
    "1 MB of colons and digits": "1::" * 330_000,
    "1 MB of dotted digits": "1." * 500_000,
    "100,000 addresses": "10.0.0.1 " * 100_000,
    "100,000 heading numbers": "10.1.2.3. x " * 80_000,
    "1 MB of digit groups": "0 1 " * 250_000,
    "1,000 long international numbers": ("+1" + "2" * 60 + " ") * 1_000,  # backtracked 44 ms each before
}


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_texts_take_linear_time(name):
    start = time.perf_counter()
    find_pii(HOSTILE[name])
    assert time.perf_counter() - start < 3.0


# --- real pages from the bundled sample --------------------------------------------------------------------------

REAL_PAGES = {  # record id -> (page, expected counts)
    "<urn:uuid:f50f5adb-7683-501b-9c23-b1ed338b9d8b>": ("docs.python.org tutorial/stdlib (smtplib example)", (4, 0, 0)),
    "<urn:uuid:24bfeeeb-248b-5bd6-88a4-bbd28f2602ca>": ("Debian handbook, NFS server (address ranges)", (0, 3, 0)),
    "<urn:uuid:767d0957-93cf-59ab-a18b-8da4a284b94f>": ("docs.python.org tutorial/controlflow (4.8.3.1.)", (0, 0, 0)),
    "<urn:uuid:306c6c3e-8656-5206-bc2a-1aca13bb5a30>": ("Debian handbook, becoming a maintainer (15.4.2.3.)", (0, 0, 0)),
}


@pytest.fixture(scope="module")
def real_texts(sample_record_texts) -> dict[str, str]:
    return sample_record_texts(REAL_PAGES)


@pytest.mark.parametrize("record_id", REAL_PAGES, ids=[page for page, _ in REAL_PAGES.values()])
def test_real_pages_have_their_personal_data_replaced_and_nothing_else(real_texts, record_id):
    _, (emails, ips, phones) = REAL_PAGES[record_id]
    text = real_texts[record_id]
    redaction = redact(text)
    assert (redaction.counts["email"], redaction.counts["ip"], redaction.counts["phone"]) == (emails, ips, phones)
    assert ("@example.org" in redaction.text, "192.168.0.0" in redaction.text) == (False, False)
    # everything around the placeholders is the page as extracted
    assert len(redaction.text) - sum(e - s for s, e in redaction.spans) == len(text) - sum(
        m.end - m.start for m in find_pii(text)
    )
