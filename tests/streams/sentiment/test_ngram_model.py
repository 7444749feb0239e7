"""The shipped default model: interface, batching, edge cases and the notice rule.

Texts here are hand-written for the tests. The notices are deliberately *not* the
training seeds' wording, so passing needs the model to generalise the notice register.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from matrixwatch.streams.sentiment import LABELS, Sentiment, SentimentModel, get_model
from matrixwatch.streams.sentiment.base import DEFAULT_MODEL, available
from matrixwatch.streams.sentiment.features import featurize
from matrixwatch.streams.sentiment.ngram_model import NgramModel, NgramWeights

COMPLAINTS = [
    "这届领导太不作为了，出了事故就知道删帖，气死了",
    "排了三个小时的队还没办成，工作人员态度恶劣，太失望了",
    "又停水又停电，打了十几次热线都没人管，真是受够了",
    "孩子在学校出事了，学校到现在都不给一个说法，心寒",
    "垃圾堆在小区门口一个星期了，臭得要命，投诉也没用",
]
PRAISE = [
    "消防员连夜救出被困群众，太感动了，向你们致敬！",
    "今天去政务大厅办事特别顺利，工作人员很耐心，点赞",
    "新修的公园太漂亮了，周末带孩子来玩，开心",
    "感谢志愿者们的付出，有你们真好，加油！",
]
NOTICES = [
    "关于做好防汛工作的通知：各单位要加强值班值守，防范安全事故",
    "市应急管理局提醒：近期降雨频繁，请广大市民注意防范山洪、泥石流等地质灾害",
    "县人民政府召开常务会议，研究部署安全生产和森林防火工作",
    "接上级通知，明日起开展为期一个月的消防安全隐患排查整治行动",
    "区交通运输局发布通告：因道路施工，人民路部分路段实施交通管制，请绕行",
    "市卫健委通报：昨日全市新增病例2例，均在隔离管控中发现",
]


@pytest.fixture(scope="module")
def model() -> SentimentModel:
    return get_model()


def test_default_is_the_domain_model(model: SentimentModel) -> None:
    assert DEFAULT_MODEL == "ngram-osm"
    assert isinstance(model, NgramModel)
    shipped_names = {"ngram", "ngram-moe", "ngram-mix", "ngram-words", "ngram-lex", "ngram-osm"}
    assert shipped_names | {"snownlp"} <= set(available())
    assert get_model("ngram-osm") is model  # cached


def test_interface_shape(model: SentimentModel) -> None:
    out = model.score_batch(COMPLAINTS + PRAISE + NOTICES)
    assert len(out) == len(COMPLAINTS + PRAISE + NOTICES)
    for s in out:
        assert isinstance(s, Sentiment)
        assert 0.0 <= s.score <= 1.0
        assert s.label in LABELS
        d = s.as_dict()
        assert set(d) == {"score", "label"}


def test_complaints_are_negative(model: SentimentModel) -> None:
    for text, s in zip(COMPLAINTS, model.score_batch(COMPLAINTS), strict=True):
        assert s.label == "negative", (text, s)
        assert s.score < 0.3, (text, s)


def test_praise_is_positive(model: SentimentModel) -> None:
    for text, s in zip(PRAISE, model.score_batch(PRAISE), strict=True):
        assert s.label == "positive", (text, s)
        # 0.6, not 0.7: ngram-lex scores the firefighter sentence 0.65, ngram-osm (the
        # default) 0.64 (ngram-words 0.72): 被困 and the news words are mildly negative in
        # BosonNLP.
        assert s.score > 0.6, (text, s)


def test_notices_are_neutral_not_negative(model: SentimentModel) -> None:
    for text, s in zip(NOTICES, model.score_batch(NOTICES), strict=True):
        assert s.label == "neutral", (text, s)
        assert 0.3 < s.score < 0.7, (text, s)


def test_notice_words_alone_do_not_flip_a_complaint(model: SentimentModel) -> None:
    s = model.score("防汛说了多少遍了，村里淹了两天都没人来管，值班的人都去哪了？")
    assert s.label == "negative"


def test_batch_equals_one_by_one(model: SentimentModel) -> None:
    texts = [*COMPLAINTS, "", "   ", *PRAISE, *NOTICES, "x" * 5000]
    batch = model.score_batch(texts)
    single = [model.score(t) for t in texts]
    assert [s.label for s in batch] == [s.label for s in single]
    for a, b in zip(batch, single, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-9)
    # Order and neighbours must not matter either.
    rev = model.score_batch(texts[::-1])[::-1]
    for a, b in zip(batch, rev, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-9)


def test_empty_and_blank_are_neutral(model: SentimentModel) -> None:
    assert model.score_batch([]) == []
    for t in ("", " ", "\t\n"):
        s = model.score(t)
        assert s == Sentiment(0.5, "neutral")


def test_odd_characters_do_not_crash(model: SentimentModel) -> None:
    texts = [
        "\x00",
        "a\x00b",
        "\x02\x03",
        "😀😡",
        "http://t.cn/abc",
        "@某某",
        "[怒][怒]",
        "１２３ＡＢＣ",
    ]
    out = model.score_batch(texts)
    assert len(out) == len(texts)
    assert all(0.0 <= s.score <= 1.0 for s in out)


def test_very_long_text_is_bounded(model: SentimentModel) -> None:
    long_text = ("各单位要加强值班值守，防范安全事故。" * 60000)[: 1 << 20]  # ~1M chars
    t0 = time.perf_counter()
    s = model.score(long_text)
    assert time.perf_counter() - t0 < 1.0
    assert s.label in LABELS
    # Only head and tail are read, so the middle cannot change the result.
    changed = long_text[:1000] + "气死了太恶心了" * 1000 + long_text[-1000:]
    assert model.score(changed).score == pytest.approx(s.score)


def test_emoticons_carry_signal(model: SentimentModel) -> None:
    plain = model.score("今天下班路上")
    assert model.score("今天下班路上[哈哈][哈哈]").score > plain.score
    assert model.score("今天下班路上[泪][泪]").score < plain.score


def test_weights_roundtrip(tmp_path, model: SentimentModel) -> None:
    assert isinstance(model, NgramModel)
    path = tmp_path / "m.npz"
    model.weights.save(path)
    again = NgramModel(NgramWeights.load(path))
    texts = COMPLAINTS + NOTICES
    for a, b in zip(model.score_batch(texts), again.score_batch(texts), strict=True):
        assert a.label == b.label
        assert a.score == pytest.approx(b.score, abs=1e-6)


def shipped(name: str) -> NgramModel:
    """A shipped ngram-family model by name (``get_model`` caches it)."""
    model = get_model(name)
    assert isinstance(model, NgramModel)
    return model


def assert_behaviour(model: SentimentModel, long_text: bool = False) -> None:
    """The behaviour checks every shipped ngram-family model passes: polarity, notices
    neutral, edge cases, emoticons (and the length bound with ``long_text``)."""
    test_complaints_are_negative(model)
    test_praise_is_positive(model)
    test_notices_are_neutral_not_negative(model)
    test_notice_words_alone_do_not_flip_a_complaint(model)
    test_batch_equals_one_by_one(model)
    test_empty_and_blank_are_neutral(model)
    test_odd_characters_do_not_crash(model)
    if long_text:
        test_very_long_text_is_bounded(model)
    test_emoticons_carry_signal(model)


def toy_mixture(bits: int = 10) -> tuple[NgramWeights, np.random.Generator]:
    """Random weights of the four character heads, and the generator for any more."""
    rng = np.random.default_rng(0)
    heads = [rng.normal(0, 1, 1 << bits).astype(np.float32) for _ in range(4)]
    w = NgramWeights(bits, (1, 2, 3), heads[0], heads[1], 0.1, -0.2, 0.35, 0.05)
    w.w_exp, w.w_gate = heads[2], heads[3]
    return w, rng


def save_and_load(
    weights: NgramWeights, path, texts: list[str], atol: float
) -> tuple[NgramWeights, tuple[np.ndarray, np.ndarray]]:
    """Save ``weights``, load them back and check that both give the same probabilities
    on ``texts`` within ``atol`` (the file holds int8 weights). Returns the loaded weights
    and the original's ``(P(pos | polar), P(neutral))``."""
    weights.save(path)
    again = NgramWeights.load(path)
    a = NgramModel(weights).probabilities(texts)
    b = NgramModel(again).probabilities(texts)
    assert np.allclose(a[0], b[0], atol=atol) and np.allclose(a[1], b[1], atol=atol)
    return again, a


