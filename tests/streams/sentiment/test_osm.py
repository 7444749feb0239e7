"""The osm (public-incident comment) expert of ``ngram-osm``: how it is fitted and mixed
into the general head, the format-5 model file and the shipped model's contract."""

from __future__ import annotations

import numpy as np
import pytest

from matrixwatch.streams.sentiment.features import build_lexicon, featurize
from matrixwatch.streams.sentiment.ngram_model import NgramModel, NgramWeights
from tests.streams.sentiment.test_ngram_model import (
    COMPLAINTS,
    NOTICES,
    PRAISE,
    assert_behaviour,
    save_and_load,
    shipped,
    toy_mixture,
)

POS = ["很好很开心", "太棒了点赞", "开心快乐", "真不错喜欢"]
NEG = ["气死了太差", "失望透顶", "垃圾太烂了", "难过想哭"]


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def test_osm_expert_is_fitted_on_its_rows_and_mixed_into_the_general_head() -> None:
    pytest.importorskip("sklearn")
    pytest.importorskip("scipy")
    from matrixwatch.streams.sentiment.train import Sets, TrainConfig, _fit_all, _matrix, _Set

    texts, y = POS + NEG, [1] * 4 + [0] * 4
    parts = [_Set() for _ in range(6)]
    for s in parts:
        s.add(texts, y, 1.0)
    parts[5].y = [1, 0] * 4  # the osm gate's own targets
    sets = Sets(*parts[:4], counts={}, osmx=parts[4], gosm=parts[5])
    cfg = TrainConfig(
        bits=12, moe=True, osm_expert=True, lexicon=True, lex_edges=((0.0,),), gate_osm_offset=0.5
    )
    lex = build_lexicon([{"失望": -2.0, "开心": 1.0}], cfg.lex_edges)
    xs = {k: _matrix(getattr(sets, k).texts, cfg, lex) for k in ("pol", "neu", "exp", "gate")}
    heads = _fit_all(sets, xs, cfg)
    assert heads.osmx is not None and heads.gosm is not None
    assert heads.exp is not None and heads.gate is not None
    # The osm expert reads the lexicon columns like the general head, its gate like the gate.
    assert heads.osmx.coef.size == heads.gosm.coef.size == (1 << 12) + 2
    x = xs["pol"]
    g_osm = heads.gosm.predict_proba(x)[:, 1]
    z_general = g_osm * heads.osmx.logit(x) + (1 - g_osm) * heads.pol.logit(x)
    g = heads.gate.predict_proba(x)[:, 1]
    z = g * heads.exp.logit(x) + (1 - g) * z_general
    p_pol, _ = heads.predict(x)
    assert np.allclose(p_pol, _sigmoid(z))
    # The offset goes into the osm gate's bias only.
    plain = _fit_all(sets, xs, TrainConfig(**{**vars(cfg), "gate_osm_offset": 0.0}))
    assert plain.gosm is not None and plain.osmx is not None
    assert heads.gosm.intercept == pytest.approx(plain.gosm.intercept + 0.5)
    assert np.allclose(heads.osmx.coef, plain.osmx.coef)
    # Without osm_expert there is no osm head.
    assert _fit_all(sets, xs, TrainConfig(bits=12, moe=True)).osmx is None


def _toy_weights(bits: int = 10) -> NgramWeights:
    w, rng = toy_mixture(bits)
    w.w_osm = rng.normal(0, 1, 1 << bits).astype(np.float32)
    w.w_gosm = rng.normal(0, 1, 1 << bits).astype(np.float32)
    w.b_osm, w.b_gosm = 0.3, -0.4
    w.lexicon = build_lexicon([{"失望": -2.0, "开心": 1.0}], [(0.0,)])
    w.w_lex = rng.normal(0, 2, (2, 6)).astype(np.float32)
    w.lex_scale = 2.0
    return w


