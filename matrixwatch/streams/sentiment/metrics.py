"""Accuracy and macro-F1 without scikit-learn, so evaluation runs on a runtime install."""

from __future__ import annotations

from collections.abc import Sequence


def accuracy(gold: Sequence[str], pred: Sequence[str]) -> float:
    if not gold:
        return float("nan")
    return sum(g == p for g, p in zip(gold, pred, strict=True)) / len(gold)


def macro_f1(
    gold: Sequence[str], pred: Sequence[str], classes: Sequence[str] | None = None
) -> float:
    """Unweighted mean of per-class F1 over ``classes`` (default: the gold classes)."""
    if not gold:
        return float("nan")
    labels = list(classes) if classes is not None else sorted(set(gold))
    f1s: list[float] = []
    for c in labels:
        tp = sum(g == c and p == c for g, p in zip(gold, pred, strict=True))
        fp = sum(g != c and p == c for g, p in zip(gold, pred, strict=True))
        fn = sum(g == c and p != c for g, p in zip(gold, pred, strict=True))
        denom = 2 * tp + fp + fn
        f1s.append(2 * tp / denom if denom else 0.0)
    return sum(f1s) / len(f1s)