@pytest.fixture(scope="module")
def moe() -> NgramModel:
    return shipped("ngram-moe")


def test_moe_passes_the_same_behaviour_checks(moe: NgramModel) -> None:
    """The gated mixture keeps the default's contract: polarity, notices neutral, edge cases."""
    assert moe.name == "ngram-moe"
    assert_behaviour(moe)


def test_gate_mixes_the_two_polarity_heads(moe: NgramModel) -> None:
    """P(pos | polar) = sigmoid(g·z_chatter + (1 − g)·z_general), g = sigmoid(z_gate)."""
    model = moe
    w = model.weights
    assert w.w_exp is not None and w.w_gate is not None
    texts = [*COMPLAINTS, *PRAISE, "今天下班路上"]
    rows, buckets, vals, _ = featurize(texts, w.bits, w.orders)

    def logit(coef: np.ndarray, b: float) -> np.ndarray:
        return np.bincount(rows, weights=coef[buckets] * vals, minlength=len(texts)) + b

    g = 1.0 / (1.0 + np.exp(-logit(w.w_gate, w.b_gate)))
    z = g * logit(w.w_exp, w.b_exp) + (1.0 - g) * logit(w.w_pol, w.b_pol)
    p_pol, _ = model.probabilities(texts)
    assert np.allclose(p_pol, 1.0 / (1.0 + np.exp(-z)), atol=1e-5)
    # Notices are routed away from the chatter expert.
    g_notice = 1.0 / (1.0 + np.exp(-_gate_logit(model, NOTICES)))
    assert float(np.mean(g_notice)) < 0.5