def test_format_5_roundtrip_and_the_osm_mix(tmp_path) -> None:
    weights = _toy_weights()
    texts = ["这个做法真是让人太失望了", "今天好开心", "", "没有词典里的词"]
    again, a = save_and_load(weights, tmp_path / "osm.npz", texts, atol=0.03)
    assert again.meta["format"] == 5 and again.meta["heads"][4:] == ["osm", "gosm"]
    assert again.b_osm == pytest.approx(0.3) and again.b_gosm == pytest.approx(-0.4)
    assert again.w_lex is not None and again.w_lex.shape == (2, 6)
    # P(pos | polar) by hand: the osm gate mixes the osm expert into the general head,
    # then the chatter gate mixes in the chatter expert.
    w = weights
    rows, buckets, vals, counts = featurize(texts, w.bits, w.orders)
    assert w.lexicon is not None and w.w_lex is not None
    lex = (w.lexicon.bins(texts) * (2.0 / np.sqrt(np.maximum(counts, 1)))[:, None]) @ w.w_lex

    def logit(coef: np.ndarray, b: float, head: int) -> np.ndarray:
        return (
            np.bincount(rows, weights=coef[buckets] * vals, minlength=len(texts)) + b + lex[:, head]
        )

    assert w.w_exp is not None and w.w_gate is not None and w.w_osm is not None
    assert w.w_gosm is not None
    g_osm = _sigmoid(logit(w.w_gosm, w.b_gosm, 5))
    z_general = g_osm * logit(w.w_osm, w.b_osm, 4) + (1 - g_osm) * logit(w.w_pol, w.b_pol, 0)
    g = _sigmoid(logit(w.w_gate, w.b_gate, 3))
    z = g * logit(w.w_exp, w.b_exp, 2) + (1 - g) * z_general
    assert np.allclose(a[0], _sigmoid(z), atol=1e-5)
    # A file without the osm heads still loads as the four-head mixture.
    four = _toy_weights()
    four.w_osm = four.w_gosm = None
    four.w_lex = four.w_lex[:, :4]  # type: ignore[index]
    four.save(tmp_path / "four.npz")
    loaded = NgramWeights.load(tmp_path / "four.npz")
    assert loaded.meta["format"] == 4 and loaded.w_osm is None and loaded.w_exp is not None


@pytest.fixture(scope="module")
def osm_model() -> NgramModel:
    return shipped("ngram-osm")


def test_shipped_osm_model_keeps_the_contract(osm_model: NgramModel) -> None:
    w = osm_model.weights
    assert osm_model.name == "ngram-osm" and w.meta["model"] == "ngram-osm"
    assert w.meta["format"] == 5 and w.meta["config"]["osm_expert"]
    assert w.w_osm is not None and w.w_gosm is not None
    assert w.lexicon is not None and w.w_lex is not None and w.w_lex.shape == (12, 6)
    assert w.w_word is not None and w.word_mix == pytest.approx(0.25)
    assert_behaviour(osm_model, long_text=True)


def test_osm_gate_prefers_incident_comments_to_notices(osm_model: NgramModel) -> None:
    """Complaints about an incident lean to the osm expert more than notices do."""
    w = osm_model.weights
    assert w.w_gosm is not None and w.w_lex is not None and w.lexicon is not None

    def gate(texts: list[str]) -> np.ndarray:
        rows, buckets, vals, counts = featurize(texts, w.bits, w.orders)
        z = np.bincount(rows, weights=w.w_gosm[buckets] * vals, minlength=len(texts))
        scale = w.lex_scale / np.sqrt(np.maximum(counts, 1))
        z = z + (w.lexicon.bins(texts) * scale[:, None]) @ w.w_lex[:, 5]
        return _sigmoid(z + w.b_gosm)

    assert float(np.mean(gate(COMPLAINTS))) > float(np.mean(gate(NOTICES)))
    assert gate(PRAISE).shape == (len(PRAISE),)


# The simulated feed's service questions (collectors/simulator.py), none of them a seed,
# and complaints put as questions, some opening with 请问 too.
SERVICE_QUESTIONS = ["请问在哪里预约？", "请问外地户籍可以办理吗？", "请问周末窗口上班吗？",
                     "请问需要带什么材料？"]
COMPLAINT_QUESTIONS = ["排队两个小时还办不了，你们窗口是摆设吗？", "又停水了，到底有没有人管？",
                       "垃圾一个星期没人收，环卫部门在干什么？", "请问投诉了为什么一直没有回复？"]


# The simulated feed's anti-fraud notice (not a seed), and victims' complaints.
_FRAUD_NOTICE = ("【反诈提醒】近期冒充“客服”退款诈骗高发，警方提醒："
                 "凡是要求转账到“安全账户”的都是诈骗！")
WARNINGS = [_FRAUD_NOTICE, "#上虞反诈#" + _FRAUD_NOTICE]
FRAUD_VICTIMS = ["被骗了五千块，派出所说立案了就没下文了，太气人了",
                 "我妈被冒充公检法的骗了十万，谁来管管"]


def test_service_questions_and_warnings_are_neutral_complaints_negative(
        osm_model: NgramModel) -> None:
    from matrixwatch.streams.sentiment import seeds

    seeded = (set(seeds.service_questions()) | set(seeds.COMPLAINT_QUESTIONS)
              | set(seeds.warning_notices()) | set(seeds.FRAUD_COMPLAINTS))
    held_out = SERVICE_QUESTIONS + COMPLAINT_QUESTIONS + WARNINGS + FRAUD_VICTIMS
    assert not seeded & set(held_out)
    labels = [s.label for s in osm_model.score_batch(held_out)]
    assert labels == ["neutral"] * 4 + ["negative"] * 4 + ["neutral"] * 2 + ["negative"] * 2
