"""Language identification with py3langid (its 2-letter ISO 639-1 labels, where a language has one)."""

from __future__ import annotations

from functools import lru_cache

from corpus.annotate.words import has_letter


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    # norm_probs: the score is a probability in 0..1 rather than an unbounded log-likelihood
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def identify_language(text: str) -> tuple[str, float]:
    """(label, probability) of the text; ("", 0.0) for text without a single letter, where any answer is a guess."""
    if not has_letter(text):
        return "", 0.0
    label, probability = _identifier().classify(text)
    return str(label), float(probability)
