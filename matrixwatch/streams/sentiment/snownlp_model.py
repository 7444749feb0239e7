"""SnowNLP's stock model: the baseline the domain model is measured against."""

from __future__ import annotations

from collections.abc import Sequence

from matrixwatch.streams.sentiment.base import Sentiment, SentimentModel, register

NEG_BELOW = 0.4
POS_ABOVE = 0.6


def label_for(p: float, neg_below: float = NEG_BELOW, pos_above: float = POS_ABOVE) -> str:
    if p < neg_below:
        return "negative"
    if p > pos_above:
        return "positive"
    return "neutral"


class SnowNLPModel(SentimentModel):
    name = "snownlp"

    def __init__(self) -> None:
        from snownlp import sentiment

        self._classifier = sentiment.classifier

    def score_batch(self, texts: Sequence[str]) -> list[Sentiment]:
        out: list[Sentiment] = []
        for t in texts:
            if not t or not t.strip():
                out.append(Sentiment(0.5, "neutral"))
                continue
            p = float(self._classifier.classify(t[:2000]))
            out.append(Sentiment(p, label_for(p)))
        return out


@register("snownlp")
def _factory() -> SentimentModel:
    return SnowNLPModel()
