"""The lexicon view of ``ngram-lex``: bin counts of lexicon words (forward maximum
matching, negation, a word missing from one lexicon), the format-4 model file and the
shipped model's contract."""

from __future__ import annotations

import numpy as np
import pytest

from matrixwatch.streams.sentiment.features import build_lexicon
from matrixwatch.streams.sentiment.ngram_model import NgramModel, NgramWeights
from tests.streams.sentiment.test_ngram_model import (
    assert_behaviour,
    save_and_load,
    shipped,
    toy_mixture,
)

SCORED = {"失望": -2.5, "开心": 2.2, "好开心": 3.5, "垃圾": -4.0, "好": 0.7, "喜欢": 1.5}
POLAR = {"失望": -1.0, "喜欢": 1.0, "满意": 1.0}
EDGES = [(-3.0, -1.0, 0.0, 1.0, 3.0), (0.0,)]  # 6 bins for the scores, 2 for the signs


def _lexicon():
    return build_lexicon([SCORED, POLAR], EDGES)


def test_bins_count_matched_words_per_lexicon() -> None:
    lex = _lexicon()
    assert lex.n_bins == 8 and len(lex) == 7  # 失望 and 喜欢 are one entry each
    b = lex.bins(["真失望", "今天好开心", "", "很满意", "垃圾"])
    # 失望 (-2.5): scored bin 1 ([-3, -1)); polar bin 6 (negative).
    assert b[0].tolist() == [0, 1, 0, 0, 0, 0, 1, 0]
    # Longest match first: 好开心 (3.5, last scored bin), not 好 + 开心.
    assert b[1].tolist() == [0, 0, 0, 0, 0, 1, 0, 0]
    assert not b[2].any()  # empty text
    # 满意 is only in the polar lexicon: no scored bin.
    assert b[3].tolist() == [0, 0, 0, 0, 0, 0, 0, 1]
    assert b[4].tolist() == [1, 0, 0, 0, 0, 0, 0, 0]  # -4.0 is below the first edge


def test_a_one_char_negator_flips_the_next_word() -> None:
    lex = _lexicon()
    b = lex.bins(["不开心", "开心", "不喜欢", "不好"])
    assert b[0].tolist() == [0, 1, 0, 0, 0, 0, 0, 0]  # -2.2
    assert b[1].tolist() == [0, 0, 0, 0, 1, 0, 0, 0]  # +2.2
    assert b[2][6] == 1 and b[2][7] == 0  # 喜欢 negated in the polar lexicon too
    assert b[3].tolist() == [0, 0, 0, 1, 0, 0, 0, 0]  # one-char words are never negated


def test_bins_are_per_text_and_batch_independent() -> None:
    lex = _lexicon()
    texts = ["真失望", "", "好开心好开心", "失", "望", "不", "开心"] * 3
    joint = lex.bins(texts)
    alone = np.vstack([lex.bins([t]) for t in texts])
    assert np.array_equal(joint, alone)
    assert joint[2].sum() == 2
    assert not joint[3].any() and not joint[4].any()  # 失 | 望: no word across texts
    assert joint[6][4] == 1  # 不 ends the previous text: it does not negate 开心


def test_empty_lexicon_gives_no_features() -> None:
    lex = build_lexicon([{}, {}], EDGES)
    assert len(lex) == 0 and not lex.bins(["失望", ""]).any()


def _toy_weights(bits: int = 10) -> NgramWeights:
    w, rng = toy_mixture(bits)
    w.lexicon = _lexicon()
    w.w_lex = rng.normal(0, 2, (8, 4)).astype(np.float32)
    w.lex_scale = 2.0
    return w


def test_format_4_roundtrip_and_lexicon_effect(tmp_path) -> None:
    weights = _toy_weights()
    texts = ["这个做法真是让人太失望了", "今天好开心", "", "没有词典里的词"]
    again, a = save_and_load(weights, tmp_path / "lex.npz", texts, atol=0.03)
    assert again.meta["format"] == 4 and again.lex_scale == 2.0
    assert again.lexicon is not None and again.w_lex is not None
    assert np.array_equal(again.lexicon.hashes, weights.lexicon.hashes)
    assert np.array_equal(again.w_lex, weights.w_lex)
    # Without the lexicon weights the model is the plain mixture; texts without a
    # lexicon word score the same either way.
    plain = _toy_weights()
    plain.w_lex = None
    p = NgramModel(plain).probabilities(texts)
    assert not np.isclose(a[0][0], p[0][0]) and not np.isclose(a[0][1], p[0][1])
    assert np.isclose(a[0][3], p[0][3]) and np.isclose(a[1][3], p[1][3])


@pytest.fixture(scope="module")
def lex_model() -> NgramModel:
    return shipped("ngram-lex")


def test_shipped_lex_model_keeps_the_contract(lex_model: NgramModel) -> None:
    w = lex_model.weights
    assert lex_model.name == "ngram-lex" and w.meta["model"] == "ngram-lex"
    assert w.lexicon is not None and w.w_lex is not None and w.w_lex.shape == (12, 4)
    assert w.w_word is not None and w.word_mix == pytest.approx(0.25)
    assert_behaviour(lex_model, long_text=True)
