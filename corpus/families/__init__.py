"""Signal families: each quality-signal family is one object in one file, registered once.

A `SignalFamily` holds everything about one family of quality signals:

- `fields`: its signals, `(name, Arrow type)` in order; they become fields of the `signals` struct of `extracted/`
  (corpus.document.SIGNAL_FIELDS is every family's fields, in registration order);
- `compute`: a function of a `corpus.annotate.signals.SignalInput` (the document's text, its words from the
  annotator's one tokenization, its cleaned lines and paragraphs, the PII counts) returning those signals, called
  by the annotator for every document;
- `settings`: its `FilterConfig` fields, `name: (type, pydantic.Field(default, ..., description=...))`, set like any
  other filter key (YAML `filter:` section, `--set filter.name=value`);
- `rules`: its keep/drop rules (`corpus.families.rules`), checked in order after the rules of the families before it;
  a family with rules also gets an on/off switch in `FilterConfig` named after the family (`switch` describes it).

`corpus.document` (signal fields, schemas), `corpus.annotate` (computation), `corpus.filters` (the rule table) and
`corpus.config` (`FilterConfig`) derive theirs from this registry, and nothing else needs changing to add a family.

The built-in families are registered when this registry is first read, which every process that imports corpus does
(`corpus.document` builds its schemas from it at import, so spawned and Ray workers see the same families):
`gopher_quality` and `gopher_repetition` (corpus/families/gopher.py), `c4` (c4.py), `fineweb` (fineweb.py) and
`pii` (pii.py), in that order (`BUILTIN_FAMILIES`). Your own family is one file, for example `my_signals.py`::

    import pyarrow as pa
    from pydantic import Field

    from corpus.families import SignalFamily, register
    from corpus.families.rules import Rule, above

    DIGITS = SignalFamily(
        name="digits",
        fields=[("digit_frac", pa.float32())],
        compute=lambda s: {"digit_frac": sum(c.isdigit() for c in s.text) / len(s.text) if s.text else None},
        settings={"max_digit_frac": (float, Field(0.3, ge=0, le=1, description="Maximum fraction of digits."))},
        rules=[Rule("too_many_digits", *above("digit_frac", "max_digit_frac"))],
    )
    register(DIGITS)

and it must be imported in every process before corpus builds its schemas, in one of two ways:

- an entry point of your installed package (works wherever the package is installed, Ray workers included)::

      [project.entry-points."corpusforge.signal_families"]
      digits = "my_signals:DIGITS"

- or the environment variable `CORPUSFORGE_SIGNAL_FAMILIES=my_signals` (comma-separated modules, or
  `module:ATTRIBUTE` naming a family), with `my_signals.py` on `PYTHONPATH`; spawned local workers inherit it.

An entry or variable may name a module (whose import calls `register`) or a `SignalFamily` (registered for you).
Registering is idempotent for the same object; a second family with a taken name, signal, setting or reason is
refused. Families registered later in a running process (tests: `with registered(FAMILY): ...`) update the derived
tables in place, but modules that copied a schema at import keep the old one: register before running stages.
Adding a family changes the `signals` struct, so stage fingerprints that include the output schema see it.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pydantic.fields import FieldInfo

from corpus.families.rules import Rule

if TYPE_CHECKING:
    from corpus.annotate.signals import SignalInput

ENTRY_POINT_GROUP = "corpusforge.signal_families"
ENV_VAR = "CORPUSFORGE_SIGNAL_FAMILIES"
# In this order; registered by `_load`, not by their modules, so that importing one of them first changes nothing.
BUILTIN_FAMILIES = (
    "corpus.families.gopher:GOPHER_QUALITY",
    "corpus.families.gopher:GOPHER_REPETITION",
    "corpus.families.c4:C4",
    "corpus.families.fineweb:FINEWEB",
    "corpus.families.pii:PII",
)


@dataclass(frozen=True, eq=False)
class SignalFamily:
    """One family of quality signals: its signals, how to compute them, its filter settings and rules.

    name: identifier of the family; also the name of its on/off switch in FilterConfig when it has rules.
    fields: (signal name, Arrow type) pairs, in the order they take in the `signals` struct.
    compute: SignalInput -> {signal name: value} for every field (a missing one is stored as null).
    settings: FilterConfig fields the rules read: {name: (type, pydantic.Field(default, description=...))}.
    rules: the family's rules, checked in this order; their `family` is set to `name`.
    switch: description of the switch; empty: "Apply the <name> rules (<reasons>)."
    """

    name: str
    fields: Sequence[tuple[str, pa.DataType]]
    compute: Callable[[SignalInput], Mapping[str, Any]]
    settings: Mapping[str, tuple[Any, FieldInfo]] = dataclasses.field(default_factory=dict)
    rules: Sequence[Rule] = ()
    switch: str = ""

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"signal family name {self.name!r} must be an identifier: it names a config key")
        for name, dtype in self.fields:
            if not name.isidentifier() or not isinstance(dtype, pa.DataType):
                raise ValueError(f"family {self.name}: field {name!r} must be an identifier with an Arrow type, got {dtype!r}")
        for name, spec in self.settings.items():
            if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], FieldInfo)):
                raise ValueError(f"family {self.name}: setting {name!r} must be (type, pydantic.Field(...)), got {spec!r}")
            if not spec[1].description:
                raise ValueError(f"family {self.name}: setting {name!r} needs a description (Field(..., description=...))")
        for rule in self.rules:
            if rule.family not in (None, self.name):
                raise ValueError(f"family {self.name}: rule {rule.reason!r} belongs to family {rule.family!r}")
        object.__setattr__(self, "fields", tuple(self.fields))
        object.__setattr__(self, "settings", dict(self.settings))
        object.__setattr__(self, "rules", tuple(dataclasses.replace(rule, family=self.name) for rule in self.rules))
        if self.rules and not self.switch:
            reasons = ", ".join(rule.reason for rule in self.rules)
            object.__setattr__(self, "switch", f"Apply the {self.name} rules ({reasons}).")

    @property
    def signal_names(self) -> list[str]:
        return [name for name, _ in self.fields]


_families: dict[str, SignalFamily] = {}
_listeners: list[Callable[[], None]] = []
_loaded = False


def _load() -> None:
    """Register the built-in families, then those of entry points and of the environment variable, once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for spec in BUILTIN_FAMILIES:
        register(_import(spec))
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        _register_loaded(entry.load(), f"entry point {entry.name} = {entry.value}")
    for spec in filter(None, (part.strip() for part in os.environ.get(ENV_VAR, "").split(","))):
        _register_loaded(_import(spec), f"{ENV_VAR} entry {spec!r}")


