"""chrF (sacrebleu's, with its default settings: character 6-grams, beta 2), per answer and
per model.

A sentence-level score says how close one answer is to its reference; the corpus score of a
model pools the n-gram statistics of all its answers, as chrF is meant to be reported (it is
not the mean of the sentence scores, which the table shows beside it).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any


@cache
def _metric() -> Any:
    # Imported on first use: sacrebleu takes a fifth of a second to import.
    from sacrebleu.metrics import CHRF

    return CHRF()


def sentence_chrf(answer: str, reference: str) -> float:
    """0–100; an exact match scores 100, an empty answer 0."""
    return float(_metric().sentence_score(answer, [reference]).score)


def corpus_chrf(answers: Sequence[str], references: Sequence[str]) -> float | None:
    """0–100 over all pairs; None when there are none."""
    if not answers:
        return None
    return float(_metric().corpus_score(list(answers), [list(references)]).score)
