"""PII counts: how many e-mail addresses, IP addresses and phone numbers the annotator replaced by placeholders in
`text` and `title` (corpus/annotate/pii.py; settings in `annotate.pii*`). Null when PII replacement is off or the
kind is not replaced. Signals only: no rule drops a document for them."""

from __future__ import annotations

import pyarrow as pa

from corpus.annotate.signals import SignalInput
from corpus.families import SignalFamily

# PII kind (annotate.pii_kinds) -> its signal
PII_SIGNALS = {"email": "pii_emails", "ip": "pii_ips", "phone": "pii_phones"}


def compute(s: SignalInput) -> dict:
    counts = s.pii_counts or {}
    return {name: counts.get(kind) for kind, name in PII_SIGNALS.items()}


PII = SignalFamily(name="pii", fields=[(name, pa.int64()) for name in PII_SIGNALS.values()], compute=compute)
