"""A signal family is one object registered in one place (corpus.families): its signal reaches the `signals` struct,
the annotator computes it, its threshold is a filter key like the others and its rule fires with its reason; leaving
the registration restores all of it. A family in its own file reaches a new process by entry point or environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pyarrow as pa
import pytest
from pydantic import Field, ValidationError

import corpus.config
import corpus.document
import corpus.filters
from corpus import families
from corpus.annotate import Annotator
from corpus.config import AnnotateConfig
from corpus.document import Document, documents_to_table
from corpus.families import SignalFamily
from corpus.families.rules import Rule, above
from flows.config import ConfigError, load_config, to_yaml

# The example family: the fraction of characters that are digits, dropped above a threshold.
DIGITS = SignalFamily(
    name="digits",
    fields=[("digit_frac", pa.float32())],
    compute=lambda s: {"digit_frac": sum(c.isdigit() for c in s.text) / len(s.text) if s.text else None},
    settings={
        "max_digit_frac": (
            float,
            Field(0.3, ge=0, le=1, description="Digits: maximum fraction of characters that are digits."),
        )
    },
    rules=[Rule("too_many_digits", *above("digit_frac", "max_digit_frac"))],
)

TEXT = "Python 3.11 came out in 2022, 3.12 in 2023."  # 14 digits of 43 characters
BUILTIN_OFF = {"gopher_quality": False, "gopher_repetition": False, "c4": False, "fineweb": False}


@pytest.fixture
def digits():
    with families.registered(DIGITS):  # the one registration; restored when the test ends
        yield DIGITS


def annotate(text: str) -> Document:
    return Annotator(AnnotateConfig()).annotate(Document(id="t", source="test", offset=0, text=text))


def test_its_signal_ends_the_signals_struct(digits):
    assert corpus.document.SIGNAL_NAMES[-4:] == ["pii_emails", "pii_ips", "pii_phones", "digit_frac"]
    assert len(corpus.document.SIGNAL_NAMES) == 37
    signals_type = corpus.document.SIGNALS_TYPE
    assert signals_type.field("digit_frac").type == pa.float32() and signals_type.num_fields == 37
    assert corpus.document.DOCUMENT_SCHEMA.field("signals").type == signals_type
    assert corpus.document.REJECTED_SCHEMA.field("signals").type == signals_type


def test_the_annotator_computes_it_and_arrow_stores_it(digits):
    doc = annotate(TEXT)
    assert list(doc.signals) == corpus.document.SIGNAL_NAMES
    assert doc.signals["digit_frac"] == pytest.approx(14 / 43)
    assert doc.signals["n_words"] == 9  # the built-in families are computed as before
    stored = documents_to_table([doc])["signals"][0].as_py()
    assert list(stored)[-1] == "digit_frac" and stored["digit_frac"] == pytest.approx(14 / 43, rel=1e-6)


def test_its_threshold_and_switch_are_filter_keys(digits):
    filter_config = corpus.config.FilterConfig
    fields = list(filter_config.model_fields)
    assert fields[fields.index("fineweb") + 1] == "digits"  # switches after switches, settings last
    assert fields[-1] == "max_digit_frac"
    assert filter_config.model_fields["max_digit_frac"].description == "Digits: maximum fraction of characters that are digits."
    cfg = filter_config()
    assert (cfg.digits, cfg.max_digit_frac, cfg.min_words) == (True, 0.3, 50)
    cfg.max_digit_frac = 0.5
    assert cfg.max_digit_frac == 0.5
    with pytest.raises(ValidationError):
        filter_config(max_digit_frac=1.5)

    run = load_config(preset="tiny", sets=["filter.max_digit_frac=0.1", "filter.digits=false"], environ={})
    assert (run.filter.max_digit_frac, run.filter.digits) == (0.1, False)
    assert "  max_digit_frac: 0.1\n" in to_yaml(run)
    with pytest.raises(ConfigError, match=r"filter.max_digit_frac.*maximum fraction of characters that are digits"):
        load_config(sets=["filter.max_digit_frac=2"], environ={})
    with pytest.raises(ConfigError, match=r"did you mean `filter.max_digit_frac`"):
        load_config(sets=["filter.max_digit_fraction=0.1"], environ={})


def test_its_rule_fires_last_with_its_reason_and_detail(digits):
    assert corpus.filters.RULES[-1].reason == "too_many_digits" and corpus.filters.RULES[-1].family == "digits"
    doc = annotate(TEXT)
    filter_config = corpus.config.FilterConfig
    assert corpus.filters.check(doc, filter_config(**BUILTIN_OFF)) == (
        "too_many_digits",
        "digit_frac=0.3256 > max_digit_frac=0.3",
    )
    assert corpus.filters.check(doc, filter_config(**BUILTIN_OFF, max_digit_frac=0.33)) is None
    assert corpus.filters.check(doc, filter_config(**BUILTIN_OFF, digits=False)) is None
    assert corpus.filters.check(doc, filter_config())[0] == "gopher_min_words"  # built-in rules come first
    stored = Document.from_row(documents_to_table([doc]).to_pylist()[0])  # float32 in Arrow: same verdict
    assert corpus.filters.check(stored, filter_config(**BUILTIN_OFF))[0] == "too_many_digits"


def test_leaving_the_registration_restores_every_table():
    before = (
        list(corpus.document.SIGNAL_NAMES),
        corpus.document.DOCUMENT_SCHEMA,
        corpus.config.FilterConfig,
        list(corpus.filters.REASONS),
    )
    with families.registered(DIGITS):
        assert "digit_frac" in corpus.document.SIGNAL_NAMES
    assert corpus.document.SIGNAL_NAMES == before[0] and "digit_frac" not in corpus.document.SIGNAL_NAMES
    assert corpus.document.DOCUMENT_SCHEMA.equals(before[1])
    assert corpus.config.FilterConfig is before[2]  # the very class, as imported elsewhere
    assert corpus.filters.REASONS == before[3]
    assert "digit_frac" not in annotate(TEXT).signals
    with pytest.raises(ConfigError, match="unknown config key `filter.max_digit_frac`"):
        load_config(sets=["filter.max_digit_frac=0.1"], environ={})


@pytest.mark.parametrize(
    ("family", "message"),
    [
        (SignalFamily("words", [("n_words", pa.int64())], lambda s: {}), "signal n_words already taken"),
        (SignalFamily("c4", [("c4_x", pa.int64())], lambda s: {}), "family name c4 already taken"),
        (
            SignalFamily("x", [("x", pa.int64())], lambda s: {}, {"min_words": (int, Field(1, description="d"))}),
            "filter setting min_words already taken",
        ),
        (
            SignalFamily("x", [("x", pa.int64())], lambda s: {}, {"enabled": (bool, Field(True, description="d"))}),
            "enabled are filter keys already",
        ),
        (
            SignalFamily("x", [("x", pa.int64())], lambda s: {}, rules=[Rule("url_blocklist", *above("x", "x"))]),
            "url_blocklist are taken by the filter's own rules",
        ),
    ],
)
def test_a_family_cannot_take_what_is_taken(family, message):
    names, filter_config = list(corpus.document.SIGNAL_NAMES), corpus.config.FilterConfig
    with pytest.raises(ValueError, match=message):
        families.register(family)
    assert corpus.document.SIGNAL_NAMES == names and corpus.config.FilterConfig is filter_config
    assert [f.name for f in families.families()] == ["gopher_quality", "gopher_repetition", "c4", "fineweb", "pii"]


def test_a_setting_needs_a_description():
    with pytest.raises(ValueError, match="setting 'max_x' needs a description"):
        SignalFamily("x", [("x", pa.float32())], lambda s: {}, {"max_x": (float, Field(0.5))})


FAMILY_FILE = """
import pyarrow as pa
from pydantic import Field

