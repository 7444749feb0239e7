"""The sentiment interface every model implements.

Models are pure: texts in, scores out, no I/O after loading. ``score_batch`` is the
only hot path; the stream calls it with batches, in an executor, so one call must be
safe to run off the event loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

LABELS: tuple[str, str, str] = ("negative", "neutral", "positive")


@dataclass(frozen=True, slots=True)
class Sentiment:
    score: float  # P(positive) in [0, 1]
    label: str  # one of LABELS

    def as_dict(self) -> dict[str, float | str]:
        return {"score": round(self.score, 4), "label": self.label}


class SentimentModel(ABC):
    """One scorer. Subclasses set ``name`` and implement :meth:`score_batch`."""

    name: str = "abstract"

    @abstractmethod
    def score_batch(self, texts: Sequence[str]) -> list[Sentiment]:
        """Score texts in order; empty text is neutral; never raises on content."""

    def score(self, text: str) -> Sentiment:
        return self.score_batch([text])[0]


_REGISTRY: dict[str, Callable[[], SentimentModel]] = {}
_CACHE: dict[str, SentimentModel] = {}
# ngram-osm: the best of the shipped models by whole-model 5-fold CV on the training rows
# of all three Weibo sources (models/README.md).
DEFAULT_MODEL = "ngram-osm"


def register(name: str) -> Callable[[Callable[[], SentimentModel]], Callable[[], SentimentModel]]:
    def deco(factory: Callable[[], SentimentModel]) -> Callable[[], SentimentModel]:
        _REGISTRY[name] = factory
        return factory

    return deco


def available() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_model(name: str = "default") -> SentimentModel:
    """Return a (cached) model by name; ``default`` is the shipped domain model."""
    _load_builtin()
    if name == "default":
        name = DEFAULT_MODEL
    if name not in _REGISTRY:
        raise KeyError(f"unknown sentiment model {name!r}; available: {', '.join(available())}")
    if name not in _CACHE:
        _CACHE[name] = _REGISTRY[name]()
    return _CACHE[name]


def _load_builtin() -> None:
    # Imported lazily so that `import matrixwatch` stays cheap.
    from matrixwatch.streams.sentiment import ngram_model, snownlp_model  # noqa: F401
