"""C4's rules (Raffel et al. 2020, as tensorflow_datasets' c4_utils and datatrove's C4QualityFilter implement them).

C4 removes lines; we keep the text as extracted, so its line rules become per-document fractions (`c4_*_line_frac`)
and its two page rules flags; corpus/annotate/signals.py (`c4_signals`) explains exactly where they count.
"""

from __future__ import annotations

import pyarrow as pa
from pydantic import Field

from corpus.annotate.signals import SignalInput, c4_signals
from corpus.families import SignalFamily
from corpus.families.rules import Rule, above, flag


def compute(s: SignalInput) -> dict:
    return c4_signals(s.text, s.lines, s.line_words)


C4 = SignalFamily(
    name="c4",
    fields=[
        ("c4_terminal_punct_line_frac", pa.float32()),
        ("c4_few_words_line_frac", pa.float32()),
        ("c4_javascript_line_frac", pa.float32()),
        ("c4_policy_line_frac", pa.float32()),
        ("c4_lorem_ipsum", pa.bool_()),
        ("c4_curly_brace", pa.bool_()),
    ],
    compute=compute,
    settings={
        "c4_drop_lorem_ipsum": (
            bool,
            Field(
                True,
                description="C4: drop a page with 'lorem ipsum' in a line C4 keeps (ends in a sentence mark, 3+ words).",
            ),
        ),
        "c4_drop_curly_brace": (
            bool,
            Field(
                False,
                description="C4: drop a page with '{' in a line C4 keeps (ends in a sentence mark, 3+ words, no "
                "'javascript'), as C4's code applies its curly-bracket rule (the paper says 'any page'). Off by default: "
                "it targets script code left in page text, which trafilatura already drops with <script>; on the "
                "bundled sample it flags 22 of 509 pages, 17 of them Python, Rust and Apache documentation that writes "
                "'{}' in a sentence and 5 Wikipedia pages with template remnants ('{{citation needed}}'). true gives "
                "C4's behaviour.",
            ),
        ),
        "max_c4_javascript_line_frac": (
            float,
            Field(
                0.3,
                ge=0,
                le=1,
                description="C4: maximum fraction of lines mentioning 'javascript'. C4 deletes such lines; as we keep "
                "text whole, a page is dropped when they exceed this share (not published: the 0.3 of Gopher's line "
                "rules).",
            ),
        ),
        "max_c4_policy_line_frac": (
            float,
            Field(
                0.3,
                ge=0,
                le=1,
                description="C4: maximum fraction of lines with 'terms of use', 'privacy policy', 'cookie policy', "
                "'uses cookies', 'use of cookies' or 'use cookies' (line removals in C4; threshold not published, as "
                "above).",
            ),
        ),
    },
    rules=[
        Rule("c4_lorem_ipsum", *flag("c4_lorem_ipsum", "c4_drop_lorem_ipsum")),
        Rule("c4_curly_brace", *flag("c4_curly_brace", "c4_drop_curly_brace")),
        Rule("c4_javascript_lines", *above("c4_javascript_line_frac", "max_c4_javascript_line_frac")),
        Rule("c4_policy_lines", *above("c4_policy_line_frac", "max_c4_policy_line_frac")),
    ],
    switch="Apply the C4 rules (c4_*).",
)