def _gate_logit(model: NgramModel, texts: list[str]) -> np.ndarray:
    w = model.weights
    assert w.w_gate is not None
    rows, buckets, vals, _ = featurize(texts, w.bits, w.orders)
    return np.bincount(rows, weights=w.w_gate[buckets] * vals, minlength=len(texts)) + w.b_gate


def test_single_head_weights_still_load(tmp_path) -> None:
    """A file without the expert and gate (format 1 layout) scores with the general head."""
    bits = 10
    rng = np.random.default_rng(0)
    w_pol = rng.normal(0, 1, 1 << bits).astype(np.float32)
    w_neu = rng.normal(0, 1, 1 << bits).astype(np.float32)
    weights = NgramWeights(bits, (1, 2, 3), w_pol, w_neu, 0.1, -0.2, 0.35, 0.05)
    again, _ = save_and_load(weights, tmp_path / "single.npz", COMPLAINTS + PRAISE, atol=0.02)
    assert again.w_exp is None and again.w_gate is None


def test_mix_passes_the_same_behaviour_checks() -> None:
    """ngram-mix (moe architecture, 2**22 buckets, CV-picked weights) keeps the contract."""
    mix = shipped("ngram-mix")
    assert mix.name == "ngram-mix"
    w = mix.weights
    assert w.bits == 22 and w.w_exp is not None and w.w_gate is not None
    assert w.meta["model"] == "ngram-mix"
    assert w.meta["config"]["gate_offset"] == 2.0
    assert_behaviour(mix)
    g_notice = 1.0 / (1.0 + np.exp(-_gate_logit(mix, NOTICES)))
    assert float(np.mean(g_notice)) < 0.5
