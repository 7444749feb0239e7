"""The word view of ``ngram-words``: vectorised forward maximum matching, word features,
the vocabulary look-up, the format-3 model file and the shipped model's contract."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from matrixwatch.streams.sentiment.features import (
    WordVocab,
    featurize_words,
    segment,
    window_hashes,
    word_hashes,
)
from matrixwatch.streams.sentiment.ngram_model import NgramModel, NgramWeights
from tests.streams.sentiment.test_ngram_model import (
    assert_behaviour,
    save_and_load,
    shipped,
    toy_mixture,
)

VOCAB = ["政府", "做法", "真是", "失望", "不想", "再说", "什么", "好开心", "开心", "这个"]


def _words(texts: list[str], words: list[str]) -> list[list[str]]:
    """Decode :func:`segment`'s token lengths back to strings (texts without spaces)."""
    rows, _, lens = segment(texts, WordVocab(word_hashes(words)))
    out: list[list[str]] = []
    for i, t in enumerate(texts):
        n_i = lens[rows == i].tolist()[1:-1]  # drop the BOS and EOS tokens
        assert sum(n_i) == len(t.strip())
        ends = np.cumsum([0, *n_i]).tolist()
        out.append([t.strip()[a:b] for a, b in itertools.pairwise(ends)])
    return out


def test_forward_maximum_matching() -> None:
    text = "这个政府的做法真是让人太失望了不想再说什么"
    expect = [
        "这个",
        "政府",
        "的",
        "做法",
        "真是",
        "让",
        "人",
        "太",
        "失望",
        "了",
        "不想",
        "再说",
        "什么",
    ]
    assert _words([text], VOCAB)[0] == expect
    # Longest match first: 好开心 (3) beats 开心 (2).
    assert _words(["今天好开心"], VOCAB)[0] == ["今", "天", "好开心"]


def test_segmentation_is_per_text_and_batch_independent() -> None:
    texts = ["这个政府", "", "  ", "失望", "政", "府做法"]
    alone = [_words([t], VOCAB)[0] for t in texts]
    joint = _words(texts, VOCAB)  # under _SMALL_BATCH texts: the plain-loop walk
    assert joint == alone
    assert _words(texts * 3, VOCAB) == alone * 3  # the vectorised walk agrees
    assert joint[1] == [] and joint[2] == []
    assert joint[4] == ["政"]  # a word never spans two texts: "政" + "府" of the next one


def test_word_features_do_not_leak_and_normalise() -> None:
    vocab = WordVocab(word_hashes(VOCAB))
    texts = ["这个政府真是", "", "失望", "a b"]
    rows, buckets, vals, counts = featurize_words(texts, 16, vocab)
    for i, t in enumerate(texts):
        _, b1, v1, c1 = featurize_words([t], 16, vocab)
        assert sorted(buckets[rows == i].tolist()) == sorted(b1.tolist())
        assert np.allclose(sorted(vals[rows == i]), sorted(v1))
        assert counts[i] == c1[0]
    # 3 words + 4 bigrams (with the text boundaries); an empty text has no feature.
    assert counts.tolist()[:3] == [7, 0, 3]
    assert np.allclose(vals[rows == 0], 1 / np.sqrt(7))
    assert ((buckets >= 0) & (buckets < 1 << 16)).all()


def test_vocab_lookup_matches_a_set_including_overflow() -> None:
    rng = np.random.default_rng(1)
    hashes = rng.integers(0, 2**63, 5000, dtype=np.uint64)
    vocab = WordVocab(hashes)
    assert len(vocab) == 5000
    assert vocab.overflow.size > 0  # some slots collided: the overflow path is exercised
    queries = np.concatenate([hashes, rng.integers(0, 2**63, 5000, dtype=np.uint64)])
    expect = np.isin(queries, hashes)
    assert (vocab.contains(queries) == expect).all()
    assert not WordVocab(np.zeros(0, dtype=np.uint64)).contains(queries).any()


def test_word_hashes_and_windows_agree() -> None:
    words = word_hashes(["失望", "ＡＢ", "x", "五个字的词"])  # 1 and 5 chars are skipped
    assert words.size == 2
    assert np.isin(words, window_hashes(["太失望了", "ab"])).all()


def _toy_weights(bits: int = 10) -> NgramWeights:
    w, rng = toy_mixture(bits)
    w.w_word = rng.normal(0, 1, 1 << 12).astype(np.float32)
    w.b_word, w.word_bits, w.word_mix = 0.3, 12, 0.25
    w.vocab = word_hashes(VOCAB)
    return w


def test_format_3_roundtrip_and_blend(tmp_path) -> None:
    weights = _toy_weights()
    texts = ["这个政府的做法真是让人太失望了", "今天好开心", ""]
    again, a = save_and_load(weights, tmp_path / "words.npz", texts, atol=0.03)
    assert again.meta["format"] == 3
    assert again.word_bits == 12 and again.word_mix == 0.25
    assert again.vocab is not None and np.array_equal(again.vocab, weights.vocab)
    # word_mix = 0 is the character-only mixture.
    plain = _toy_weights()
    plain.w_word = None
    zero = _toy_weights()
    zero.word_mix = 0.0
    p_plain = NgramModel(plain).probabilities(texts)[0]
    assert np.allclose(NgramModel(zero).probabilities(texts)[0], p_plain)
    assert not np.allclose(a[0], p_plain)


@pytest.fixture(scope="module")
def words_model() -> NgramModel:
    return shipped("ngram-words")


def test_shipped_words_model_keeps_the_contract(words_model: NgramModel) -> None:
    w = words_model.weights
    assert words_model.name == "ngram-words" and w.meta["model"] == "ngram-words"
    assert w.w_word is not None and w.vocab is not None and words_model.vocab is not None
    assert w.word_mix == pytest.approx(0.25)
    assert_behaviour(words_model, long_text=True)
