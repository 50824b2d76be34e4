"""Input-derived text made safe to echo in a log line or a terminal.

File names, URLs, header values, JSON keys and column names come from the input, and so may carry ANSI escape
sequences (which recolour, move the cursor or retitle a terminal), other control characters (a carriage return
that overwrites the line before it, a newline that forges a log line) and bidirectional overrides (which make
"evil\u202egnp.exe" print as "evilexe.png"). `safe_text` escapes them so the reader sees what is there.
"""

from __future__ import annotations

import re

# C0 controls (ESC among them; tab, newline and CR too: one log line stays one line), DEL, C1 controls; the Unicode
# bidirectional controls (embeddings, overrides, isolates, marks) and the line and paragraph separators; lone
# surrogates.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe_text(value: object, limit: int = 500) -> str:
    """`str(value)` with control, ANSI-escape and bidi characters written as \\xNN / \\uNNNN escapes, and cut to
    about `limit` characters ("…" marks a cut). Text without such characters is returned as it is."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(_escape, text)
