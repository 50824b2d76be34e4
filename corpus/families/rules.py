"""Filter rules over signals: a `Rule` names its reason and says whether it fires and why, and the builders below
make the usual ones from a signal name and the name of its `FilterConfig` threshold.

A rule reads the document's annotations and the config, nothing else: no signal is recomputed when a rule is
checked (DESIGN.md section 1), so thresholds can be re-tuned without re-annotating. A signal that is None (a
language without a stop-word list, a document without words) never fires a rule.

This module imports nothing of corpus at run time, so that a signal family's file can build its rules while
`corpus.config` is still assembling `FilterConfig` from the families.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from corpus.config import FilterConfig
    from corpus.document import Document

Predicate = Callable[["Document", "FilterConfig"], bool]
Detail = Callable[["Document", "FilterConfig"], str]


@dataclass(frozen=True)
class Rule:
    """One keep/drop rule: `reason` names the drop in the ledger and in `rejected/`, `detail` gives the values that
    fired. `family` is the FilterConfig switch that turns the rule on and off (its signal family's name, filled in by
    `SignalFamily`); None: always checked."""

    reason: str
    fires: Predicate
    detail: Detail
    family: str | None = None


def signal(doc: Document, name: str) -> Any:
    return doc.signals.get(name)


def as_stored(value: float | int) -> float | int:
    """A value at the precision signals are stored with (float32), so that a fraction of exactly 0.3 compares equal
    to a threshold of 0.3 instead of sitting above it by float32 rounding."""
    return float(struct.unpack("f", struct.pack("f", value))[0]) if isinstance(value, float) else value


def format_value(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def below(name: str, threshold: str, *, inclusive: bool = False) -> tuple[Predicate, Detail]:
    """Fires when the signal is under the config threshold, e.g. n_words < min_words (or at it, `inclusive`,
    where the published rule drops at the threshold too)."""
    sign = "<=" if inclusive else "<"

    def fires(doc: Document, cfg: FilterConfig) -> bool:
        value = signal(doc, name)
        if value is None:
            return False
        value, limit = as_stored(value), as_stored(getattr(cfg, threshold))
        return value <= limit if inclusive else value < limit

    def detail(doc: Document, cfg: FilterConfig) -> str:
        return f"{name}={format_value(signal(doc, name))} {sign} {threshold}={getattr(cfg, threshold)}"

    return fires, detail


def above(name: str, threshold: str, *, inclusive: bool = False) -> tuple[Predicate, Detail]:
    """Fires when the signal is over the config threshold, e.g. dup_line_frac > max_dup_line_frac (or at it,
    `inclusive`)."""
    sign = ">=" if inclusive else ">"

    def fires(doc: Document, cfg: FilterConfig) -> bool:
        value = signal(doc, name)
        if value is None:
            return False
        value, limit = as_stored(value), as_stored(getattr(cfg, threshold))
        return value >= limit if inclusive else value > limit

    def detail(doc: Document, cfg: FilterConfig) -> str:
        return f"{name}={format_value(signal(doc, name))} {sign} {threshold}={getattr(cfg, threshold)}"

    return fires, detail


def flag(name: str, switch: str) -> tuple[Predicate, Detail]:
    """Fires when a boolean signal is set and its config switch is on, e.g. c4_curly_brace with c4_drop_curly_brace."""

    def fires(doc: Document, cfg: FilterConfig) -> bool:
        return getattr(cfg, switch) and signal(doc, name) is True

    return fires, lambda doc, cfg: f"{name}=True"


def only_for(applies: Predicate, rule: tuple[Predicate, Detail]) -> tuple[Predicate, Detail]:
    """The rule, checked only for documents where `applies` holds."""
    fires, detail = rule
    return (lambda doc, cfg: applies(doc, cfg) and fires(doc, cfg)), detail