def _import(spec: str) -> Any:
    """The object named by 'module:attribute', or the module named by 'module'."""
    module, _, attribute = spec.partition(":")
    loaded = importlib.import_module(module)
    return getattr(loaded, attribute) if attribute else loaded


def _register_loaded(obj: Any, origin: str) -> None:
    if isinstance(obj, SignalFamily):
        register(obj)
    elif not hasattr(obj, "__file__"):
        raise TypeError(f"{origin}: expected a SignalFamily or a module that registers one, got {obj!r}")


def families() -> list[SignalFamily]:
    """The registered families, in registration order (built-ins first)."""
    _load()
    return list(_families.values())


def signal_fields() -> list[tuple[str, pa.DataType]]:
    """Every family's signal fields, in order: the fields of the `signals` struct."""
    return [field for family in families() for field in family.fields]


def rules() -> list[Rule]:
    """Every family's rules, in order."""
    return [rule for family in families() for rule in family.rules]


def on_change(listener: Callable[[], None]) -> None:
    """Call `listener` after every change of the registry (the modules deriving tables from it refresh them)."""
    _listeners.append(listener)


def _check_free(family: SignalFamily) -> None:
    """A family may not take a name, signal, config key or reason another family has."""
    taken = {
        "family name": {f.name for f in _families.values()},
        "signal": {name for f in _families.values() for name in f.signal_names},
        "filter setting": {key for f in _families.values() for key in [*f.settings, *([f.name] if f.rules else [])]},
        "rule reason": {rule.reason for f in _families.values() for rule in f.rules},
    }
    wanted = {
        "family name": [family.name],
        "signal": family.signal_names,
        "filter setting": [*family.settings, *([family.name] if family.rules else [])],
        "rule reason": [rule.reason for rule in family.rules],
    }
    for kind, names in wanted.items():
        clashes = sorted(set(names) & taken[kind] | {n for n in names if names.count(n) > 1})
        if clashes:
            raise ValueError(f"signal family {family.name}: {kind} {', '.join(clashes)} already taken; rename it")


def register(family: SignalFamily) -> None:
    """Add a family after those registered so far (the built-ins first). Registering the same object again does
    nothing; the derived tables (schemas, FilterConfig, rules) are rebuilt, and the family removed again if that fails."""
    _load()
    if _families.get(family.name) is family:
        return
    _check_free(family)
    _families[family.name] = family
    try:
        _notify()
    except Exception:
        del _families[family.name]
        _notify()
        raise


def unregister(name: str) -> None:
    """Remove a family (for tests and experiments; the built-ins come back with a new process)."""
    _load()
    del _families[name]
    _notify()


@contextmanager
def registered(*added: SignalFamily) -> Iterator[None]:
    """Register families for the duration of a `with` block, then restore the registry and every derived table."""
    _load()
    before = dict(_families)
    try:
        for family in added:
            register(family)
        yield
    finally:
        _families.clear()
        _families.update(before)
        _notify()


def _notify() -> None:
    for listener in _listeners:
        listener()
