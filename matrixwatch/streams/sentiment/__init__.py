"""Sentiment scoring behind one interface. See :mod:`.base` and :func:`get_model`."""

from matrixwatch.streams.sentiment.base import LABELS, Sentiment, SentimentModel, get_model

__all__ = ["LABELS", "Sentiment", "SentimentModel", "get_model"]