from corpus.families import SignalFamily, register
from corpus.families.rules import Rule, above

{name} = SignalFamily(
    name="{family}",
    fields=[("{signal}", pa.float32())],
    compute=lambda s: {{"{signal}": sum(map({test}, s.text)) / len(s.text) if s.text else None}},
    settings={{"max_{signal}": (float, Field(0.3, ge=0, le=1, description="Maximum {signal}."))}},
    rules=[Rule("too_much_{signal}", *above("{signal}", "max_{signal}"))],
)
{register}
"""

CHILD = """
import json
import corpus.document, corpus.filters
from corpus.config import FilterConfig
print(json.dumps([corpus.document.SIGNAL_NAMES[-3:], list(FilterConfig.model_fields)[-2:], corpus.filters.REASONS[-2:]]))
"""


def test_a_family_file_reaches_a_new_process_by_entry_point_or_environment(tmp_path):
    """What a spawned worker does: import corpus in a fresh interpreter, which registers the installed entry points'
    families and the modules named by CORPUSFORGE_SIGNAL_FAMILIES."""
    (tmp_path / "my_digits.py").write_text(
        FAMILY_FILE.format(name="DIGITS", family="digits", signal="digit_frac", test="str.isdigit", register="")
    )
    (tmp_path / "my_upper.py").write_text(
        FAMILY_FILE.format(name="UPPER", family="upper", signal="upper_frac", test="str.isupper", register="register(UPPER)")
    )
    dist_info = tmp_path / "my_digits-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-digits\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[corpusforge.signal_families]\ndigits = my_digits:DIGITS\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    env[families.ENV_VAR] = "my_upper"
    child = [sys.executable, "-c", textwrap.dedent(CHILD)]
    result = subprocess.run(child, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [
        ["pii_phones", "digit_frac", "upper_frac"],
        ["max_digit_frac", "max_upper_frac"],
        ["too_much_digit_frac", "too_much_upper_frac"],
    ]
